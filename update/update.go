// Package update carries out the live transition of an owner's trees to a
// format version, in the manner of 66-update: per tree, save its state to a
// journal, move the live database to a private copy, build the tree in the
// new format beside the old one through the migration core, verify that it
// describes exactly the saved state, switch the live database to it, and
// clean up. An interrupted transition is finished or rolled back by the next
// run, from the journal; the live link points at an existing database at
// every instant.
package update

import (
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"reflect"
	"time"

	"github.com/treeshift/treeshift/migrate"
	"github.com/treeshift/treeshift/system"
)

// Outcomes of a tree's transition.
const (
	Updated   = "updated"
	Unchanged = "unchanged"
	Refused   = "refused"
	Failed    = "failed"
)

// Result is what happened to one tree.
type Result struct {
	Tree    string        `json:"tree"`
	From    int           `json:"from"`
	To      int           `json:"to"`
	Hops    []migrate.Hop `json:"hops"`
	Outcome string        `json:"outcome"`
	Error   string        `json:"error,omitempty"`
	Seconds float64       `json:"seconds"`
}

// Updater transitions one owner's trees.
type Updater struct {
	Sys      *system.System
	Registry *migrate.Registry
	// DryRun: read and check everything, report every action, change nothing.
	DryRun bool
	// Act reports an action: the steps of a transition (tracing, or every
	// line of a dry run). Note reports other progress at a verbosity level.
	Act  func(format string, args ...any)
	Note func(level int, format string, args ...any)
}

func (u *Updater) act(format string, args ...any) {
	if u.Act != nil {
		u.Act(format, args...)
	}
}

func (u *Updater) note(level int, format string, args ...any) {
	if u.Note != nil {
		u.Note(level, format, args...)
	}
}

// journal is a tree's entry while its transition runs. Generations, not
// paths, are recorded, so a root moved between a crash and the next run is
// still understood.
type journal struct {
	Schema int    `json:"schema"`
	Tree   string `json:"tree"`
	From   int    `json:"from"`
	To     int    `json:"to"`
	// Gen is the generation the tree was at; it is not removed before the
	// transition commits.
	Gen int `json:"gen"`
	// Live: the tree was live, its link pointing at generation Gen.
	Live bool `json:"live"`
	// Committed: the new database is live and verified; what is left is
	// cleanup.
	Committed bool              `json:"committed"`
	Saved     system.TreeStatus `json:"saved"`
	Started   time.Time         `json:"started"`
}

// InconsistentError reports a state update will not touch.
type InconsistentError struct{ Msg string }

func (e *InconsistentError) Error() string { return e.Msg }

// Update transitions tree name to format to.
func (u *Updater) Update(name string, to int) (res Result) {
	start := time.Now()
	res = Result{Tree: name, To: to, Hops: []migrate.Hop{}}
	defer func() { res.Seconds = time.Since(start).Seconds() }()
	fail := func(outcome string, err error) Result {
		res.Outcome, res.Error = outcome, err.Error()
		return res
	}
	// A tree already in the target format needs no more than a look at the
	// version it states: nothing will be changed, so nothing need be
	// validated.
	if v, err := u.Sys.Store.PeekFormat(name); err == nil && v == to {
		res.From, res.Outcome = v, Unchanged
		u.note(3, "tree: %s is already in format %d", name, to)
		return res
	}
	// Every record decodes, or nothing is done.
	t, err := u.Sys.Load(name)
	if err != nil {
		return fail(Failed, err)
	}
	res.From = t.Format
	m := &migrate.Migrator{Sys: u.Sys, Registry: u.Registry}
	p, err := m.PlanLoaded(t, to)
	if err != nil {
		return fail(Failed, err)
	}
	res.Hops = p.Hops
	if len(p.Hops) == 0 {
		res.Outcome = Unchanged
		u.note(3, "tree: %s is already in format %d", name, to)
		return res
	}
	if !p.OK() {
		return fail(Refused, &migrate.RefusedError{Plan: p})
	}
	lt := u.Sys.Live.Tree(name)
	live, err := lt.Initialized()
	if err != nil {
		return fail(Failed, err)
	}
	if live {
		target, err := lt.Target()
		if err != nil {
			return fail(Failed, err)
		}
		if target != t.CompiledDir() {
			return fail(Failed, &InconsistentError{fmt.Sprintf(
				"live database of tree %s is %s, not the tree's current database: run treeshift init %s to move it, then update",
				name, u.Sys.Owner.Inside(target), name)})
		}
	}
	state, err := u.Sys.Store.ReadState()
	if err != nil {
		return fail(Failed, err)
	}
	saved, err := u.Sys.TreeStatus(t, state)
	if err != nil {
		return fail(Failed, err)
	}
	j := journal{Schema: 1, Tree: name, From: t.Format, To: to, Gen: t.Gen, Live: live, Saved: saved, Started: start.UTC()}

	u.act("save state of tree: %s", name)
	var steps []migrate.Step
	if live {
		steps = append(steps, &tempCopy{sys: u.Sys, name: name, orig: t.CompiledDir()})
	}
	u.act("enable service(s) of tree: %s", name)
	steps = append(steps, m.HopSteps(p)...)
	var w *watch
	if !u.DryRun {
		w = newWatch(t.Dir, lt.StateDir())
		defer w.Close()
	}
	steps = append(steps, &guard{w: w, name: name}, &verify{u: u, saved: j.Saved, compiled: false})
	if live {
		steps = append(steps, m.Relink(name), &verify{u: u, saved: j.Saved, compiled: true})
	}
	if u.DryRun {
		for _, s := range steps {
			u.act("%s", s.Describe())
		}
		u.act("tree: %s updated successfully", name)
		res.Outcome = Updated
		return res
	}

	if err := u.writeJournal(&j); err != nil {
		return fail(Failed, err)
	}
	if err := migrate.Run(steps, func(s string) { u.act("%s", s) }); err != nil {
		// Run undid what it could; the journal rollback makes sure of the
		// original state and closes the entry.
		if rerr := u.rollback(&j); rerr != nil {
			err = errors.Join(err, fmt.Errorf("roll back tree %s: %w (the journal is kept: run treeshift update again)", name, rerr))
		}
		return fail(Failed, err)
	}
	j.Committed = true
	if err := u.writeJournal(&j); err != nil {
		return fail(Failed, err)
	}
	if err := u.complete(&j); err != nil {
		return fail(Failed, err)
	}
	u.act("tree: %s updated successfully", name)
	res.Outcome = Updated
	return res
}

func (u *Updater) writeJournal(j *journal) error {
	b, err := json.MarshalIndent(j, "", "  ")
	if err != nil {
		return err
	}
	return u.Sys.Store.WriteJournal(j.Tree, append(b, '\n'))
}

// Recover finishes or rolls back every interrupted transition of the owner,
// and returns the trees it dealt with.
func (u *Updater) Recover() ([]string, error) {
	names, err := u.Sys.Store.Journals()
	if err != nil {
		return nil, err
	}
	for _, n := range names {
		b, err := u.Sys.Store.ReadJournal(n)
		if err != nil {
			return nil, err
		}
		var j journal
		if err := json.Unmarshal(b, &j); err != nil || j.Schema != 1 || j.Tree != n {
			return nil, &InconsistentError{fmt.Sprintf("%s: not a journal entry treeshift can read: remove it only after checking tree %s by hand",
				u.Sys.Store.JournalPath(n), n)}
		}
		if u.DryRun {
			if j.Committed {
				u.act("complete interrupted transition of tree: %s to format %d", n, j.To)
			} else {
				u.act("roll back interrupted transition of tree: %s to format %d", n, j.From)
			}
			continue
		}
		if j.Committed {
			err = u.complete(&j)
			u.note(2, "completed the interrupted transition of tree %s to format %d", n, j.To)
		} else {
			err = u.rollback(&j)
			u.note(2, "rolled back the interrupted transition of tree %s: it is in format %d again", n, j.From)
		}
		if err != nil {
			return nil, fmt.Errorf("recover tree %s: %w", n, err)
		}
	}
	return names, nil
}

// rollback returns a tree to the generation it was at before the transition,
// moving the live link back before anything it might point at is removed.
func (u *Updater) rollback(j *journal) error {
	s := u.Sys
	orig := s.Store.GenDir(j.Tree, j.Gen)
	if err := s.Store.CommitGen(j.Tree, j.Gen); err != nil {
		return err
	}
	if _, err := s.Store.LoadGen(j.Tree, j.Gen); err != nil {
		return &InconsistentError{fmt.Sprintf("tree %s: the generation it was at before the interrupted transition is unusable: %v", j.Tree, err)}
	}
	lt := s.Live.Tree(j.Tree)
	if j.Live {
		if err := lt.Link(filepath.Join(orig, "compiled")); err != nil {
			return err
		}
	}
	if err := lt.RemoveTemp(); err != nil {
		return err
	}
	if err := s.Collect(j.Tree); err != nil {
		return err
	}
	return s.Store.RemoveJournal(j.Tree)
}

// complete finishes a committed transition: the live link on the new
// database, the temporary copy and old generations gone, the entry closed.
func (u *Updater) complete(j *journal) error {
	s := u.Sys
	cur, err := s.Store.Load(j.Tree)
	if err != nil {
		return err
	}
	lt := s.Live.Tree(j.Tree)
	if j.Live {
		if target, err := lt.Target(); err != nil || target != cur.CompiledDir() {
			if err := lt.Link(cur.CompiledDir()); err != nil {
				return err
			}
		}
	}
	if err := lt.RemoveTemp(); err != nil {
		return err
	}
	if err := s.Collect(j.Tree); err != nil {
		return err
	}
	return s.Store.RemoveJournal(j.Tree)
}

// tempCopy moves the live database to a private copy, so the original
// generation can be left alone and the new one built while the supervisor
// reads a database nothing else touches.
type tempCopy struct {
	sys  *system.System
	name string
	orig string
}

func (c *tempCopy) Describe() string {
	lt := c.sys.Live.Tree(c.name)
	return fmt.Sprintf("update %s to: %s", c.sys.Owner.Inside(lt.LinkPath()), c.sys.Owner.Inside(filepath.Join(lt.TempDir(), "compiled")))
}

func (c *tempCopy) Apply() error {
	lt := c.sys.Live.Tree(c.name)
	tmp, err := lt.CopyToTemp(c.orig)
	if err != nil {
		return err
	}
	return lt.Link(tmp)
}

func (c *tempCopy) Undo() error {
	lt := c.sys.Live.Tree(c.name)
	if err := lt.Link(c.orig); err != nil {
		return err
	}
	return lt.RemoveTemp()
}

// guard aborts the transition if another process wrote to the tree.
type guard struct {
	w    *watch
	name string
}

func (g *guard) Describe() string { return "check that nothing else wrote to tree: " + g.name }

func (g *guard) Apply() error {
	if p := g.w.Tripped(); p != "" {
		return fmt.Errorf("%s was changed by another process during the transition of tree %s: rolled back", p, g.name)
	}
	return nil
}

func (g *guard) Undo() error { return nil }

// verify compares the tree's status now with the saved one: everything but
// the format, and the live database's name only once it is switched.
type verify struct {
	u        *Updater
	saved    system.TreeStatus
	compiled bool
}

func (v *verify) Describe() string {
	if v.compiled {
		return "verify live database of tree: " + v.saved.Name
	}
	return "verify services, dependencies and live state of tree: " + v.saved.Name
}

func (v *verify) Apply() error {
	st, err := v.u.Sys.Status([]string{v.saved.Name})
	if err != nil {
		return err
	}
	got, want := st.Trees[0], v.saved
	got.Format, want.Format = 0, 0
	if !v.compiled {
		got.Live.Compiled, want.Live.Compiled = "", ""
	}
	if !reflect.DeepEqual(got, want) {
		g, _ := json.Marshal(got)
		w, _ := json.Marshal(want)
		return &InconsistentError{fmt.Sprintf("tree %s does not match its saved state after conversion:\n  saved: %s\n  now:   %s", v.saved.Name, w, g)}
	}
	return nil
}

func (v *verify) Undo() error { return nil }
