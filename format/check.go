package format

import (
	"container/heap"
	"errors"
	"slices"
	"strings"

	"github.com/treeshift/treeshift/internal/model"
)

// layout says where a codec keeps each part of a tree, so that what is wrong
// with a decoded tree as a whole is reported against the file holding it.
type layout interface {
	indexFile() string
	// recordFile is the file holding service svc's record.
	recordFile(svc string) string
	// recordRef is how a message about another file points at svc's record.
	recordRef(svc string) string
}

var _ = []layout{v1{}, v1{legacy: true}, v2{}, v3{}}

// check refuses a decoded tree that treeshift could not have written: one
// breaking model.Validate, or whose records and index disagree. Each file of
// a tree can be well formed, and checksummed, on its own while the tree is
// not: the index of another set of records, a record depending on one the
// tree lacks. Accepted, such a tree would be converted into a new format,
// with fresh checksums that vouch for it.
func check(c Codec, t *model.Tree) error {
	l := c.(layout)
	if err := t.Validate(); err != nil {
		name := c.Marker()
		var ie *model.InvalidError
		if errors.As(err, &ie) {
			if ie.Index {
				name = l.indexFile()
			} else if ie.Service != "" {
				name = l.recordFile(ie.Service)
			}
		}
		return bad(name, "%v", err)
	}
	if err := checkRecords(l, t); err != nil {
		return err
	}
	return checkIndex(l, t)
}

// deps returns what the compiler starts s after: a bundle's contents, any
// other service's depends (Validate has made sure the other list is empty).
func deps(s *model.Service) []string {
	if s.Type == model.Bundle {
		return s.Contents
	}
	return s.Depends
}

// describe returns how a message names s and its dependencies.
func describe(s *model.Service) (kind, verb string) {
	if s.Type == model.Bundle {
		return "bundle", "contains"
	}
	return "service", "depends on"
}

// checkRecords checks what the records say of each other: every dependency
// of every record, enabled or not, has a record, none is part of a cycle,
// and an enabled service depends only on enabled ones. A disabled record is
// held to the same: treeshift never writes one that breaks these (enable
// adds a service with everything it depends on, and refuses a cycle), so
// one that does was written by someone else.
func checkRecords(l layout, t *model.Tree) error {
	for i := range t.Services {
		s := &t.Services[i]
		kind, verb := describe(s)
		for _, d := range deps(s) {
			if t.Service(d) == nil {
				return bad(l.recordFile(s.Name), "%s %q %s %q, which has no record in the tree", kind, s.Name, verb, d)
			}
		}
	}
	if c := findCycle(t); c != nil {
		return bad(l.recordFile(c[0]), "dependency cycle: %s", strings.Join(c, " -> "))
	}
	for i := range t.Services {
		s := &t.Services[i]
		if !s.Enabled {
			continue
		}
		kind, verb := describe(s)
		for _, d := range deps(s) {
			if !t.Service(d).Enabled {
				return bad(l.recordFile(s.Name), "%s %q is enabled but %s %q, which is not", kind, s.Name, verb, d)
			}
		}
	}
	return nil
}

// findCycle returns a dependency cycle among t's records, from a service back
// to itself, or nil. Services are visited in name order and dependencies in
// the order listed, so that one tree always reports the same cycle. The walk
// keeps its own stack: a chain of services as long as a tree file can hold
// would take a recursive one deep.
func findCycle(t *model.Tree) []string {
	const (
		unseen = iota
		onPath
		done
	)
	state := make([]uint8, len(t.Services))
	// checkRecords has made sure that every dependency is in here.
	at := make(map[string]int, len(t.Services))
	for i := range t.Services {
		at[t.Services[i].Name] = i
	}
	type frame struct{ svc, next int }
	var path []frame
	for root := range t.Services {
		if state[root] != unseen {
			continue
		}
		state[root] = onPath
		path = append(path[:0], frame{svc: root})
		for len(path) > 0 {
			top := &path[len(path)-1]
			ds := deps(&t.Services[top.svc])
			if top.next == len(ds) {
				state[top.svc] = done
				path = path[:len(path)-1]
				continue
			}
			d := at[ds[top.next]]
			top.next++
			switch state[d] {
			case onPath:
				var cycle []string
				for i := slices.IndexFunc(path, func(f frame) bool { return f.svc == d }); i < len(path); i++ {
					cycle = append(cycle, t.Services[path[i].svc].Name)
				}
				return append(cycle, t.Services[d].Name)
			case unseen:
				state[d] = onPath
				path = append(path, frame{svc: d})
			}
		}
	}
	return nil
}

// checkIndex checks that the index is the one compile.Index computes from
// the records: one entry per enabled service, each with its record's type and
// dependencies, in the compiler's start order. Validate has checked that
// every entry names an enabled record and follows its dependencies, and
// checkRecords that the records are consistent.
//
// compile.Index is not called to compare with: it sorts its list of ready
// services at every step, which on a tree of many independent services costs
// more than decoding the tree does. The order is recomputed here in
// O(n log n), and TestRoundTripRandom, whose indexes compile.Index computes,
// fails if the two ever disagree.
func checkIndex(l layout, t *model.Tree) error {
	name := l.indexFile()
	entries := t.Index.Entries
	at := make(map[string]int, len(entries))
	var sorted []string
	for i, e := range entries {
		if j, ok := at[e.Name]; ok {
			return bad(name, "entry %q repeated (entries %d and %d)", e.Name, j+1, i+1)
		}
		at[e.Name] = i
		s := t.Service(e.Name)
		if e.Type != s.Type {
			return bad(name, "entry %q has type %s, its record %s says %s", e.Name, e.Type, l.recordRef(s.Name), s.Type)
		}
		sorted = append(sorted[:0], deps(s)...)
		slices.Sort(sorted)
		if !slices.Equal(e.Deps, sorted) {
			return bad(name, "entry %q has dependencies %v, its record %s says %v", e.Name, e.Deps, l.recordRef(s.Name), sorted)
		}
	}
	for i := range t.Services {
		if s := &t.Services[i]; s.Enabled {
			if _, ok := at[s.Name]; !ok {
				return bad(name, "no entry for %q, which its record %s says is enabled", s.Name, l.recordRef(s.Name))
			}
		}
	}
	// The compiler starts, at each step, the first by name of the services
	// whose dependencies have all started. Services are numbered by entry;
	// users[first[i]:first[i+1]] are the entries that depend on entry i.
	pending := make([]int, len(entries))
	first := make([]int, len(entries)+1)
	for i, e := range entries {
		pending[i] = len(e.Deps)
		for _, d := range e.Deps {
			first[at[d]+1]++
		}
	}
	for i := range entries {
		first[i+1] += first[i]
	}
	users := make([]int, first[len(entries)])
	fill := slices.Clone(first[:len(entries)])
	for i, e := range entries {
		for _, d := range e.Deps {
			users[fill[at[d]]] = i
			fill[at[d]]++
		}
	}
	ready := &startOrder{entries: entries}
	for i, e := range entries {
		if len(e.Deps) == 0 {
			ready.at = append(ready.at, i)
		}
	}
	heap.Init(ready)
	for i, e := range entries {
		// Never empty: the entries are the enabled services, in an order
		// where each follows its dependencies.
		next := heap.Pop(ready).(int)
		if next != i {
			return bad(name, "entry %d is %q, but start order (dependencies first, ties by name) puts %q there", i+1, e.Name, entries[next].Name)
		}
		for _, u := range users[first[next]:first[next+1]] {
			if pending[u]--; pending[u] == 0 {
				heap.Push(ready, u)
			}
		}
	}
	return nil
}

// startOrder is a min-heap of entries, by name.
type startOrder struct {
	entries []model.IndexEntry
	at      []int
}

func (h *startOrder) Len() int           { return len(h.at) }
func (h *startOrder) Less(i, j int) bool { return h.entries[h.at[i]].Name < h.entries[h.at[j]].Name }
func (h *startOrder) Swap(i, j int)      { h.at[i], h.at[j] = h.at[j], h.at[i] }
func (h *startOrder) Push(x any)         { h.at = append(h.at, x.(int)) }
func (h *startOrder) Pop() any {
	x := h.at[len(h.at)-1]
	h.at = h.at[:len(h.at)-1]
	return x
}
