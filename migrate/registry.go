// Package migrate is the one transition engine: every change to a tree, a
// live link or the format stamp goes through it. A Registry holds each
// format version's declared sources (upgrade_from directives with their
// tunability, as Sun Cluster's RTR files declare them); a Plan is the path
// of hops from a tree's version to a target, checked against the tree's
// condition before anything is touched; an Engine runs a plan as a
// journaled transition — the owner lock, the journal, a private copy of the
// live database, the new generation built beside the old one, verified,
// swapped in, the stamp moved — and recovers an interrupted one. update,
// plan, the tree commands and every cluster stage call it; no other code
// converts a tree, relinks it or moves the stamp.
package migrate

import (
	_ "embed"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/treeshift/treeshift/format"
	"github.com/treeshift/treeshift/internal/durable"
	"github.com/treeshift/treeshift/internal/fserr"
)

//go:embed directives.rtr
var shipped string

// Shipped is the source of the directives built into treeshift.
const Shipped = "shipped"

// Directive is one upgrade_from line: a version may be reached from From
// (0 is the empty version "": any version the block does not list, or
// none) when the tree satisfies Tunability.
type Directive struct {
	From       int        `json:"from"`
	Tunability Tunability `json:"tunability"`
	// Source says where the directive comes from: Shipped, or FILE:LINE of
	// a distribution's file that tightened it.
	Source string `json:"source"`
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

// parseVersion reads a version as directives write it: a number, or a
// quoted number, or "" for the empty version (0).
func parseVersion(s string) (int, error) {
	if strings.HasPrefix(s, `"`) {
		u, err := strconv.Unquote(s)
		if err != nil {
			return 0, fmt.Errorf("version %s is not a quoted string", s)
		}
		if u == "" {
			return 0, nil
		}
		s = u
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 || strconv.Itoa(n) != s {
		return 0, fmt.Errorf("version %q is not a positive number or \"\"", s)
	}
	return n, nil
}

// ParseRegistry reads directives text: `version N` opens a version's block,
// `upgrade_from N TUNABILITY` lines follow, `#` starts a comment (the first
// comment of a block describes the version). A version is a number, quoted
// or not, or "" — the empty version: as a block, trees written before
// records stated their version; as a source, any version the block does not
// list.
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
			n, err := parseVersion(f[1])
			if err != nil {
				return nil, fmt.Errorf("line %d: %v", ln, err)
			}
			if r.Version(n) != nil {
				return nil, fmt.Errorf("line %d: version %s declared twice", ln, format.Name(n))
			}
			r.Versions = append(r.Versions, Version{Number: n})
			cur = &r.Versions[len(r.Versions)-1]
		case f[0] == "upgrade_from" && len(f) == 3:
			if cur == nil {
				return nil, fmt.Errorf("line %d: upgrade_from before any version", ln)
			}
			from, err := parseVersion(f[1])
			if err != nil {
				return nil, fmt.Errorf("line %d: source %v", ln, err)
			}
			if from == cur.Number && from != 0 {
				return nil, fmt.Errorf("line %d: version %s declared as its own source", ln, format.Name(from))
			}
			t, err := ParseTunability(f[2])
			if err != nil {
				return nil, fmt.Errorf("line %d: %v", ln, err)
			}
			for _, d := range cur.Directives {
				if d.From == from {
					return nil, fmt.Errorf("line %d: version %s declares source %s twice", ln, format.Name(cur.Number), format.Name(from))
				}
			}
			cur.Directives = append(cur.Directives, Directive{From: from, Tunability: t, Source: Shipped})
		default:
			return nil, fmt.Errorf("line %d: expected \"version N\" or \"upgrade_from N TUNABILITY\", found %q", ln, line)
		}
	}
	for _, v := range r.Versions {
		for _, d := range v.Directives {
			if d.From != 0 && r.Version(d.From) == nil {
				return nil, fmt.Errorf("version %s declares source %s, which is not a declared version", format.Name(v.Number), format.Name(d.From))
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
// declared: by a directive for from, else by the block's "" directive
// (any version not listed), else it is not, and is WHEN_UNMANAGED.
func (r *Registry) Directive(from, to int) (Tunability, bool) {
	d, ok := r.directive(from, to)
	if !ok {
		return WhenUnmanaged, false
	}
	return d.Tunability, true
}

func (r *Registry) directive(from, to int) (Directive, bool) {
	v := r.Version(to)
	if v == nil || from == to {
		return Directive{}, false
	}
	for _, d := range v.Directives {
		if d.From == from {
			return d, true
		}
	}
	for _, d := range v.Directives {
		if d.From == 0 {
			return d, true
		}
	}
	return Directive{}, false
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

// FormatDirs are the directories, inside the root, where a distribution
// may put a file of directives beside each format version: N.rtr for
// version N, read in this order.
var FormatDirs = []string{"/usr/share/treeshift/format", "/etc/treeshift/format"}

// maxRTR bounds a directives file.
const maxRTR = 64 << 10

// Load returns the shipped directives as tightened by the files beside
// each format under root (a host path): FormatDirs/N.rtr, in the style of a
// Sun Cluster RTR file — comments, then `#$upgrade`, then `#$upgrade_from
// "VERSION" TUNABILITY` lines. A file may only tighten: a directive may make
// a hop more demanding than the shipped one (or than the default), never
// less. A malformed file, or one that loosens, is refused naming the file
// and line.
func Load(root string) (*Registry, error) {
	r := Default()
	// Files are looked up within the root: a link on the way that points
	// out of it is not followed.
	rt, err := os.OpenRoot(root)
	if err != nil {
		return nil, err
	}
	defer rt.Close()
	for _, dir := range FormatDirs {
		for i := range r.Versions {
			v := &r.Versions[i]
			if v.Number == 0 {
				continue // no file names the empty version
			}
			name := filepath.Join(dir, strconv.Itoa(v.Number)+".rtr")
			b, err := readRTR(rt, name)
			if errors.Is(err, fs.ErrNotExist) {
				continue
			}
			if err != nil {
				return nil, fmt.Errorf("%s: %w", name, fserr.Cause(err))
			}
			if err := r.tighten(v, name, string(b)); err != nil {
				return nil, err
			}
		}
	}
	return r, nil
}

// readRTR reads a directives file, refusing a link, a special file, or one
// over maxRTR.
func readRTR(rt *os.Root, name string) ([]byte, error) {
	rel := strings.TrimPrefix(name, "/")
	fi, err := rt.Lstat(rel)
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("a %s where a file of directives belongs", durable.Kind(fi.Mode()))
	}
	if fi.Size() > maxRTR {
		return nil, fmt.Errorf("%d bytes, over the %d-byte limit of a file of directives", fi.Size(), maxRTR)
	}
	return rt.ReadFile(rel)
}

// tighten applies the RTR-style file name (its text) to version v.
func (r *Registry) tighten(v *Version, name, text string) error {
	upgrade := false
	for i, line := range strings.Split(text, "\n") {
		where := fmt.Sprintf("%s:%d", name, i+1)
		line = strings.TrimSpace(line)
		switch {
		case line == "" || (strings.HasPrefix(line, "#") && !strings.HasPrefix(line, "#$")):
			continue
		case line == "#$upgrade":
			if upgrade {
				return fmt.Errorf("%s: #$upgrade given twice", where)
			}
			upgrade = true
			continue
		case !strings.HasPrefix(line, "#$upgrade_from"):
			return fmt.Errorf("%s: expected a comment, #$upgrade or #$upgrade_from \"VERSION\" TUNABILITY, found %q", where, clip(line))
		}
		if !upgrade {
			return fmt.Errorf("%s: #$upgrade_from before #$upgrade", where)
		}
		f := strings.Fields(line)
		if len(f) != 3 || f[0] != "#$upgrade_from" {
			return fmt.Errorf("%s: expected #$upgrade_from \"VERSION\" TUNABILITY, found %q", where, clip(line))
		}
		from, err := parseVersion(f[1])
		if err != nil {
			return fmt.Errorf("%s: source %v", where, err)
		}
		if from != 0 && (from == v.Number || r.Version(from) == nil) {
			return fmt.Errorf("%s: source %s is not another known version", where, format.Name(from))
		}
		t, err := ParseTunability(f[2])
		if err != nil {
			return fmt.Errorf("%s: %v", where, err)
		}
		// What the hop is now: for "", the block's "" directive or the
		// default; for a version, what Directive says.
		was, declared := WhenUnmanaged, false
		if from == 0 {
			for _, d := range v.Directives {
				if d.From == 0 {
					was, declared = d.Tunability, true
				}
			}
		} else {
			was, declared = r.Directive(from, v.Number)
		}
		if t < was {
			how := "shipped"
			if !declared {
				how = "the default"
			}
			return fmt.Errorf("%s: a file may only tighten a directive: %s from %s is %s (%s), and %s is less demanding",
				where, format.Name(v.Number), format.Name(from), was, how, t)
		}
		d := Directive{From: from, Tunability: t, Source: where}
		replaced := false
		for j := range v.Directives {
			if v.Directives[j].From == from {
				v.Directives[j], replaced = d, true
			}
		}
		if !replaced {
			v.Directives = append(v.Directives, d)
		}
	}
	return nil
}

func clip(s string) string {
	if len(s) > 60 {
		return s[:60] + "..."
	}
	return s
}
