package cli

import (
	"fmt"
	"io"
	"strings"

	"github.com/alecthomas/kong"

	"github.com/treeshift/treeshift/internal/version"
)

// ManPage returns treeshift(1) in roff, dated date (YYYY-MM-DD): the
// synopses, commands and options from the command-line model, and the
// sections no model holds.
func ManPage(date string) (string, error) {
	var c CLI
	parser, err := newParser(&c, io.Discard, io.Discard)
	if err != nil {
		return "", err
	}
	root := parser.Model.Node
	var b strings.Builder
	p := func(format string, args ...any) { fmt.Fprintf(&b, format+"\n", args...) }
	p(`.TH TREESHIFT 1 "%s" "treeshift %s" "User Commands"`, date, version.Release)
	p(".nh") // option names and paths must not be hyphenated
	p(".SH NAME")
	p(`treeshift \- %s`, roff(strings.TrimSuffix(lowerFirst(Description), ".")))

	p(".SH SYNOPSIS")
	p(".HP 4")
	p("%s", synopsisRoff(rootSynopsis))
	for _, n := range leaves(root) {
		p(".HP 4")
		p("%s", synopsisRoff(synopsis(n, false)))
	}

	p(".SH DESCRIPTION")
	for _, para := range strings.Split(longDescription, "\n") {
		p(".PP")
		p("%s", roff(para))
	}

	p(".SH GLOBAL OPTIONS")
	p(".PP")
	p("Every command takes these options, before or after its name.")
	for _, f := range root.Flags {
		if !f.Hidden {
			flagRoff(&b, f)
		}
	}

	p(".SH COMMANDS")
	for _, n := range leaves(root) {
		p(`.SS "%s"`, roff(strings.TrimPrefix(n.FullPath(), "treeshift ")))
		p(".HP 4")
		p("%s", synopsisRoff(synopsis(n, false)))
		p(".PP")
		p("%s", roff(n.Help))
		if d := commandDetail[strings.TrimPrefix(n.FullPath(), "treeshift ")]; d != "" {
			p(".PP")
			p("%s", roff(d))
		}
		for _, a := range n.Positional {
			p(".TP")
			p(`\fI%s\fR`, roff(argSynopsis(a)))
			p("%s", roff(a.Help))
		}
		// A group's own options (cluster --store) are listed with each of
		// its commands, since each needs them.
		for q := n; q != nil && q != root; q = q.Parent {
			for _, f := range q.Flags {
				if !f.Hidden {
					flagRoff(&b, f)
				}
			}
		}
	}

	for _, s := range []struct{ title, text string }{
		{"EXIT STATUS", exitStatus},
		{"FILES", files},
		{"ENVIRONMENT", environment},
		{"EXAMPLES", examples},
		{"SEE ALSO", seeAlso},
	} {
		p(".SH %s", s.title)
		for _, para := range strings.Split(s.text, "\n") {
			if k, v, ok := strings.Cut(para, ": "); ok && s.title != "SEE ALSO" {
				p(".TP")
				p(`\fB%s\fR`, roff(k))
				p("%s", roff(v))
			} else {
				p(".PP")
				p("%s", roff(para))
			}
		}
	}
	return b.String(), nil
}

// flagRoff writes a flag as a tagged paragraph: its forms in bold, its
// value in italics, its help.
func flagRoff(b *strings.Builder, f *kong.Flag) {
	forms := `\fB\-\-` + roff(f.Name) + `\fR`
	if f.Short != 0 {
		forms = `\fB\-` + string(f.Short) + `\fR, ` + forms
	}
	if !f.IsBool() && !f.IsCounter() {
		forms += ` \fI` + roff(placeholder(f)) + `\fR`
	}
	help := f.Help
	if f.HasDefault && f.Default != "" && !f.IsBool() && !strings.Contains(help, "default") {
		help += " Default: " + f.Default + "."
	}
	fmt.Fprintf(b, ".TP\n%s\n%s\n", forms, roff(help))
}

// synopsisRoff sets a synopsis: the command in bold, the rest plain.
func synopsisRoff(s string) string {
	words := strings.Fields(s)
	bold := []string{words[0]}
	rest := words[1:]
	for len(rest) > 0 && !strings.ContainsAny(rest[0][:1], "[-") && rest[0] != "command" && !isArg(rest[0]) {
		bold = append(bold, rest[0])
		rest = rest[1:]
	}
	return `\fB` + roff(strings.Join(bold, " ")) + `\fR ` + roff(strings.Join(rest, " "))
}

// isArg reports whether a synopsis word is an argument, not a command name.
func isArg(w string) bool { return strings.HasSuffix(w, "...") || w != strings.ToLower(w) }

// roff escapes text for a roff line: backslashes, the minus signs of
// options, and a leading control character.
func roff(s string) string {
	s = strings.ReplaceAll(s, `\`, `\e`)
	s = strings.ReplaceAll(s, "-", `\-`)
	if strings.HasPrefix(s, ".") || strings.HasPrefix(s, "'") {
		s = `\&` + s
	}
	return s
}

func lowerFirst(s string) string {
	if s == "" {
		return s
	}
	return strings.ToLower(s[:1]) + s[1:]
}

// Each line of these texts is a paragraph of the page; in EXIT STATUS,
// FILES, ENVIRONMENT and EXAMPLES, "TERM: text" is a tagged paragraph.

const longDescription = `treeshift moves a service manager's trees and live databases from one on-disk format to another without a reboot and without stopping or restarting any running service. It is modelled on 66-update: per tree it saves the state to a journal, moves the live database to a private copy, builds the tree in the new format beside the old one, verifies that it describes exactly the saved state and switches the live database over.
A crash at any point is finished or rolled back by the next treeshift update; other commands refuse to change a tree while an update is unfinished.
Run as root, treeshift works on the system's trees; run as another user, on that user's own trees. --root prefixes every path, so a whole system staged in a directory can be worked on.`

// commandDetail says more of the commands whose one-line help is not
// enough.
var commandDetail = map[string]string{
	"update":             "With no tree named, every tree of the invoking owner, in start order. A tree already in the target format is left alone. At -v 2 a line is printed for each tree moved and one line of counts; -d prints every action the real run would take, in its order, each line prefixed \"dry run do: \", and changes nothing.",
	"plan":               "Exits 0 when every tree may move now, 111 when one may not, printing what to do first (the commands to run).",
	"scandir create":     "Root only: makes a user's live area (LIVE/tree/UID and LIVE/scandir/UID) owned by the user, under root-owned parents, so that the user's own treeshift can make trees live without a world-writable live directory (66-scandir's -o).",
	"reverse":            "The script's commands carry no --root or -l; set TREESHIFT to add them when running it.",
	"cluster roll":       "Refused when the members that stay up would not hold quorum: more than half of all votes, with the quorum vote if there is one.",
	"cluster undo":       "Undoes the most recent stage; a roll is undone per member (undo roll MEMBER). Nothing can be undone from switch on.",
	"help":               "The same as COMMAND --help.",
	"tree create":        "A tree starts empty, in the format given (default: the newest); enable services into it with treeshift enable.",
	"cluster check":      "Checks every member's trees decode, have a path to the target format allowed with services running, and that each member has room for its tagged copies.",
	"cluster status":     "Shows the stage, the next stage, the versions, the lead, each member's votes and last record, and any stage started and not finished with the command that resumes it.",
	"status":             "Shows each tree's format, place in the start order, users, services with their dependencies, and live state: up, down, or for a bundle partial; pids and uptimes under s6.",
	"formats":            "Prints each format version and the upgrade_from directives that say from which versions, and in which condition of a tree, it may be reached.",
	"cluster preinstall": "Checks that the lead member's tagged copies decode to its trees.",
}

const exitStatus = `0: success, also when there is nothing to do.
100: wrong usage, found before anything is changed: a bad option, an unknown tree or service, a bad name, a service definition error, a dependency cycle.
111: a system call failed, or a tree was refused (its tunability is not met) or found corrupt or inconsistent. Each tree named in a fatal message is as it was before the command: in its old format, its live database unchanged. With update, trees not named were moved to the target format or were in it already: one tree refused (its tunability not met) does not hold the others back, while a tree found corrupt stops the update before any tree moves. An interrupted update leaves a journal that the next update finishes or rolls back.`

const files = `/var/lib/treeshift: root's system directory: the state file, the owner lock, tree/NAME links to tree generations, live/NAME records, journal/update while an update runs.
$XDG_DATA_HOME/treeshift: a user's system directory (default ~/.local/share/treeshift).
/run/treeshift: the live directory (changed with -l): tree/UID/NAME/compiled links, service states, s6 service directories, scandir/UID.
/etc/treeshift/service, /usr/share/treeshift/service: service definitions, searched in that order, after $XDG_CONFIG_HOME/treeshift/service for a user.
--root DIR: every path above is prefixed with DIR.`

const environment = `NO_COLOR: when set, -z does not colour.
HOME, XDG_DATA_HOME, XDG_CONFIG_HOME: where a user's trees and service definitions are.`

const examples = `treeshift update -d: a dry run first, as root.
treeshift -v 3 update: then the real run, with every action traced.
treeshift plan --to 1: what a downgrade to format 1 requires; then treeshift update --to 1.
treeshift --root /mnt update: the trees of a system staged or mounted at /mnt.`

const seeAlso = `66-update(1), 66-scandir(1), s6-svscan(8). The documents under docs/ in the source: FORMATS.md (every file written, byte for byte), MIGRATION.md (directives and tunability), CLUSTER.md, JSON.md.`
