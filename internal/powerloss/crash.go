package powerloss

import (
	"fmt"
	"math/rand/v2"
	"strings"
)

// The crash states of a trace. A crash point k is a crash after the first k
// events. The units made durable by a sync among those events are on disk;
// any subset of the others may be too, each whole or not at all, a file's
// data possibly cut short. A crash state applies, in the order they were
// made, the durable units and a chosen subset of the others to the
// starting state.

// spec chooses a crash state of a trace.
type spec struct {
	run  *run
	k    int
	mode byte // see modes
	g    groupKey
	seed uint64
}

// Which of a crash point's unsynced units a state keeps.
const (
	allLost   = 'L' // none: only what was synced survives
	allKept   = 'K' // every one: what a killed process leaves
	groupLost = 'l' // all but one group: a sync of that directory or file missing
	groupKept = 'k' // one group only: it persisted before everything else
	random    = 'r' // each with probability 1/2, kept data cut short with 1/4
)

// optional reports whether u is made but not durable at crash point k.
func optional(u *unit, k int) bool {
	return u.event < k && (u.synced < 0 || u.synced >= k)
}

// groups lists the groups of the units unsynced at crash point k, in the
// order they first appear.
func (t *trace) groups(k int) []groupKey {
	seen := map[groupKey]bool{}
	var out []groupKey
	for _, e := range t.events[:k] {
		if u := e.unit; u != nil && optional(u, k) && !seen[u.group] {
			seen[u.group] = true
			out = append(out, u.group)
		}
	}
	return out
}

// build makes the crash state sp chooses, and says which unsynced units it
// lost and cut.
func (t *trace) build(sp spec) (*state, []string) {
	keep := map[*unit]bool{}
	torn := map[*unit]bool{}
	var rng *rand.Rand
	if sp.mode == random {
		rng = rand.New(rand.NewPCG(sp.seed, uint64(sp.k)))
	}
	for _, e := range t.events[:sp.k] {
		u := e.unit
		if u == nil || !optional(u, sp.k) {
			continue
		}
		switch sp.mode {
		case allKept:
			keep[u] = true
		case groupLost:
			keep[u] = u.group != sp.g
		case groupKept:
			keep[u] = u.group == sp.g
		case random:
			keep[u] = rng.IntN(2) == 0
			if keep[u] && u.data != nil && len(u.data.b) > 1 && rng.IntN(4) == 0 {
				torn[u] = true
			}
		}
	}
	// A directory renamed keeps every earlier change of its names, so no
	// state has it under two names.
	for i := sp.k - 1; i >= 0; i-- {
		u := t.events[i].unit
		if u == nil || !keep[u] || len(u.dirs) == 0 {
			continue
		}
		for j := 0; j < i; j++ {
			v := t.events[j].unit
			if v != nil && optional(v, sp.k) && names(v, u.dirs) {
				keep[v] = true
			}
		}
	}
	s := t.base.clone()
	var lost []string
	for _, e := range t.events[:sp.k] {
		u := e.unit
		if u == nil {
			continue
		}
		if optional(u, sp.k) && !keep[u] {
			lost = append(lost, "lost: "+u.what)
			continue
		}
		for _, d := range u.dels {
			delete(s.dir(d.dir), d.name)
		}
		for _, d := range u.sets {
			s.dir(d.dir)[d.name] = d.n
		}
		if u.data != nil {
			b := u.data
			if torn[u] {
				b = newBlob(b.b[:len(b.b)/2])
				lost = append(lost, "cut to half: "+u.what)
			}
			s.data[u.group.n] = b
		}
		if u.perm != nil {
			s.perm[u.group.n] = *u.perm
		}
	}
	return s, lost
}

// names reports whether u names or unnames one of the inodes ns.
func names(u *unit, ns []ino) bool {
	for _, d := range append(u.sets[:len(u.sets):len(u.sets)], u.dels...) {
		for _, n := range ns {
			if d.n == n {
				return true
			}
		}
	}
	return false
}

// describe says which crash state sp is, for a report.
func (t *trace) describe(sp spec, lost []string) string {
	at := "before the first operation"
	if sp.k > 0 {
		e := t.events[sp.k-1]
		if e.unit != nil {
			at = "after " + e.unit.what
		} else {
			at = "after " + e.sync.what
		}
	}
	var which string
	switch sp.mode {
	case allLost:
		which = "every unsynced change lost"
	case allKept:
		which = "every unsynced change kept"
	case groupLost:
		which = "only the unsynced changes of " + t.groupName(sp.g) + " lost"
	case groupKept:
		which = "only the unsynced changes of " + t.groupName(sp.g) + " kept"
	case random:
		which = fmt.Sprintf("a random subset (seed %d) of the unsynced changes kept", sp.seed)
	}
	msg := fmt.Sprintf("crash at point %d of %d (%s), %s", sp.k, len(t.events), at, which)
	if len(lost) > 0 {
		const max = 12
		msg += ":\n      " + strings.Join(lost[:min(len(lost), max)], "\n      ")
		if len(lost) > max {
			msg += fmt.Sprintf("\n      … and %d more", len(lost)-max)
		}
	}
	return msg
}

func (t *trace) groupName(g groupKey) string {
	p := t.files.inodes[g.n].path
	if g.kind == 'e' {
		return "directory " + p
	}
	return "file " + p
}

// weighty reports whether losing or keeping group g alone is among the
// states most likely to matter: the entries of a directory that existed
// before the run (the tree links, the journal, the live links: where a
// run's changes become visible), or the data of a file the run renames
// into place (an atomic write). The other groups are the insides of
// directories the run made, which nothing names until a sync.
func (t *trace) weighty(g groupKey) bool {
	if g.kind == 'e' {
		return int(g.n) < t.baseN
	}
	for _, e := range t.events {
		if u := e.unit; u != nil && len(u.dels) > 0 && len(u.sets) > 0 && u.sets[0].n == g.n {
			return true
		}
	}
	return false
}

// specs enumerates the crash states of every crash point but the ones
// every point has (allLost): every unsynced change kept, each group lost
// alone, random subsets of the unsynced changes, and at the points just
// before a sync each group kept alone. It returns them in three parts, the
// ones most likely to find a fault first: at the points just before a sync
// (between two syncs, the later a point the more its states can lose),
// every change kept and each weighty group lost or kept alone (first); the
// others there (ends); and the rest.
func (r *run) specs(nrandom int, seed uint64) (first, ends, rest []spec) {
	t := r.trace
	end := map[int]bool{len(t.events): true}
	for i, e := range t.events {
		if e.sync != nil {
			end[i] = true
		}
	}
	for k := 1; k <= len(t.events); k++ {
		gs := t.groups(k)
		if len(gs) == 0 {
			continue // nothing unsynced: the one state is allLost's
		}
		add := func(sp spec, weighty bool) {
			switch {
			case end[k] && weighty:
				first = append(first, sp)
			case end[k]:
				ends = append(ends, sp)
			default:
				rest = append(rest, sp)
			}
		}
		add(spec{run: r, k: k, mode: allKept}, true)
		if len(gs) > 1 {
			for _, g := range gs {
				w := t.weighty(g)
				add(spec{run: r, k: k, mode: groupLost, g: g}, w)
				// A group kept alone is a reordering: it persisted before
				// everything made ahead of it. It is tried where it holds
				// the most changes, just before a sync; the random subsets
				// reach the reorderings of the points between.
				if end[k] {
					add(spec{run: r, k: k, mode: groupKept, g: g}, w)
				}
			}
		}
		for i := 0; i < nrandom; i++ {
			add(spec{run: r, k: k, mode: random, seed: seed + uint64(i)*7919 + uint64(k)*104729}, false)
		}
	}
	return first, ends, rest
}
