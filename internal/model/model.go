// Package model holds the in-memory form of a tree: its metadata, one resolve
// record per service, and its compiled index. Every on-disk format encodes
// exactly this, which is what makes a migration lossless by construction and
// checkable by comparing two values.
package model

import (
	"fmt"
	"io/fs"
	"slices"
	"strings"
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

// Service returns the record named name, or nil.
func (t *Tree) Service(name string) *Service {
	i, ok := slices.BinarySearchFunc(t.Services, name, func(s Service, n string) int { return strings.Compare(s.Name, n) })
	if !ok {
		return nil
	}
	return &t.Services[i]
}

// Put inserts or replaces the record of s.Name, keeping Services sorted.
func (t *Tree) Put(s Service) {
	i, ok := slices.BinarySearchFunc(t.Services, s.Name, func(s Service, n string) int { return strings.Compare(s.Name, n) })
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
	for _, c := range []byte(s) {
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("._@-+:", c) >= 0
		if !ok {
			if c == '/' {
				return fmt.Errorf("name %q contains \"/\"", s)
			}
			return fmt.Errorf("name %q contains %q: only letters, digits and ._@-+: are allowed", s, c)
		}
	}
	return nil
}

// Validate checks the invariants every decoder and writer relies on: valid
// and unique names, sorted records, known types, and an index that refers only
// to enabled services of the tree.
func (t *Tree) Validate() error {
	if err := CheckName(t.Name); err != nil {
		return fmt.Errorf("tree name: %w", err)
	}
	for _, u := range t.Allow {
		if err := CheckName(u); err != nil {
			return fmt.Errorf("allowed user: %w", err)
		}
	}
	if !slices.IsSorted(t.Allow) {
		return fmt.Errorf("allowed users are not sorted")
	}
	for i, s := range t.Services {
		if err := CheckName(s.Name); err != nil {
			return fmt.Errorf("service: %w", err)
		}
		if i > 0 && t.Services[i-1].Name >= s.Name {
			return fmt.Errorf("service %q is out of order or repeated", s.Name)
		}
		switch s.Type {
		case Classic, Longrun, Oneshot, Bundle:
		default:
			return fmt.Errorf("service %q has unknown type %q", s.Name, s.Type)
		}
		for _, d := range append(slices.Clone(s.Depends), s.Contents...) {
			if err := CheckName(d); err != nil {
				return fmt.Errorf("service %q: dependency: %w", s.Name, err)
			}
		}
	}
	seen := map[string]bool{}
	for _, e := range t.Index.Entries {
		s := t.Service(e.Name)
		if s == nil || !s.Enabled {
			return fmt.Errorf("index names %q, which is not an enabled service of the tree", e.Name)
		}
		for _, d := range e.Deps {
			if !seen[d] {
				return fmt.Errorf("index places %q before its dependency %q", e.Name, d)
			}
		}
		seen[e.Name] = true
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
