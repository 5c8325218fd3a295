package migrate

import (
	"encoding/json"
	"errors"
	"fmt"
	"reflect"

	"github.com/treeshift/treeshift/format"
	"github.com/treeshift/treeshift/internal/model"
	"github.com/treeshift/treeshift/livedb"
	"github.com/treeshift/treeshift/tree"
)

// Step is one undoable action of a transition. It says what it will do,
// does it, and undoes it: the plan of a transition is a list of steps, and
// a failed step undoes itself and every step before it.
type Step interface {
	// Describe says what the step does: a dry run prints it, a real run
	// traces it.
	Describe() string
	// Apply performs the step. Applying a step whose effect is already in
	// place does nothing.
	Apply() error
	// Undo reverts whatever Apply did, completely or in part: a step can
	// fail after its effect is in place (a rename done, its directory sync
	// failed), so Undo works from the state on disk, and undoing a step that
	// did nothing does nothing.
	Undo() error
}

// Run applies steps in order. When one fails, it and every step before it
// are undone in reverse order, and the error says what failed (and what
// could not be undone, if anything).
func Run(steps []Step, trace func(string)) error {
	for i, s := range steps {
		if trace != nil {
			trace(s.Describe())
		}
		if err := s.Apply(); err != nil {
			errs := []error{err}
			for j := i; j >= 0; j-- {
				if trace != nil {
					trace("undo: " + steps[j].Describe())
				}
				if uerr := steps[j].Undo(); uerr != nil {
					errs = append(errs, fmt.Errorf("undo %q: %w", steps[j].Describe(), uerr))
				}
			}
			return errors.Join(errs...)
		}
	}
	return nil
}

// build is how a transition makes a tree's new generation beside the old
// one: by converting it along a plan's hops, or by restoring a tagged copy.
// Its steps stage the generation; Staged returns it once they have run.
type build interface {
	Steps() []Step
	// Staged is the new generation as read back from disk, cut down to
	// what a status compares, or nil before the steps ran.
	Staged() *tree.Tree
	// Orig is the generation the tree was at.
	Orig() int
}

// chain carries a tree through the hops of one plan. Only the last hop
// writes, from the tree as decoded: an intermediate format is encoded to
// prove that the tree fits it (its limits, what it can hold), and each
// codec refuses what it cannot hold rather than lose it; the last hop's
// read-back proves the result equal to the tree it was made from.
type chain struct {
	e      *Engine
	name   string
	gen    int        // the generation to start from
	newGen int        // the generation to stage
	next   *tree.Tree // the generation the last hop staged
	orig   *model.Tree
	hops   []Step
}

// convert returns the build that converts generation gen of tree name
// along plan p into generation newGen.
func (e *Engine) convert(p *Plan, gen, newGen int) *chain {
	ch := &chain{e: e, name: p.Tree, gen: gen, newGen: newGen}
	for i, h := range p.Hops {
		ch.hops = append(ch.hops, &convertStep{ch: ch, from: h.From, to: h.To, last: i == len(p.Hops)-1})
	}
	return ch
}

func (ch *chain) Steps() []Step      { return ch.hops }
func (ch *chain) Staged() *tree.Tree { return ch.next }
func (ch *chain) Orig() int          { return ch.gen }

// convertStep is a hop: convert the tree to format To. The last hop writes
// it as a new generation beside the current one and checks it as read back
// from disk.
type convertStep struct {
	ch       *chain
	from, to int
	last     bool
}

func (c *convertStep) Describe() string {
	return fmt.Sprintf("convert tree %s from format %s to format %s", c.ch.name, format.Name(c.from), format.Name(c.to))
}

func (c *convertStep) Apply() error {
	ch := c.ch
	if ch.orig == nil {
		t, err := ch.e.Store.LoadGen(ch.name, ch.gen)
		if err != nil {
			return err
		}
		if t.Format != c.from {
			return fmt.Errorf("tree %s is in format %s, expected %s", ch.name, format.Name(t.Format), format.Name(c.from))
		}
		ch.orig = t.Tree
	}
	if !c.last {
		codec, err := format.Get(c.to)
		if err != nil {
			return err
		}
		if _, err := codec.Encode(ch.orig); err != nil {
			return fmt.Errorf("tree %s: format %s cannot hold it: %w", ch.name, format.Name(c.to), err)
		}
		return nil
	}
	next, err := ch.e.Store.Stage(ch.orig, c.to, ch.newGen)
	if err != nil {
		return err // staging leaves nothing behind
	}
	ch.next = next
	check, err := ch.e.Store.LoadGen(ch.name, next.Gen)
	if err != nil {
		return err
	}
	if !reflect.DeepEqual(check.Tree, ch.orig) {
		return fmt.Errorf("tree %s: format %s generation %s does not read back as the tree it was written from", ch.name, format.Name(c.to), ch.e.Host(next.Dir))
	}
	// What is left (commit, verify, undo) needs the generation's identity,
	// not its scripts and definitions: let those go.
	ch.next = &tree.Tree{Tree: identity(check.Tree), Format: check.Format, Gen: check.Gen, Dir: check.Dir}
	ch.orig = nil
	return nil
}

func (c *convertStep) Undo() error {
	if !c.last || c.ch.next == nil {
		return nil
	}
	err := c.ch.e.Store.RemoveGen(c.ch.name, c.ch.next.Gen)
	c.ch.next = nil
	return err
}

// identity is t without what only a conversion needs: service definitions'
// descriptions, users, sources and scripts. What is left is what a status
// compares.
func identity(t *model.Tree) *model.Tree {
	id := &model.Tree{Name: t.Name, Allow: t.Allow, Index: t.Index, Services: make([]model.Service, len(t.Services))}
	for i, s := range t.Services {
		id.Services[i] = model.Service{Name: s.Name, Type: s.Type, Version: s.Version, Enabled: s.Enabled,
			Digest: s.Digest, Depends: s.Depends, Contents: s.Contents}
	}
	return id
}

// commit makes the staged generation the tree's current one; its directory
// is synced by the transition's barrier.
type commit struct {
	e    *Engine
	name string
	b    build
	done bool
}

func (c *commit) Describe() string {
	return "update db: make the new generation of tree " + c.name + " current"
}

func (c *commit) Apply() error {
	t := c.b.Staged()
	if t == nil {
		return nil
	}
	c.done = true // even a failed rename may have happened; Undo checks
	return c.e.Store.Commit(c.name, t.Gen, false)
}

// Undo points the tree back at the generation it was at. The staged
// generation stays until its own step is undone or it is collected, so the
// link never dangles.
func (c *commit) Undo() error {
	if !c.done {
		return nil
	}
	return c.e.Store.Commit(c.name, c.b.Orig(), false)
}

// tempCopy prepares the private copy of the database in use, which the
// live link points at while the tree changes.
type tempCopy struct {
	e    *Engine
	lt   *livedb.Tree
	orig string
	path string
}

func (c *tempCopy) Describe() string {
	return fmt.Sprintf("copy live database of tree %s to: %s", c.lt.Name, c.lt.TempCompiled())
}

func (c *tempCopy) Apply() (err error) {
	c.path, err = c.lt.PrepareTemp(c.orig)
	return err
}

func (c *tempCopy) Undo() error { return c.lt.RemoveTemp() }

// move points the live link at a database, unsynced (the barrier syncs),
// and back on undo.
type move struct {
	e      *Engine
	lt     *livedb.Tree
	target func() string // where to point, known when the step runs
	shown  string        // how Describe names it
	prev   string
}

func (m *move) Describe() string {
	return fmt.Sprintf("update %s to: %s", m.lt.LinkPath(), m.shown)
}

func (m *move) Apply() error {
	target := m.target()
	prev, err := m.lt.Target()
	if err != nil {
		return err
	}
	m.prev = prev
	if prev == target {
		return nil
	}
	_, err = m.e.relink(m.lt, target, false)
	return err
}

func (m *move) Undo() error {
	if m.prev == "" {
		return nil
	}
	_, err := m.e.relink(m.lt, m.prev, false)
	return err
}

// guard aborts the transition if another process wrote to the tree.
type guard struct {
	w    *watch
	name string
}

func (g *guard) Describe() string { return "check that nothing else wrote to tree: " + g.name }

func (g *guard) Apply() error {
	if p := g.w.Tripped(g.name); p != "" {
		return fmt.Errorf("%s was changed by another process during the transition of tree %s: rolled back", p, g.name)
	}
	return nil
}

func (g *guard) Undo() error { return nil }

// verify compares the staged tree's state with the saved one: everything
// but the format. The tree's link must name the staged generation; once
// the live link is switched (live), it must point at its database. The
// saved state is compared by its sum; when they differ, it is read back
// from the journal to say how.
type verify struct {
	e    *Engine
	sum  [32]byte
	name string
	b    build
	live *livedb.Tree // set for the check after the live link moved
}

func (v *verify) Describe() string {
	if v.live != nil {
		return "verify live database of tree: " + v.name
	}
	return "verify services, dependencies and live state of tree: " + v.name
}

func (v *verify) Apply() error {
	t := v.b.Staged()
	if t == nil {
		return nil
	}
	if gen, err := v.e.Store.CurrentGen(v.name); err != nil {
		return err
	} else if gen != t.Gen {
		return &InconsistentError{fmt.Sprintf("tree %s: its link names generation %d, not the new generation %d", v.name, gen, t.Gen)}
	}
	if v.live != nil {
		target, err := v.live.Target()
		if err != nil {
			return err
		}
		if target != t.CompiledDir() {
			return &InconsistentError{fmt.Sprintf("tree %s: its live link points at %s, not at its new database", v.name, target)}
		}
	}
	if t.Tree == nil { // let go after staging: read back, once per swap
		full, err := v.e.Store.LoadGen(v.name, t.Gen)
		if err != nil {
			return err
		}
		t.Tree = identity(full.Tree)
	}
	state, err := v.e.Store.ReadState()
	if err != nil {
		return err
	}
	ts, err := v.e.TreeStatus(t, state)
	if err != nil {
		return err
	}
	got := saveOf(ts)
	_, sum, err := savedJSON(got)
	if err != nil || sum == v.sum {
		return err
	}
	want, err := v.e.savedOf(v.name)
	if err != nil {
		return &InconsistentError{fmt.Sprintf("tree %s does not match its saved state after conversion (%v)", v.name, err)}
	}
	if msg := samePids(v.name, want, got); msg != "" {
		return &InconsistentError{msg}
	}
	g, _ := json.Marshal(got)
	w, _ := json.Marshal(want)
	return &InconsistentError{fmt.Sprintf("tree %s does not match its saved state after conversion:\n  saved: %s\n  now:   %s", v.name, w, g)}
}

func (v *verify) Undo() error { return nil }

// samePids names the first service that was up and is not now up with the
// same process, the promise a transition keeps.
func samePids(name string, want, got saved) string {
	now := map[string]savedLiveService{}
	for _, s := range got.Live.Services {
		now[s.Name] = s
	}
	for _, s := range want.Live.Services {
		if !s.Up {
			continue
		}
		n := now[s.Name]
		switch {
		case !n.Up:
			return fmt.Sprintf("service %s of tree %s was up and is now down", s.Name, name)
		case n.Pid != s.Pid:
			return fmt.Sprintf("service %s of tree %s was up with pid %d and is now up with pid %d", s.Name, name, s.Pid, n.Pid)
		}
	}
	return ""
}

// InconsistentError reports a state the engine will not touch.
type InconsistentError struct{ Msg string }

func (e *InconsistentError) Error() string { return e.Msg }
