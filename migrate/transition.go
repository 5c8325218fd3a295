package migrate

import (
	"errors"
	"fmt"
	"github.com/treeshift/treeshift/format"
	"path"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/treeshift/treeshift/internal/compile"
	"github.com/treeshift/treeshift/tree"
)

// Outcomes of a tree's transition.
const (
	Updated   = "updated"
	Unchanged = "unchanged"
	Refused   = "refused"
	Failed    = "failed"
	// Held: the tree was not changed because another tree of the run could
	// not be read or checked, and a run changes all it can check or none.
	Held = "held"
)

// Result is what happened to one tree.
type Result struct {
	Tree    string  `json:"tree"`
	From    int     `json:"from"`
	To      int     `json:"to"`
	Hops    []Hop   `json:"hops"`
	Outcome string  `json:"outcome"`
	Error   string  `json:"error,omitempty"`
	Seconds float64 `json:"seconds"`
	// Drift lists the services of a tree the run moved whose definitions
	// changed since their records were built; the records are kept.
	Drift []Drift `json:"drift,omitempty"`
}

// lines buffers one tree's messages while trees are worked on at once, so
// the output reads tree by tree, in order, whatever the interleaving.
type lines []struct {
	level int // 0: an action, -1: a warning
	text  string
}

func (l *lines) warn(format string, args ...any) { l.note(-1, format, args...) }

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
// buffer, then reports the buffers in order.
func (e *Engine) parallel(n int, fn func(i int, out *lines)) {
	workers := e.Workers
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
				e.act("%s", l.text)
			} else if l.level < 0 {
				e.warn("%s", l.text)
			} else {
				e.note(l.level, "%s", l.text)
			}
		}
	}
}

// job is one tree's transition within a run.
type job struct {
	res   *Result
	entry entry
	build build
	// prepare runs before the first barrier: nothing it makes is pointed at
	// until the barrier has made it durable.
	prepare []Step
	// swap runs between the barriers: the link swaps, with the checks.
	swap   []Step
	failed bool
}

// fail records that the tree's transition failed; the message names the
// tree, whatever the error was about.
func (j *job) fail(err error) {
	j.failed = true
	msg := err.Error()
	if !strings.Contains(msg, "tree "+j.entry.Tree+":") && !strings.Contains(msg, "tree "+j.entry.Tree+" ") {
		msg = "tree " + j.entry.Tree + ": " + msg
	}
	j.res.Outcome, j.res.Error = Failed, msg
}

// target is what a run moves a tree to: a format, by conversion; or, to
// restore, the tree's generation in a tagged copy.
type target struct {
	to     int
	tagged *tree.Store // restore from here when set
}

// transition moves the trees names, in that order, to t, and returns what
// happened to each. The trees move together, in phases, so that each
// barrier is one filesystem sync for the whole run rather than one per
// file, link or tree:
//
//  1. check every tree: decode, plan, tunability, live link, saved state;
//     if one cannot be read or is inconsistent, nothing is changed;
//  2. write the journal, durably;
//  3. per tree: copy the live database to a private directory, build the
//     new generation beside the old one; then sync: every database a link
//     will point at is now durable;
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
// durably complete. On an overlay (a dry run) the same code runs and
// nothing reaches the disk.
func (e *Engine) transition(names []string, t target) []Result {
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
	if !e.DryRun && !e.noWatch {
		w = newWatch()
		defer w.Close()
	}
	checked := make([]*job, len(names))
	e.parallel(len(names), func(i int, out *lines) {
		results[i] = Result{Tree: names[i], To: t.to, Hops: []Hop{}}
		checked[i] = e.check(&results[i], t, w, out)
	})
	e.note(4, "checked %d tree(s) in %s", len(names), time.Since(start).Round(10*time.Microsecond))
	var jobs []*job
	for _, j := range checked {
		if j != nil {
			jobs = append(jobs, j)
		}
	}
	// A tree that cannot be read or checked stops the run before anything
	// changes: a system half moved because one record was corrupt is
	// harder to reason about than one left as it was.
	for _, r := range results {
		if r.Outcome == Failed {
			for _, j := range jobs {
				j.res.Outcome, j.res.Error = Held, fmt.Sprintf("tree %s: not changed: tree %s could not be checked", j.entry.Tree, r.Tree)
			}
			return results
		}
	}
	if len(jobs) == 0 {
		return results
	}

	// Trees an earlier run left stuck in the journal (recovery could not
	// finish them) stay in it, ahead of this run's: the journal is the only
	// record that they need the way out.
	jr := journal{Schema: journalSchema, Started: start.UTC()}
	if old, err := e.readJournal(); err != nil {
		for _, j := range jobs {
			j.fail(err)
		}
		return results
	} else if old != nil {
		jr.Trees = old.Trees
	}
	carried := len(jr.Trees)
	for _, j := range jobs {
		e.act("save state of tree: %s", j.entry.Tree)
		jr.Trees = append(jr.Trees, j.entry)
	}
	if err := e.writeJournal(&jr); err != nil {
		for _, j := range jobs {
			j.fail(err)
		}
		return results
	}
	e.note(4, "journal %s written: %d tree(s)", e.Store.JournalPath(journalEntry), len(jr.Trees))

	e.parallel(len(jobs), func(i int, out *lines) {
		j := jobs[i]
		if err := Run(j.prepare, func(s string) { out.act("%s", s) }); err != nil {
			j.fail(err)
		}
		if j.failed { // its staged generation and copy are gone: nothing to swap
			j.prepare, j.swap = nil, nil
		} else if s := j.build.Staged(); s != nil {
			out.note(4, "tree %s: staged generation %d, format %s, at %s", j.entry.Tree, s.Gen, format.Name(s.Format), s.Dir)
		}
	})
	if err := e.barrier(); err != nil {
		e.abort(jobs, &jr, err)
		return results
	}
	e.parallel(len(jobs), func(i int, out *lines) {
		j := jobs[i]
		if !j.failed {
			if err := Run(j.swap, func(s string) { out.act("%s", s) }); err != nil {
				j.fail(err)
			}
		}
		j.prepare, j.swap = nil, nil // the trees they hold are no longer needed
	})
	if p, ok := e.Report.(interface {
		Progress(i, n int, tree string, from, to int)
	}); ok {
		for i, j := range jobs {
			if !j.failed {
				p.Progress(i+1, len(jobs), j.entry.Tree, j.entry.From, j.entry.To)
			}
		}
	}
	if err := e.barrier(); err != nil {
		e.abort(jobs, &jr, err)
		return results
	}
	committed := false
	for i, j := range jobs {
		jr.Trees[carried+i].Committed = !j.failed
		committed = committed || !j.failed
	}
	if committed {
		if err := e.writeJournal(&jr); err != nil {
			e.abort(jobs, &jr, err)
			return results
		}
	}
	if errs := e.finish(&jr); len(errs) > 0 {
		for _, j := range jobs {
			if err := errs[j.entry.Tree]; err != nil && !j.failed {
				j.fail(fmt.Errorf("tree %s: transition committed, cleanup failed: %w (run %s again)", j.entry.Tree, err, e.Suggest.Cmd("update")))
			}
		}
	}
	for _, j := range jobs {
		if !j.failed {
			e.act("tree: %s updated successfully", j.entry.Tree)
			j.res.Outcome = Updated
		}
	}
	return results
}

// check is phase 1 for one tree: it fills res and returns the tree's job,
// or nil when there is nothing to do or the tree is refused.
func (e *Engine) check(res *Result, tg target, w *watch, out *lines) *job {
	name := res.Tree
	fail := func(outcome string, err error) *job {
		res.Outcome, res.Error = outcome, err.Error()
		return nil
	}
	// A tree already in the target format needs no more than a look at the
	// version it states: nothing will be changed, so nothing need be
	// validated.
	if tg.tagged == nil {
		if v, err := e.Store.PeekFormat(name); err == nil && v == tg.to {
			res.From, res.Outcome = v, Unchanged
			out.note(4, "tree: %s is already in format %s", name, format.Name(tg.to))
			return nil
		}
	}
	if gen, err := e.Store.CurrentGen(name); err == nil && w != nil {
		w.Add(name, e.watched(name, gen)...)
	}
	// Every record decodes, or nothing is done.
	t, err := e.Load(name)
	if err != nil {
		return fail(Failed, err)
	}
	res.From = t.Format
	// A transition keeps the records as they are, whatever the package
	// upgrade did to the definitions; what no longer matches is said.
	res.Drift = e.Drift(t)
	for _, d := range res.Drift {
		if d.Error != "" {
			out.warn("%s", d)
		} else {
			out.warn("%s; the record is kept: %s takes it", d, e.Suggest.Cmd("enable", "-t", name, d.Service))
		}
	}
	lt := e.Live.Tree(name)
	live, err := lt.Initialized()
	if err != nil {
		return fail(Failed, err)
	}
	if live {
		cur, err := lt.Target()
		if err != nil {
			return fail(Failed, err)
		}
		if cur != t.CompiledDir() {
			return fail(Failed, &InconsistentError{fmt.Sprintf(
				"live database of tree %s is %s, not the tree's current database: run %s to move it, then update",
				name, cur, e.Suggest.Cmd("init", name))})
		}
	}
	state, err := e.Store.ReadState()
	if err != nil {
		return fail(Failed, err)
	}
	ts, err := e.TreeStatus(t, state)
	if err != nil {
		return fail(Failed, err)
	}
	j := &job{res: res, entry: entry{Tree: name, From: t.Format, To: tg.to, Gen: t.Gen, Live: live}}
	if tg.tagged == nil {
		p, err := e.planLoaded(t, tg.to)
		if err != nil {
			return fail(Failed, err)
		}
		res.Hops = p.Hops
		if len(p.Hops) == 0 {
			res.Outcome = Unchanged
			return nil
		}
		if !p.OK() {
			return fail(Refused, &RefusedError{Plan: p})
		}
		j.build = e.convert(p, t.Gen)
		j.entry.Saved = saveOf(ts)
	} else {
		b, want, err := e.restoreBuild(t, tg.tagged, ts)
		if err != nil {
			return fail(Failed, err)
		}
		j.build, j.entry.Saved = b, want
		j.entry.To = b.format
		res.To = b.format
	}
	if live {
		j.entry.LiveDir = e.LiveDir
	}
	up := 0
	for _, l := range ts.Live.Services {
		if l.Up {
			up++
		}
	}
	out.note(4, "tree %s: generation %d, format %s, %d service(s), %d enabled, %d up, live: %v", name, t.Gen, format.Name(t.Format),
		len(t.Services), len(t.Index.Entries), up, live)
	g := &guard{w: w, name: name}
	tc := &tempCopy{e: e, lt: lt, orig: t.CompiledDir()}
	if live {
		j.prepare = append(j.prepare, tc)
	}
	j.prepare = append(j.prepare, j.build.Steps()...)
	if live {
		j.swap = append(j.swap, &move{e: e, lt: lt, target: func() string { return tc.path },
			shown: lt.TempCompiled()})
	}
	j.swap = append(j.swap, &commit{e: e, name: name, b: j.build}, g, &verify{e: e, saved: j.entry.Saved, name: name, b: j.build})
	if live {
		j.swap = append(j.swap,
			&move{e: e, lt: lt, target: func() string { return j.build.Staged().CompiledDir() },
				shown: path.Join(e.Store.Pointer(name), compile.Dir)},
			&verify{e: e, saved: j.entry.Saved, name: name, b: j.build, live: lt})
	}
	// Once more, last: a write during the swap is noticed before the commit.
	j.swap = append(j.swap, g)
	return j
}

// barrier makes everything written and renamed so far durable: the system
// directory's filesystem and the live directory's, which may differ.
func (e *Engine) barrier() error {
	start := time.Now()
	if err := e.Store.Sync(); err != nil {
		return err
	}
	if err := e.Live.Sync(); err != nil {
		return err
	}
	e.note(4, "barrier: synced the filesystems of %s and %s in %s", e.Store.Dir, e.LiveDir, time.Since(start).Round(10*time.Microsecond))
	return nil
}

// abort handles a failure that concerns the whole run (a barrier or the
// journal could not be written): every tree is rolled back from the journal.
func (e *Engine) abort(jobs []*job, jr *journal, err error) {
	for i := range jr.Trees {
		for _, j := range jobs {
			if jr.Trees[i].Tree == j.entry.Tree {
				jr.Trees[i].Committed = false
			}
		}
	}
	errs := e.finish(jr)
	for _, j := range jobs {
		if j.failed {
			continue
		}
		if rerr := errs[j.entry.Tree]; rerr != nil {
			j.fail(errors.Join(err, fmt.Errorf("roll back tree %s: %w (the journal is kept: run %s again)", j.entry.Tree, rerr, e.Suggest.Cmd("update"))))
		} else {
			j.fail(err)
		}
	}
}
