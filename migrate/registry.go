// Package migrate is the one place a tree changes format. A Registry holds
// each format version's declared sources (upgrade_from directives with their
// tunability); a Plan is the path of hops from a tree's version to a target,
// checked against the tree's condition before anything is touched; and a plan
// runs as Steps, each able to describe itself for a dry run, apply, and undo,
// so a failed hop leaves the tree as it was.
//
// update and every cluster stage call this package; no other code converts a
// tree between formats.
package migrate

import (
	_ "embed"
	"fmt"
	"slices"
	"strconv"
	"strings"
)

//go:embed directives.rtr
var shipped string

// Directive is one upgrade_from line: a version may be reached from From when
// the tree satisfies Tunability.
type Directive struct {
	From       int        `json:"from"`
	Tunability Tunability `json:"tunability"`
}

// Version is a format version and the sources it declares, in file order.
type Version struct {
	Number     int         `json:"version"`
	Comment    string      `json:"comment"`
	Directives []Directive `json:"upgrade_from"`
}

// Registry is the set of known versions and their directives.
type Registry struct {
	Versions []Version
}

// Default returns the registry of the directives shipped with treeshift.
func Default() *Registry {
	r, err := ParseRegistry(shipped)
	if err != nil {
		panic("shipped directives: " + err.Error())
	}
	return r
}

// ParseRegistry reads directives text: "version N" opens a version's block,
// "upgrade_from V TUNABILITY" lines follow, "#" starts a comment (the first
// comment of a block describes the version).
func ParseRegistry(text string) (*Registry, error) {
	r := &Registry{}
	var cur *Version
	for i, line := range strings.Split(text, "\n") {
		ln := i + 1
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		if strings.HasPrefix(line, "#") {
			if cur != nil && cur.Comment == "" && len(cur.Directives) == 0 {
				cur.Comment = strings.TrimSpace(strings.TrimPrefix(line, "#"))
			}
			continue
		}
		f := strings.Fields(line)
		switch {
		case f[0] == "version" && len(f) == 2:
			n, err := strconv.Atoi(f[1])
			if err != nil || n < 1 {
				return nil, fmt.Errorf("line %d: version %q is not a positive number", ln, f[1])
			}
			if r.Version(n) != nil {
				return nil, fmt.Errorf("line %d: version %d declared twice", ln, n)
			}
			r.Versions = append(r.Versions, Version{Number: n})
			cur = &r.Versions[len(r.Versions)-1]
		case f[0] == "upgrade_from" && len(f) == 3:
			if cur == nil {
				return nil, fmt.Errorf("line %d: upgrade_from before any version", ln)
			}
			from, err := strconv.Atoi(f[1])
			if err != nil || from < 1 {
				return nil, fmt.Errorf("line %d: source version %q is not a positive number", ln, f[1])
			}
			if from == cur.Number {
				return nil, fmt.Errorf("line %d: version %d declared as its own source", ln, from)
			}
			t, err := ParseTunability(f[2])
			if err != nil {
				return nil, fmt.Errorf("line %d: %v", ln, err)
			}
			for _, d := range cur.Directives {
				if d.From == from {
					return nil, fmt.Errorf("line %d: version %d declares source %d twice", ln, cur.Number, from)
				}
			}
			cur.Directives = append(cur.Directives, Directive{From: from, Tunability: t})
		default:
			return nil, fmt.Errorf("line %d: expected \"version N\" or \"upgrade_from N TUNABILITY\", found %q", ln, line)
		}
	}
	for _, v := range r.Versions {
		for _, d := range v.Directives {
			if r.Version(d.From) == nil {
				return nil, fmt.Errorf("version %d declares source %d, which is not a declared version", v.Number, d.From)
			}
		}
	}
	slices.SortFunc(r.Versions, func(a, b Version) int { return a.Number - b.Number })
	return r, nil
}

// Version returns version n, or nil.
func (r *Registry) Version(n int) *Version {
	for i := range r.Versions {
		if r.Versions[i].Number == n {
			return &r.Versions[i]
		}
	}
	return nil
}

// Newest is the highest version.
func (r *Registry) Newest() int { return r.Versions[len(r.Versions)-1].Number }

// Directive returns the tunability of the hop from → to and whether it is
// declared; an undeclared hop is WhenUnmanaged.
func (r *Registry) Directive(from, to int) (Tunability, bool) {
	if v := r.Version(to); v != nil {
		for _, d := range v.Directives {
			if d.From == from {
				return d.Tunability, true
			}
		}
	}
	return WhenUnmanaged, false
}

// Path returns the hops from → to: the path over declared hops (never an
// AT_CREATION one) with the fewest hops; among those, the one whose most
// demanding hop is least demanding; then the one visiting lower versions
// first. Only when no declared path exists is the direct hop taken, with its
// declared tunability (AT_CREATION) or the WHEN_UNMANAGED default. The answer
// depends only on the directives, never on a tree's state.
func (r *Registry) Path(from, to int) []Hop {
	if from == to {
		return nil
	}
	var best []int
	bestKey := func(p []int) (int, Tunability) {
		worst := Anytime
		for i := 1; i < len(p); i++ {
			t, _ := r.Directive(p[i-1], p[i])
			worst = max(worst, t)
		}
		return len(p), worst
	}
	better := func(p []int) bool {
		if best == nil {
			return true
		}
		pl, pw := bestKey(p)
		bl, bw := bestKey(best)
		if pl != bl {
			return pl < bl
		}
		if pw != bw {
			return pw < bw
		}
		return slices.Compare(p, best) < 0
	}
	// Depth-first over simple paths of declared hops; the registry is small.
	path := []int{from}
	var walk func(v int)
	walk = func(v int) {
		if best != nil && len(path) > len(best) {
			return
		}
		if v == to {
			if better(path) {
				best = slices.Clone(path)
			}
			return
		}
		for _, w := range r.Versions {
			if slices.Contains(path, w.Number) {
				continue
			}
			if t, declared := r.Directive(v, w.Number); declared && t != AtCreation {
				path = append(path, w.Number)
				walk(w.Number)
				path = path[:len(path)-1]
			}
		}
	}
	walk(from)
	if best == nil {
		best = []int{from, to}
	}
	hops := make([]Hop, 0, len(best)-1)
	for i := 1; i < len(best); i++ {
		t, declared := r.Directive(best[i-1], best[i])
		hops = append(hops, Hop{From: best[i-1], To: best[i], Tunability: t, Declared: declared})
	}
	return hops
}
