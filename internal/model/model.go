// Package model holds the in-memory form of a tree: its metadata, one resolve
// record per service, and its compiled index. Every on-disk format encodes
// exactly this, which is what makes a migration lossless by construction and
// checkable by comparing two values.
package model

import (
	"fmt"
	"io/fs"
	"slices"
	"sort"
	"strings"
	"unicode/utf8"
)

// Service types, as in the 66 frontend syntax.
const (
	Classic = "classic"
	Longrun = "longrun"
	Oneshot = "oneshot"
	Bundle  = "bundle"
)

// Tree is a named set of services.
type Tree struct {
	// Name is the tree's name, a valid Name.
	Name string
	// Allow lists the user names allowed to use the tree, sorted.
	Allow []string
	// Services holds one resolve record per service known to the tree,
	// sorted by name.
	Services []Service
	// Index is the compiled database index of the enabled services.
	Index Index
}

// Service is a resolve record: a service definition as parsed, plus what the
// tree knows of it.
type Service struct {
	Name        string
	Type        string
	Description string
	Version     string
	// User lists the users the service may run as.
	User []string
	// Depends lists the services that must be up before this one, in
	// declaration order.
	Depends []string
	// Contents lists a bundle's members.
	Contents []string
	Enabled  bool
	// Source is the definition file the record was derived from, as a path
	// inside the root.
	Source string
	// Digest is "sha256:" and the hex SHA-256 of the definition file.
	Digest string
	Start  Script
	Stop   Script
	// Env holds the [environment] section in file order.
	Env []EnvVar
}

// Script is a [start] or [stop] section.
type Script struct {
	// Build is "auto" (an execline script) or "custom" (Shebang runs it).
	Build   string
	Shebang string
	Execute string
}

// EnvVar is one KEY=VALUE line of an [environment] section.
type EnvVar struct{ Key, Value string }

// Index is the compiled database index: the enabled services in start order.
type Index struct {
	Entries []IndexEntry
}

// IndexEntry is one service of the compiled database.
type IndexEntry struct {
	Name string
	Type string
	// Deps are the direct dependencies (for a bundle, its contents), sorted.
	Deps []string
}

// search returns where the record named name is, or belongs, in Services.
// It compares by index: a comparison function taking a Service would copy
// the whole record at every step, which made looking up every dependency of
// a large tree cost more than decoding it.
func (t *Tree) search(name string) (int, bool) {
	i := sort.Search(len(t.Services), func(i int) bool { return t.Services[i].Name >= name })
	return i, i < len(t.Services) && t.Services[i].Name == name
}

// Service returns the record named name, or nil.
func (t *Tree) Service(name string) *Service {
	i, ok := t.search(name)
	if !ok {
		return nil
	}
	return &t.Services[i]
}

// Put inserts or replaces the record of s.Name, keeping Services sorted.
func (t *Tree) Put(s Service) {
	i, ok := t.search(s.Name)
	if ok {
		t.Services[i] = s
		return
	}
	t.Services = slices.Insert(t.Services, i, s)
}

// Entry returns the index entry named name, or nil.
func (x *Index) Entry(name string) *IndexEntry {
	for i := range x.Entries {
		if x.Entries[i].Name == name {
			return &x.Entries[i]
		}
	}
	return nil
}

// MaxNameLen bounds tree, service and user names: they become file names.
const MaxNameLen = 64

// CheckName reports whether s can name a tree, a service or a user: it must be
// a single, non-hidden path element of printable ASCII letters, digits and
// "._@-+:", at most MaxNameLen bytes.
func CheckName(s string) error {
	switch {
	case s == "":
		return fmt.Errorf("empty name")
	case len(s) > MaxNameLen:
		return fmt.Errorf("name %q is longer than %d bytes", s, MaxNameLen)
	case s[0] == '.':
		return fmt.Errorf("name %q starts with a dot", s)
	case strings.Contains(s, ".."):
		return fmt.Errorf("name %q contains \"..\"", s)
	}
	// By rune, so that a message shows the character a user typed, not the
	// first byte of its encoding.
	for i, c := range s {
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.ContainsRune("._@-+:", c)
		switch {
		case ok:
		case c == '/':
			return fmt.Errorf("name %q contains \"/\"", s)
		case c == utf8.RuneError && !strings.HasPrefix(s[i:], "\uFFFD"):
			return fmt.Errorf("name %q contains the byte %#x, which is not UTF-8", s, s[i])
		default:
			return fmt.Errorf("name %q contains %q: only letters, digits and ._@-+: are allowed", s, c)
		}
	}
	return nil
}

// InvalidError is an invariant a tree breaks, with the part of the tree that
// breaks it, so that a reader can name the file holding that part.
type InvalidError struct {
	// Service is the record at fault, if one is.
	Service string
	// Index is set when the index is at fault.
	Index bool
	Err   error
}

func (e *InvalidError) Error() string { return e.Err.Error() }
func (e *InvalidError) Unwrap() error { return e.Err }

func invalid(service string, index bool, format string, args ...any) error {
	return &InvalidError{Service: service, Index: index, Err: fmt.Errorf(format, args...)}
}

// Validate checks the invariants every decoder and writer relies on: valid
// and unique names, sorted records, known types, dependencies of the kind the
// type allows, text in UTF-8, and an index that refers only to enabled
// services of the tree. The error is an *InvalidError.
func (t *Tree) Validate() error {
	if err := CheckName(t.Name); err != nil {
		return invalid("", false, "tree name: %w", err)
	}
	for _, u := range t.Allow {
		if err := CheckName(u); err != nil {
			return invalid("", false, "allowed user: %w", err)
		}
	}
	if !slices.IsSorted(t.Allow) {
		return invalid("", false, "allowed users are not sorted")
	}
	for i := range t.Services {
		s := &t.Services[i]
		// The list of services is the tree's own: a bad or misplaced
		// name is not the fault of the record it names.
		if err := CheckName(s.Name); err != nil {
			return invalid("", false, "service: %w", err)
		}
		if i > 0 && t.Services[i-1].Name >= s.Name {
			return invalid("", false, "service %q is out of order or repeated", s.Name)
		}
		if err := s.validate(); err != nil {
			return &InvalidError{Service: s.Name, Err: err}
		}
	}
	seen := map[string]bool{}
	for _, e := range t.Index.Entries {
		s := t.Service(e.Name)
		if s == nil || !s.Enabled {
			return invalid("", true, "index names %q, which is not an enabled service of the tree", e.Name)
		}
		for _, d := range e.Deps {
			if !seen[d] {
				return invalid("", true, "index places %q before its dependency %q", e.Name, d)
			}
		}
		seen[e.Name] = true
	}
	return nil
}

// validate checks what a record must hold on its own.
func (s *Service) validate() error {
	switch s.Type {
	case Classic, Longrun, Oneshot, Bundle:
	default:
		return fmt.Errorf("service %q has unknown type %q", s.Name, s.Type)
	}
	// The compiler reads a bundle's contents and any other service's
	// depends, and ignores the other list: what it ignores must be empty,
	// or a record would say more than the tree does.
	if s.Type == Bundle && len(s.Depends) > 0 {
		return fmt.Errorf("bundle %q has depends: a bundle lists its members in contents", s.Name)
	}
	if s.Type != Bundle && len(s.Contents) > 0 {
		return fmt.Errorf("service %q is a %s, not a bundle, but has contents", s.Name, s.Type)
	}
	for _, l := range [][]string{s.Depends, s.Contents} {
		for _, d := range l {
			if err := CheckName(d); err != nil {
				return fmt.Errorf("service %q: dependency: %w", s.Name, err)
			}
		}
	}
	// Users are written as a comma-separated list by v1: a user that is
	// not a name would not read back as itself.
	for _, u := range s.User {
		if err := CheckName(u); err != nil {
			return fmt.Errorf("service %q: user: %w", s.Name, err)
		}
	}
	// Checked here as well as by each decoder so that no writer stores
	// what no reader accepts: v2's JSON encoder would silently turn a bad
	// byte into U+FFFD, and v1 and v3 would write a tree they then refuse.
	for _, f := range []struct{ name, v string }{
		{"description", s.Description}, {"version", s.Version}, {"source", s.Source}, {"digest", s.Digest},
		{"start.build", s.Start.Build}, {"start.shebang", s.Start.Shebang}, {"start.execute", s.Start.Execute},
		{"stop.build", s.Stop.Build}, {"stop.shebang", s.Stop.Shebang}, {"stop.execute", s.Stop.Execute},
	} {
		if !utf8.ValidString(f.v) {
			return fmt.Errorf("service %q: %s is not valid UTF-8", s.Name, f.name)
		}
	}
	for _, e := range s.Env {
		if !utf8.ValidString(e.Key) {
			return fmt.Errorf("service %q: the name of environment variable %q is not valid UTF-8", s.Name, e.Key)
		}
		if !utf8.ValidString(e.Value) {
			return fmt.Errorf("service %q: value of environment variable %q is not valid UTF-8", s.Name, e.Key)
		}
	}
	return nil
}

// File is one file of a tree's on-disk form, named relative to the tree
// directory with forward slashes.
type File struct {
	Name string
	Data []byte
	Mode fs.FileMode
}
