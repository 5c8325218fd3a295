// Package compile turns a tree's enabled resolve records into its compiled
// database: the index in start order and the service directories a supervisor
// runs from. It is pure and deterministic, so the same records always compile
// to the same bytes, which is what lets a migration verify its result by
// recompiling.
package compile

import (
	"fmt"
	"slices"
	"strings"

	"github.com/treeshift/treeshift/internal/model"
)

// Dir is the compiled database's directory inside a tree directory.
const Dir = "compiled"

// ServiceDirsName is the directory of service directories in a compiled
// database.
const ServiceDirsName = "servicedirs"

// CycleError reports a dependency cycle, listing it from a service back to
// itself.
type CycleError struct{ Cycle []string }

func (e *CycleError) Error() string {
	return "dependency cycle: " + strings.Join(e.Cycle, " -> ")
}

// MissingError reports an enabled service depending on one the tree does not
// have enabled.
type MissingError struct{ Service, Dep string }

func (e *MissingError) Error() string {
	return fmt.Sprintf("service %s depends on %s, which is not enabled in the tree", e.Service, e.Dep)
}

// Index computes the compiled index of t's enabled services: a topological
// order in which every service comes after its dependencies (a bundle after
// its contents), ties broken by name.
func Index(t *model.Tree) (model.Index, error) {
	deps := map[string][]string{}
	types := map[string]string{}
	var names []string
	for _, s := range t.Services {
		if !s.Enabled {
			continue
		}
		d := s.Depends
		if s.Type == model.Bundle {
			d = s.Contents
		}
		d = slices.Clone(d)
		slices.Sort(d)
		deps[s.Name] = d
		types[s.Name] = s.Type
		names = append(names, s.Name)
	}
	for _, n := range names {
		for _, d := range deps[n] {
			if _, ok := deps[d]; !ok {
				return model.Index{}, &MissingError{Service: n, Dep: d}
			}
		}
	}
	if c := findCycle(names, deps); c != nil {
		return model.Index{}, &CycleError{Cycle: c}
	}
	// Kahn's algorithm over names in sorted order: deterministic output.
	pending := map[string]int{}
	users := map[string][]string{}
	for _, n := range names {
		pending[n] = len(deps[n])
		for _, d := range deps[n] {
			users[d] = append(users[d], n)
		}
	}
	var ready []string
	for _, n := range names {
		if pending[n] == 0 {
			ready = append(ready, n)
		}
	}
	var x model.Index
	for len(ready) > 0 {
		slices.Sort(ready)
		n := ready[0]
		ready = ready[1:]
		x.Entries = append(x.Entries, model.IndexEntry{Name: n, Type: types[n], Deps: deps[n]})
		for _, u := range users[n] {
			if pending[u]--; pending[u] == 0 {
				ready = append(ready, u)
			}
		}
	}
	return x, nil
}

// findCycle returns one cycle among names, or nil.
func findCycle(names []string, deps map[string][]string) []string {
	const (
		white = iota
		grey
		black
	)
	color := map[string]int{}
	var stack []string
	var visit func(n string) []string
	visit = func(n string) []string {
		color[n] = grey
		stack = append(stack, n)
		for _, d := range deps[n] {
			switch color[d] {
			case grey:
				i := slices.Index(stack, d)
				return append(slices.Clone(stack[i:]), d)
			case white:
				if c := visit(d); c != nil {
					return c
				}
			}
		}
		stack = stack[:len(stack)-1]
		color[n] = black
		return nil
	}
	for _, n := range names {
		if color[n] == white {
			if c := visit(n); c != nil {
				return c
			}
		}
	}
	return nil
}

// Execline is the interpreter of run scripts written with @build = auto.
const Execline = "/usr/bin/execlineb -P"

// ServiceDirs returns the service directory files of t's enabled services,
// named under Dir. Longruns and classics get run (and finish) scripts as s6
// expects; oneshots get up (and down) scripts; bundles have no directory.
func ServiceDirs(t *model.Tree) []model.File {
	var files []model.File
	for _, s := range t.Services {
		if !s.Enabled || s.Type == model.Bundle {
			continue
		}
		base := Dir + "/" + ServiceDirsName + "/" + s.Name + "/"
		up, down := "run", "finish"
		if s.Type == model.Oneshot {
			up, down = "up", "down"
		}
		files = append(files, model.File{Name: base + "type", Data: []byte(s.Type + "\n"), Mode: 0o644})
		files = append(files, model.File{Name: base + up, Data: script(s.Start), Mode: 0o755})
		if s.Stop.Execute != "" {
			files = append(files, model.File{Name: base + down, Data: script(s.Stop), Mode: 0o755})
		}
		for _, e := range s.Env {
			files = append(files, model.File{Name: base + "env/" + e.Key, Data: []byte(e.Value + "\n"), Mode: 0o644})
		}
	}
	return files
}

func script(s model.Script) []byte {
	interp := Execline
	if s.Build == "custom" {
		interp = s.Shebang
	}
	return []byte("#!" + interp + "\n" + s.Execute + "\n")
}
