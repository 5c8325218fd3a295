package cli

import (
	"strings"

	"github.com/alecthomas/kong"
)

// The synopses of -h and of the manual are written from the kong model, so
// neither can drift from what the parser accepts. They follow 66's style:
// lowercase placeholders, optional parts in brackets, a repeatable argument
// as "name...".

// globalSynopsis is the part of every synopsis that the global options make,
// in -h's short form: the options 66's tools share.
const globalSynopsis = "[-h] [-z] [-v verbosity] [-l live]"

// rootSynopsis is the synopsis of treeshift itself.
const rootSynopsis = "treeshift [-h] [-z] [-v verbosity] [-l live] [--root dir] [--wait duration] command ..."

// synopsis returns the synopsis of command node n: "treeshift", the
// command's path with the options of the groups on it, then its own options
// and arguments. With globals, the common global options come right after
// the command's name, as -h shows them.
func synopsis(n *kong.Node, globals bool) string {
	var path []*kong.Node
	for p := n; p != nil && p.Type == kong.CommandNode; p = p.Parent {
		path = append([]*kong.Node{p}, path...)
	}
	words := []string{"treeshift"}
	for i, p := range path {
		words = append(words, p.Name)
		if i == len(path)-1 && globals {
			words = append(words, globalSynopsis)
		}
		for _, f := range p.Flags {
			if !f.Hidden {
				words = append(words, flagSynopsis(f))
			}
		}
	}
	for _, a := range n.Positional {
		words = append(words, argSynopsis(a))
	}
	if len(commandChildren(n)) > 0 {
		words = append(words, "command ...")
	}
	return strings.Join(words, " ")
}

func flagSynopsis(f *kong.Flag) string {
	s := "--" + f.Name
	if f.Short != 0 {
		s = "-" + string(f.Short)
	}
	if !f.IsBool() && !f.IsCounter() {
		s += " " + placeholder(f)
	}
	// A flag the parser leaves optional so that a command group can list
	// its subcommands without it is still needed by each of them: it is
	// tagged needed:"".
	if f.Required || f.Tag.Has("needed") {
		return s
	}
	return "[" + s + "]"
}

// placeholder is a flag's value as a lowercase word (VERSION, USERS), or
// its choices (files|s6).
func placeholder(f *kong.Flag) string {
	if f.Enum != "" {
		return strings.Join(f.EnumSlice(), "|")
	}
	p := f.PlaceHolder
	if p == "" {
		p = f.Name
	}
	return strings.ToLower(p)
}

func argSynopsis(a *kong.Positional) string {
	s := a.Name
	if a.IsSlice() {
		s = strings.TrimSuffix(s, "s") + "..."
	}
	if a.Required {
		return s
	}
	return "[" + s + "]"
}

// commandChildren lists a node's visible subcommands.
func commandChildren(n *kong.Node) []*kong.Node {
	var out []*kong.Node
	for _, c := range n.Children {
		if c.Type == kong.CommandNode && !c.Hidden {
			out = append(out, c)
		}
	}
	return out
}

// leaves lists every visible command that runs (has no subcommands), in
// the order of the command line's definition.
func leaves(n *kong.Node) []*kong.Node {
	var out []*kong.Node
	for _, c := range commandChildren(n) {
		if len(commandChildren(c)) == 0 {
			out = append(out, c)
		} else {
			out = append(out, leaves(c)...)
		}
	}
	return out
}
