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
	"io"
	"path/filepath"
	"reflect"
	"runtime"
	"sync"
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
	// Progress, if set, is told as each tree of a run is switched to its
	// new database: the tree's place among those transitioned, and their
	// number.
	Progress func(i, n int, tree string, from, to int)
	// Workers bounds how many trees are worked on at once (default: the
	// number of CPUs Go may use). Trees share nothing but the barriers.
	Workers int
}

// lines buffers one tree's messages while trees are worked on at once, so
// the output reads tree by tree, in order, whatever the interleaving.
type lines []struct {
	level int // 0: an action
	text  string
}

func (l *lines) act(format string, args ...any) {
	*l = append(*l, struct {
		level int
		text  string
	}{0, fmt.Sprintf(format, args...)})
}

func (l *lines) note(level int, format string, args ...any) {
	*l = append(*l, struct {
		level int
		text  string
	}{level, fmt.Sprintf(format, args...)})
}

// parallel runs fn for 0..n-1, up to Workers at once, each with its own
// buffer, then prints the buffers in order.
func (u *Updater) parallel(n int, fn func(i int, out *lines)) {
	workers := u.Workers
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	bufs := make([]lines, n)
	next := make(chan int)
	var wg sync.WaitGroup
	for w := 0; w < min(workers, n); w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				fn(i, &bufs[i])
			}
		}()
	}
	for i := 0; i < n; i++ {
		next <- i
	}
	close(next)
	wg.Wait()
	for _, b := range bufs {
		for _, l := range b {
			if l.level == 0 {
				u.act("%s", l.text)
			} else {
				u.note(l.level, "%s", l.text)
			}
		}
	}
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

// journalName is the system directory's journal entry for a run of update:
// one entry for all the trees the run transitions.
const journalName = "update"

// journal is what a run records before it changes anything, so the next run
// can finish or roll back an interrupted one. Generations, not paths, are
// recorded, so a root moved between a crash and the next run is still
// understood.
type journal struct {
	Schema  int       `json:"schema"`
	Started time.Time `json:"started"`
	Trees   []entry   `json:"trees"`
}

type entry struct {
	Tree string `json:"tree"`
	From int    `json:"from"`
	To   int    `json:"to"`
	// Gen is the generation the tree was at; it is not removed before the
	// transition commits.
	Gen int `json:"gen"`
	// Live: the tree was live, its link pointing at generation Gen, in the
	// live directory LiveDir (inside the root).
	Live    bool   `json:"live"`
	LiveDir string `json:"live_dir,omitempty"`
	// Committed: the new database is current, live and verified, and that
	// is durable; what is left is cleanup.
	Committed bool              `json:"committed"`
	Saved     system.TreeStatus `json:"saved"`
}

// InconsistentError reports a state update will not touch.
type InconsistentError struct{ Msg string }

func (e *InconsistentError) Error() string { return e.Msg }

// job is one tree's transition within a run.
type job struct {
	res   *Result
	entry entry
	// prepare runs before the first barrier: nothing it makes is pointed at
	// until the barrier has made it durable.
	prepare []migrate.Step
	// swap runs between the barriers: the link swaps, with the checks.
	swap   []migrate.Step
	conv   migrate.Conversion
	watch  *watch
	failed bool
}

// Run transitions the trees names, in that order, to format to, and returns
// what happened to each. The trees move together, in phases, so that each
// barrier is one filesystem sync for the whole run rather than one per
// file, link or tree:
//
//  1. check every tree: decode, plan, tunability, live link, saved state;
//  2. write the journal, durably;
//  3. per tree: copy the live database to a private directory, convert, and
//     stage the new generation; then sync: every database a link will
//     point at is now durable;
//  4. per tree: point the live link at the copy, make the new generation
//     current, check for outside writers, verify against the saved state,
//     point the live link at the new database; a tree that fails is undone
//     alone; then sync;
//  5. mark the transitioned trees committed in the journal, durably;
//  6. remove the copies, the old generations and the journal.
//
// A crash before 5 leaves every tree's original generation in place, and
// the next run points tree and live links back at it; after 5, the next run
// finishes the cleanup. No link ever points at a database that is not
// durably complete.
func (u *Updater) Run(names []string, to int) []Result {
	start := time.Now()
	results := make([]Result, len(names))
	defer func() {
		for i := range results {
			results[i].Seconds = time.Since(start).Seconds()
		}
	}()
	// Watching starts before any tree is read: a write by another process
	// between this run's reading a tree and its commit is noticed.
	var w *watch
	if !u.DryRun {
		w = newWatch()
		defer w.Close()
	}
	checked := make([]*job, len(names))
	u.parallel(len(names), func(i int, out *lines) {
		results[i] = Result{Tree: names[i], To: to, Hops: []migrate.Hop{}}
		checked[i] = u.check(&results[i], to, w, out)
	})
	u.note(4, "checked %d tree(s) in %s", len(names), time.Since(start).Round(10*time.Microsecond))
	var jobs []*job
	for _, j := range checked {
		if j != nil {
			jobs = append(jobs, j)
		}
	}
	if len(jobs) == 0 {
		return results
	}
	if u.DryRun {
		// The real run's phases, in its order: save every tree, prepare
		// every tree, then swap each.
		for _, j := range jobs {
			u.act("save state of tree: %s", j.entry.Tree)
		}
		for _, phase := range []func(*job) []migrate.Step{
			func(j *job) []migrate.Step { return j.prepare },
			func(j *job) []migrate.Step { return j.swap },
		} {
			for _, j := range jobs {
				for _, s := range phase(j) {
					u.act("%s", s.Describe())
				}
			}
		}
		for _, j := range jobs {
			u.act("tree: %s updated successfully", j.entry.Tree)
			j.res.Outcome = Updated
		}
		return results
	}

	jr := journal{Schema: 1, Started: start.UTC()}
	for _, j := range jobs {
		u.act("save state of tree: %s", j.entry.Tree)
		jr.Trees = append(jr.Trees, j.entry)
	}
	if err := u.writeJournal(&jr); err != nil {
		for _, j := range jobs {
			j.fail(err)
		}
		return results
	}
	u.note(4, "journal %s written: %d tree(s)", u.Sys.Owner.Inside(u.Sys.Store.JournalPath(journalName)), len(jr.Trees))

	u.parallel(len(jobs), func(i int, out *lines) {
		j := jobs[i]
		if err := migrate.Run(j.prepare, func(s string) { out.act("%s", s) }); err != nil {
			j.fail(err)
		}
		if j.failed { // its staged generation and copy are gone: nothing to swap
			j.prepare, j.swap = nil, nil
		} else if t := j.conv.Staged(); t != nil {
			out.note(4, "tree %s: staged generation %d, format %d, at %s", j.entry.Tree, t.Gen, t.Format, u.Sys.Owner.Inside(t.Dir))
		}
	})
	if err := u.barrier(); err != nil {
		u.abort(jobs, &jr, err)
		return results
	}
	u.parallel(len(jobs), func(i int, out *lines) {
		j := jobs[i]
		if !j.failed {
			if err := migrate.Run(j.swap, func(s string) { out.act("%s", s) }); err != nil {
				j.fail(err)
			}
		}
		j.prepare, j.swap = nil, nil // the trees they hold are no longer needed
	})
	if u.Progress != nil {
		for i, j := range jobs {
			if !j.failed {
				u.Progress(i+1, len(jobs), j.entry.Tree, j.entry.From, j.entry.To)
			}
		}
	}
	if err := u.barrier(); err != nil {
		u.abort(jobs, &jr, err)
		return results
	}
	committed := false
	for i, j := range jobs {
		jr.Trees[i].Committed = !j.failed
		committed = committed || !j.failed
	}
	if committed {
		if err := u.writeJournal(&jr); err != nil {
			u.abort(jobs, &jr, err)
			return results
		}
	}
	if err := u.finish(&jr); err != nil {
		for _, j := range jobs {
			if !j.failed {
				j.fail(fmt.Errorf("tree %s: transition committed, cleanup failed: %w (run %s again)", j.entry.Tree, err, u.Sys.Suggest.Cmd("update")))
			}
		}
		return results
	}
	for _, j := range jobs {
		if !j.failed {
			u.act("tree: %s updated successfully", j.entry.Tree)
			j.res.Outcome = Updated
		}
	}
	return results
}

func (j *job) fail(err error) {
	j.failed = true
	j.res.Outcome, j.res.Error = Failed, err.Error()
}

// check is phase 1 for one tree: it fills res and returns the tree's job,
// or nil when there is nothing to do or the tree is refused.
func (u *Updater) check(res *Result, to int, w *watch, out *lines) *job {
	name := res.Tree
	fail := func(outcome string, err error) *job {
		res.Outcome, res.Error = outcome, err.Error()
		return nil
	}
	// A tree already in the target format needs no more than a look at the
	// version it states: nothing will be changed, so nothing need be
	// validated.
	if v, err := u.Sys.Store.PeekFormat(name); err == nil && v == to {
		res.From, res.Outcome = v, Unchanged
		out.note(3, "tree: %s is already in format %d", name, to)
		return nil
	}
	if gen, err := u.Sys.Store.CurrentGen(name); err == nil && w != nil {
		w.Add(name, u.Sys.Store.GenDir(name, gen), u.Sys.Live.Tree(name).StateDir())
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
		return nil
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
				"live database of tree %s is %s, not the tree's current database: run %s to move it, then update",
				name, u.Sys.Owner.Inside(target), u.Sys.Suggest.Cmd("init", name))})
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
	saved = saved.Detached() // held for the whole run; the tree is not
	j := &job{watch: w, res: res, entry: entry{Tree: name, From: t.Format, To: to, Gen: t.Gen, Live: live, Saved: saved}}
	if live {
		j.entry.LiveDir = u.Sys.LiveDir
	}
	up := 0
	for _, l := range saved.Live.Services {
		if l.Up {
			up++
		}
	}
	out.note(4, "tree %s: generation %d, format %d, %d service(s), %d enabled, %d up, live: %v", name, t.Gen, t.Format,
		len(t.Services), len(t.Index.Entries), up, live)
	conv := m.Convert(p, t.Gen, true)
	j.conv = conv
	tc := &tempCopy{sys: u.Sys, name: name, orig: t.CompiledDir()}
	if live {
		j.prepare = append(j.prepare, tc)
	}
	j.prepare = append(j.prepare, conv.Hops...)
	if live {
		j.swap = append(j.swap, &toTemp{tc})
	}
	j.swap = append(j.swap, conv.Commit, &guard{j: j}, &verify{u: u, saved: saved, conv: conv})
	if live {
		j.swap = append(j.swap, m.Relink(name, true), &verify{u: u, saved: saved, conv: conv, compiled: true})
	}
	// Once more, last: a write during the swap is noticed before the commit.
	j.swap = append(j.swap, &guard{j: j})
	return j
}

// barrier makes everything written and renamed so far durable: the system
// directory's filesystem and the live directory's, which may differ.
func (u *Updater) barrier() error {
	start := time.Now()
	if err := u.Sys.Store.Sync(); err != nil {
		return err
	}
	if err := u.Sys.Live.Sync(); err != nil {
		return err
	}
	u.note(4, "barrier: synced the filesystems of %s and %s in %s", u.Sys.Owner.SystemDir(), u.Sys.LiveDir, time.Since(start).Round(10*time.Microsecond))
	return nil
}

// abort handles a failure that concerns the whole run (a barrier or the
// journal could not be written): every tree is rolled back from the journal.
func (u *Updater) abort(jobs []*job, jr *journal, err error) {
	for i := range jr.Trees {
		jr.Trees[i].Committed = false
	}
	if rerr := u.finish(jr); rerr != nil {
		err = errors.Join(err, fmt.Errorf("roll back: %w (the journal is kept: run %s again)", rerr, u.Sys.Suggest.Cmd("update")))
	}
	for _, j := range jobs {
		if !j.failed {
			j.fail(err)
		}
	}
}

func (u *Updater) writeJournal(j *journal) error {
	// Saved states make the journal large (megabytes at 10,000 services):
	// it is written a tree at a time, one line each, so that only one tree's
	// entry is ever encoded in memory.
	return u.Sys.Store.WriteJournal(journalName, func(w io.Writer) error {
		head, err := json.Marshal(struct {
			Schema  int       `json:"schema"`
			Started time.Time `json:"started"`
		}{j.Schema, j.Started})
		if err != nil {
			return err
		}
		w.Write(head[:len(head)-1])
		io.WriteString(w, `,"trees":[`)
		for i, e := range j.Trees {
			b, err := json.Marshal(e)
			if err != nil {
				return err
			}
			if i > 0 {
				io.WriteString(w, ",")
			}
			io.WriteString(w, "\n")
			w.Write(b)
		}
		_, err = io.WriteString(w, "\n]}\n")
		return err
	})
}

// readJournal returns the open journal, or nil.
func (u *Updater) readJournal() (*journal, error) {
	names, err := u.Sys.Store.Journals()
	if err != nil || len(names) == 0 {
		return nil, err
	}
	var j journal
	b, err := u.Sys.Store.ReadJournal(names[0])
	if err != nil {
		return nil, err
	}
	if err := json.Unmarshal(b, &j); err != nil || j.Schema != 1 || names[0] != journalName || len(names) > 1 {
		return nil, &InconsistentError{fmt.Sprintf("%s: not a journal treeshift can read: remove it only after checking the trees by hand",
			u.Sys.Store.JournalPath(names[0]))}
	}
	return &j, nil
}

// Pending lists the trees of an interrupted run, for other commands to warn
// about or refuse to touch.
func Pending(s *system.System) ([]string, error) {
	j, err := (&Updater{Sys: s}).readJournal()
	if err != nil || j == nil {
		return nil, err
	}
	var names []string
	for _, e := range j.Trees {
		names = append(names, e.Tree)
	}
	return names, nil
}

// Recover finishes or rolls back an interrupted run, and returns the trees
// it dealt with.
func (u *Updater) Recover() ([]string, error) {
	j, err := u.readJournal()
	if err != nil || j == nil {
		return nil, err
	}
	var names []string
	for _, e := range j.Trees {
		names = append(names, e.Tree)
		switch {
		case u.DryRun && e.Committed:
			u.act("complete interrupted transition of tree: %s to format %d", e.Tree, e.To)
		case u.DryRun:
			u.act("roll back interrupted transition of tree: %s to format %d", e.Tree, e.From)
		case e.Committed:
			u.note(2, "completed the interrupted transition of tree %s to format %d", e.Tree, e.To)
		default:
			u.note(2, "rolled back the interrupted transition of tree %s: it is in format %d again", e.Tree, e.From)
		}
	}
	if u.DryRun {
		return names, nil
	}
	if err := u.finish(j); err != nil {
		return nil, fmt.Errorf("recover interrupted update: %w", err)
	}
	return names, nil
}

// finish ends a run from its journal: a committed tree keeps its new
// generation (its live link on it), any other goes back to the generation
// it was at, its tree link first, then its live link; then copies and
// unused generations go, and the journal is closed. Every step can be
// repeated, so a crash during finish is handled by finishing again.
func (u *Updater) finish(j *journal) error {
	s := u.Sys
	// A tree live in another live directory has a link this run cannot see:
	// moving or collecting anything could leave that link dangling.
	for _, e := range j.Trees {
		if e.Live && e.LiveDir != "" && e.LiveDir != s.LiveDir {
			p := u.Sys.Suggest
			p.Live = e.LiveDir
			return &InconsistentError{fmt.Sprintf("tree %s was live in %s when its update was interrupted: recover with: %s",
				e.Tree, e.LiveDir, p.Cmd("update"))}
		}
	}
	for _, e := range j.Trees {
		lt := s.Live.Tree(e.Tree)
		// After a reboot a live directory on tmpfs is empty: a tree not
		// initialized again has no link to move.
		if live, err := lt.Initialized(); err != nil {
			return err
		} else if !live {
			e.Live = false
		}
		if e.Committed {
			gen, err := s.Store.CurrentGen(e.Tree)
			if err != nil {
				return err
			}
			compiled := filepath.Join(s.Store.GenDir(e.Tree, gen), "compiled")
			if e.Live {
				if target, err := lt.Target(); err != nil || target != compiled {
					if err := lt.Link(compiled); err != nil {
						return err
					}
				}
			}
			continue
		}
		if _, err := s.Store.LoadGen(e.Tree, e.Gen); err != nil {
			return &InconsistentError{fmt.Sprintf("tree %s: the generation it was at before the interrupted transition is unusable: %v", e.Tree, err)}
		}
		if err := s.Store.CommitGen(e.Tree, e.Gen); err != nil {
			return err
		}
		if e.Live {
			if err := lt.Link(filepath.Join(s.Store.GenDir(e.Tree, e.Gen), "compiled")); err != nil {
				return err
			}
		}
	}
	errs := make([]error, len(j.Trees))
	u.parallel(len(j.Trees), func(i int, _ *lines) {
		e := j.Trees[i]
		if errs[i] = s.Live.Tree(e.Tree).RemoveTemp(); errs[i] == nil {
			errs[i] = s.Collect(e.Tree)
		}
	})
	if err := errors.Join(errs...); err != nil {
		return err
	}
	u.note(4, "removed temporary copies and unused generations of %d tree(s); closing the journal", len(j.Trees))
	return s.Store.RemoveJournal(journalName)
}

// tempCopy prepares the private copy of the database in use, which the
// live link points at while the tree changes.
type tempCopy struct {
	sys  *system.System
	name string
	orig string
	path string
}

func (c *tempCopy) Describe() string {
	return fmt.Sprintf("copy live database of tree %s to: %s", c.name,
		c.sys.Owner.Inside(filepath.Join(c.sys.Live.Tree(c.name).TempDir(), "compiled")))
}

func (c *tempCopy) Apply() (err error) {
	c.path, err = c.sys.Live.Tree(c.name).PrepareTemp(c.orig)
	return err
}

func (c *tempCopy) Undo() error { return c.sys.Live.Tree(c.name).RemoveTemp() }

// toTemp points the live link at the private copy.
type toTemp struct{ c *tempCopy }

func (t *toTemp) Describe() string {
	lt := t.c.sys.Live.Tree(t.c.name)
	return fmt.Sprintf("update %s to: %s", t.c.sys.Owner.Inside(lt.LinkPath()),
		t.c.sys.Owner.Inside(filepath.Join(lt.TempDir(), "compiled")))
}

func (t *toTemp) Apply() error { return t.c.sys.Live.Tree(t.c.name).LinkUnsynced(t.c.path) }

func (t *toTemp) Undo() error { return t.c.sys.Live.Tree(t.c.name).LinkUnsynced(t.c.orig) }

// guard aborts the transition if another process wrote to the tree.
type guard struct{ j *job }

func (g *guard) Describe() string { return "check that nothing else wrote to tree: " + g.j.entry.Tree }

func (g *guard) Apply() error {
	if p := g.j.watch.Tripped(g.j.entry.Tree); p != "" {
		return fmt.Errorf("%s was changed by another process during the transition of tree %s: rolled back", p, g.j.entry.Tree)
	}
	return nil
}

func (g *guard) Undo() error { return nil }

// verify compares the tree's status with the saved one: everything but the
// format, and the live database's name only once it is switched. The tree is
// the generation the conversion read back from disk, which the tree's link
// must now name.
type verify struct {
	u        *Updater
	saved    system.TreeStatus
	conv     migrate.Conversion
	compiled bool
}

func (v *verify) Describe() string {
	if v.compiled {
		return "verify live database of tree: " + v.saved.Name
	}
	return "verify services, dependencies and live state of tree: " + v.saved.Name
}

func (v *verify) Apply() error {
	t := v.conv.Staged()
	if t == nil {
		return nil // nothing was staged: the tree was already converted
	}
	if gen, err := v.u.Sys.Store.CurrentGen(t.Name); err != nil {
		return err
	} else if gen != t.Gen {
		return &InconsistentError{fmt.Sprintf("tree %s: its link names generation %d, not the new generation %d", t.Name, gen, t.Gen)}
	}
	state, err := v.u.Sys.Store.ReadState()
	if err != nil {
		return err
	}
	got, err := v.u.Sys.TreeStatus(t, state)
	if err != nil {
		return err
	}
	want := v.saved
	got.Format, want.Format = 0, 0
	// Uptime moves on; everything else, pids included, must not.
	for _, l := range [][]system.LiveServiceStatus{got.Live.Services, want.Live.Services} {
		for i := range l {
			l[i].Uptime = 0
		}
	}
	if msg := samePids(want, got); msg != "" {
		return &InconsistentError{msg}
	}
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

// samePids names the first service that was up and is not now up with the
// same process, the promise a transition keeps.
func samePids(want, got system.TreeStatus) string {
	now := map[string]system.LiveServiceStatus{}
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
			return fmt.Sprintf("service %s of tree %s was up and is now down", s.Name, want.Name)
		case n.Pid != s.Pid:
			return fmt.Sprintf("service %s of tree %s was up with pid %d and is now up with pid %d", s.Name, want.Name, s.Pid, n.Pid)
		}
	}
	return ""
}
