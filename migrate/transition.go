package migrate

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"path"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/treeshift/treeshift/format"
	"github.com/treeshift/treeshift/internal/compile"
	"github.com/treeshift/treeshift/internal/durable"
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
	// Cleanup says why removing what a committed transition no longer
	// uses failed: the tree moved (outcome updated), and the next update
	// finishes the cleanup.
	Cleanup string `json:"cleanup,omitempty"`
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
	e.report(bufs)
}

// report prints buffered lines in order.
func (e *Engine) report(bufs []lines) {
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
	// sum is the sum of the tree's saved state, which only the journal
	// holds: verify compares with it.
	sum   [32]byte
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

// Why a journal being written is given up: nothing was staged yet.
var (
	errHeld    = errors.New("a tree could not be checked")
	errNothing = errors.New("no tree to move")
)

// transition moves the trees names, in that order, to t, and returns what
// happened to each. The trees move together, in phases, so that a run
// makes two barriers — a filesystem sync of the system directory's
// filesystem and of the live directory's — whatever the number of trees:
//
//  1. check every tree (decode, plan, tunability, live link, saved state),
//     writing each one's line of the journal as it goes; if one cannot be
//     read or is inconsistent, the journal is dropped and nothing is
//     changed;
//  2. per tree: copy the live database to a private directory, build the
//     new generation beside the old one and read it back; stage the state
//     file with the new format stamp;
//  3. barrier: the journal and every database a link will point at are
//     durable;
//  4. per tree: point the live link at the copy, make the new generation
//     current, check for outside writers, verify against the saved state,
//     point the live link at the new database; a tree that fails is undone
//     alone;
//  5. commit: the journal is renamed committed (its content is durable
//     since 3); the staged state is renamed over the state;
//  6. barrier: the swaps and the commit are durable;
//  7. remove the copies, the old generations and the journal, unsynced.
//
// A crash before the commit is durable leaves every tree's original
// generation in place, and the next run points tree and live links back
// at it (and the stamp); after, the next run points them at the new one
// and finishes the cleanup. No link ever points at a database that is not
// durably complete. On an overlay (a dry run) the same code runs and
// nothing reaches the disk.
func (e *Engine) transition(names []string, t target) []Result {
	start := time.Now()
	flushed := durable.Flushes()
	results := make([]Result, len(names))
	defer func() {
		for i := range results {
			results[i].Seconds = time.Since(start).Seconds()
		}
		if !e.DryRun {
			e.note(4, "durable layer: %s", durable.Flushes().Sub(flushed))
		}
	}()
	// A tree already in the target format needs no more than a look at the
	// version it states: nothing will be changed, so nothing need be
	// validated; a run with nothing to do writes nothing.
	var todo []int
	for i, n := range names {
		results[i] = Result{Tree: n, To: t.to, Hops: []Hop{}}
		if t.tagged == nil {
			if v, err := e.Store.PeekFormat(n); err == nil && v == t.to {
				results[i].From, results[i].Outcome = v, Unchanged
				e.note(4, "tree: %s is already in format %s", n, format.Name(t.to))
				continue
			}
		}
		todo = append(todo, i)
	}
	if len(todo) == 0 {
		return results
	}
	failAll := func(err error) []Result {
		for _, i := range todo {
			results[i].Outcome, results[i].Error = Failed, err.Error()
		}
		return results
	}
	// Watching starts before any tree is read: a write by another process
	// between this run's reading a tree and its commit is noticed.
	var w *watch
	if !e.DryRun && !e.noWatch {
		w = newWatch()
		defer w.Close()
	}
	// Trees an earlier run left stuck in the journal (recovery could not
	// finish them) stay in it, ahead of this run's: the journal is the only
	// record that they need the way out.
	old, err := e.readJournalRaw(true)
	if err != nil {
		return failAll(err)
	}
	listing, err := e.Store.List()
	if err != nil {
		return failAll(err)
	}
	jr := &journal{Schema: journalSchema, Started: start.UTC(), File: journalEntry}
	var st tree.State
	if old == nil && t.tagged == nil {
		if jr.Stamp, st, err = e.planStamp(names, todo, t.to); err != nil {
			return failAll(err)
		}
	}

	// 1. Check, and journal.
	var jobs []*job
	held := false
	defs := &defCache{m: map[string]defResult{}}
	// Replacing a journal that alone records stuck trees, the new one is
	// durable before its rename, as that one was; a run's own is made
	// durable by the first barrier.
	open := func(write func(io.Writer) error) error { return e.Store.CreateJournal(journalEntry, write) }
	if old != nil {
		open = func(write func(io.Writer) error) error { return e.Store.WriteJournal(journalEntry, write) }
	}
	sink := &journalSink{open: open, limit: journalBuffer}
	jw := newJournalWriter(sink, jr)
	if old != nil {
		for _, r := range old.raw {
			r.Committed = old.committed(r.entry)
			jw.line(r.entry, r.Saved)
			jr.Trees = append(jr.Trees, r.entry)
		}
	}
	e.pipeline(len(todo), func(k int, out *lines) any {
		i := todo[k]
		j, sv := e.check(&results[i], t, w, out, listing, defs)
		return checked{j, sv}
	}, func(k int, v any) {
		c := v.(checked)
		if c.job == nil {
			held = held || results[todo[k]].Outcome == Failed
			return
		}
		jobs = append(jobs, c.job)
		jr.Trees = append(jr.Trees, c.job.entry)
		jw.line(c.job.entry, c.saved)
	})
	switch {
	case held:
		err = sink.finish(errHeld)
	case len(jobs) == 0:
		err = sink.finish(errNothing)
	default:
		if err = jw.close(); err == nil {
			err = sink.finish(nil)
		} else {
			sink.finish(err)
		}
	}
	if err == nil && old != nil && old.File == committedEntry {
		err = e.Store.DropJournal(committedEntry)
	}
	e.note(4, "checked %d tree(s) in %s", len(todo), time.Since(start).Round(10*time.Microsecond))
	switch {
	case errors.Is(err, errHeld):
		// A tree that cannot be read or checked stops the run before
		// anything changes: a system half moved because one record was
		// corrupt is harder to reason about than one left as it was.
		for _, r := range results {
			if r.Outcome == Failed {
				for _, j := range jobs {
					j.res.Outcome, j.res.Error = Held, fmt.Sprintf("tree %s: not changed: tree %s could not be checked", j.entry.Tree, r.Tree)
				}
				return results
			}
		}
	case errors.Is(err, errNothing):
		return results
	case err != nil:
		for _, j := range jobs {
			j.fail(err)
		}
		return results
	}
	for _, j := range jobs {
		e.act("save state of tree: %s", j.entry.Tree)
	}
	e.note(4, "journal %s written: %d tree(s)", e.Store.JournalPath(journalEntry), len(jr.Trees))

	// 2. Prepare. The stamp moves only if every tree the run was given
	// ends in the target format: none refused or left as it was.
	stamp := jr.Stamp != nil && len(jobs) == len(todo)
	if stamp {
		st.Stamp = jr.Stamp.To
		if err := e.Store.StageState(st); err != nil {
			e.abort(jobs, jr, err)
			return results
		}
	}
	e.parallel(len(jobs), func(i int, out *lines) {
		j := jobs[i]
		if err := Run(j.prepare, func(s string) { out.act("%s", s) }); err != nil {
			j.fail(err)
		}
		if j.failed { // its staged generation and copy are gone: nothing to swap
			j.prepare, j.swap = nil, nil
		} else if s := j.build.Staged(); s != nil {
			out.note(4, "tree %s: staged generation %d, format %s, at %s", j.entry.Tree, s.Gen, format.Name(s.Format), s.Dir)
			// Held for every tree until the swaps, the staged trees'
			// records would grow with the run: verify reads them back.
			s.Tree = nil
		}
	})
	e.note(4, "prepared %d tree(s) in %s", len(jobs), time.Since(start).Round(10*time.Microsecond))
	// 3. Barrier: the journal, the staged state, the copies and the new
	// generations are durable before any link moves.
	if err := e.barrier(); err != nil {
		e.abort(jobs, jr, err)
		return results
	}
	// 4. Swap.
	e.parallel(len(jobs), func(i int, out *lines) {
		j := jobs[i]
		if !j.failed {
			if err := Run(j.swap, func(s string) { out.act("%s", s) }); err != nil {
				j.fail(err)
			}
		}
		j.prepare, j.swap = nil, nil // the trees they hold are no longer needed
		if s := j.build.Staged(); s != nil {
			s.Tree = nil
		}
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
	// 5. Commit.
	stamped, err := e.commit(jobs, jr, old != nil, stamp)
	if err != nil {
		e.abort(jobs, jr, err)
		return results
	}
	// 6. Barrier: the swaps and the commit are durable before anything is
	// removed, and before the run returns.
	if err := e.barrier(); err != nil {
		e.abort(jobs, jr, err)
		return results
	}
	e.note(4, "committed %d tree(s) in %s", len(jobs), time.Since(start).Round(10*time.Microsecond))
	// 7.
	if errs := e.finish(jr, false); len(errs) > 0 {
		// The trees moved: "failed" would say they are as they were.
		for _, j := range jobs {
			if err := errs[j.entry.Tree]; err != nil && !j.failed {
				j.res.Cleanup = fmt.Sprintf("tree %s: transition committed, cleanup failed: %v (run %s again)", j.entry.Tree, err, e.Suggest.Cmd("update"))
			}
		}
	}
	for _, j := range jobs {
		if !j.failed {
			e.act("tree: %s updated successfully", j.entry.Tree)
			j.res.Outcome = Updated
		}
	}
	if stamped {
		e.act("update format stamp of %s to: %d", e.Store.Dir, jr.Stamp.To)
	}
	return results
}

// journalBuffer is how much of its journal a run holds in memory before it
// writes it: a run that gives up its journal after checking every tree (a
// tree refused, or unreadable) leaves the system directory untouched,
// unless the journal grew past this, which takes thousands of services.
var journalBuffer = 1 << 20

var errJournalClosed = errors.New("the journal was closed")

// journalSink is where a run writes its journal while it checks its trees:
// memory, up to limit, then the journal entry, through open.
type journalSink struct {
	open  func(write func(io.Writer) error) error
	limit int
	buf   bytes.Buffer
	pw    *io.PipeWriter
	done  chan error
}

func (s *journalSink) Write(p []byte) (int, error) {
	if s.pw != nil {
		return s.pw.Write(p)
	}
	s.buf.Write(p)
	if s.buf.Len() <= s.limit {
		return len(p), nil
	}
	pr, pw := io.Pipe()
	s.pw, s.done = pw, make(chan error, 1)
	go func() {
		err := s.open(func(w io.Writer) error {
			_, err := io.Copy(w, pr)
			return err
		})
		if err == nil {
			err = errJournalClosed
		}
		pr.CloseWithError(err)
		s.done <- err
	}()
	b := s.buf.Bytes()
	s.buf = bytes.Buffer{}
	if _, err := pw.Write(b); err != nil {
		return 0, err
	}
	return len(p), nil
}

// finish writes the journal, or with cause gives it up, leaving no entry,
// and returns cause.
func (s *journalSink) finish(cause error) error {
	if s.pw == nil {
		if cause != nil {
			return cause
		}
		return s.open(func(w io.Writer) error {
			_, err := w.Write(s.buf.Bytes())
			return err
		})
	}
	s.pw.CloseWithError(cause)
	err := <-s.done
	if cause != nil {
		return cause
	}
	if errors.Is(err, errJournalClosed) {
		return nil
	}
	return err
}

// checked is what checking a tree gives: its job (nil when there is
// nothing to do or the tree is refused) and its saved state for the
// journal.
type checked struct {
	job   *job
	saved []byte
}

// planStamp is the move of the format stamp a run of trees names (those
// of them at indices todo to be moved) to v makes if every tree commits:
// the stamp moves once every tree of the owner is in v. A system directory
// without a stamp yet keeps none.
func (e *Engine) planStamp(names []string, todo []int, v int) (*stampMove, tree.State, error) {
	st, err := e.Store.ReadState()
	if err != nil || st.Stamp == 0 || st.Stamp == v {
		return nil, st, err
	}
	all, err := e.Store.Names()
	if err != nil {
		return nil, st, err
	}
	moving := map[string]bool{}
	for _, i := range todo {
		moving[names[i]] = true
	}
	for _, n := range all {
		if moving[n] {
			continue
		}
		if f, err := e.Store.PeekFormat(n); err != nil || f != v {
			return nil, st, nil
		}
	}
	return &stampMove{From: st.Stamp, To: v}, st, nil
}

// commit marks the trees that transitioned committed. When all did, and
// the journal is the run's alone, it is renamed committed, which costs no
// flush: its content is durable since the first barrier, and the second
// makes the rename so. Otherwise it is rewritten, durably before its rename,
// with each tree's outcome. The stamp moves when every tree committed.
func (e *Engine) commit(jobs []*job, jr *journal, carried, stamp bool) (stamped bool, err error) {
	all := !carried
	done := map[string]bool{}
	for _, j := range jobs {
		if j.failed {
			all = false
		} else {
			done[j.entry.Tree] = true
		}
	}
	switch {
	case all:
		// The stamp first: a crash between the two renames leaves the
		// run uncommitted, and its recovery puts the stamp back.
		if stamp {
			if err := e.Store.CommitState(); err != nil {
				return false, err
			}
		}
		if err := e.Store.RenameJournal(journalEntry, committedEntry); err != nil {
			return false, err
		}
		jr.File = committedEntry
	case len(done) > 0:
		if err := e.rewriteJournal(journalEntry, func(entry) bool { return true }, func(x entry) bool { return x.Committed || done[x.Tree] }); err != nil {
			return false, err
		}
	}
	for i := range jr.Trees {
		jr.Trees[i].Committed = jr.Trees[i].Committed || done[jr.Trees[i].Tree]
	}
	return all && stamp, nil
}

// check is phase 1 for one tree: it fills res and returns the tree's job
// and its saved state, or nil when there is nothing to do or the tree is
// refused.
func (e *Engine) check(res *Result, tg target, w *watch, out *lines, l *tree.Listing, defs *defCache) (*job, []byte) {
	name := res.Tree
	fail := func(outcome string, err error) (*job, []byte) {
		res.Outcome, res.Error = outcome, err.Error()
		return nil, nil
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
	res.Drift = e.drift(t, defs)
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
	j := &job{res: res, entry: entry{Tree: name, From: t.Format, To: tg.to, Gen: t.Gen, NewGen: l.Next(name), Live: live}}
	var want saved
	if tg.tagged == nil {
		p, err := e.planLoaded(t, tg.to)
		if err != nil {
			return fail(Failed, err)
		}
		res.Hops = p.Hops
		if len(p.Hops) == 0 {
			res.Outcome = Unchanged
			return nil, nil
		}
		if !p.OK() {
			return fail(Refused, &RefusedError{Plan: p})
		}
		j.build = e.convert(p, t.Gen, j.entry.NewGen)
		want = saveOf(ts)
	} else {
		b, w, err := e.restoreBuild(t, tg.tagged, ts, j.entry.NewGen)
		if err != nil {
			return fail(Failed, err)
		}
		j.build, want = b, w
		j.entry.To = b.format
		res.To = b.format
	}
	sv, sum, err := savedJSON(want)
	if err != nil {
		return fail(Failed, err)
	}
	j.sum = sum
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
	j.swap = append(j.swap, &commit{e: e, name: name, b: j.build}, g, &verify{e: e, sum: j.sum, name: name, b: j.build})
	if live {
		j.swap = append(j.swap,
			&move{e: e, lt: lt, target: func() string { return j.build.Staged().CompiledDir() },
				shown: path.Join(e.Store.Pointer(name), compile.Dir)},
			&verify{e: e, sum: j.sum, name: name, b: j.build, live: lt})
	}
	// Once more, last: a write during the swap is noticed before the commit.
	j.swap = append(j.swap, g)
	return j, sv
}

// pipeline runs work for 0..n-1, up to Workers at once, each with its own
// buffer, and hands each result to consume in order, from the calling
// goroutine; then it reports the buffers in order. Work runs at most a few
// items ahead of consume, so that what results hold is bounded whatever n.
func (e *Engine) pipeline(n int, work func(i int, out *lines) any, consume func(i int, v any)) {
	workers := e.Workers
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	bufs := make([]lines, n)
	results := make([]chan any, n)
	for i := range results {
		results[i] = make(chan any, 1)
	}
	window := make(chan struct{}, 2*workers)
	next := make(chan int)
	go func() {
		for i := 0; i < n; i++ {
			window <- struct{}{}
			next <- i
		}
		close(next)
	}()
	var wg sync.WaitGroup
	for w := 0; w < min(workers, n); w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				results[i] <- work(i, &bufs[i])
			}
		}()
	}
	for i := 0; i < n; i++ {
		consume(i, <-results[i])
		<-window
	}
	wg.Wait()
	e.report(bufs)
}

// barrier makes everything written and renamed so far durable: the system
// directory's filesystem and the live directory's — once when they are
// one.
func (e *Engine) barrier() error {
	start := time.Now()
	if err := e.Store.Sync(); err != nil {
		return err
	}
	// A live directory that does not exist holds nothing to sync; one on
	// the system directory's filesystem was synced with it.
	sep, err := e.separateLive()
	if err != nil {
		return err
	}
	if sep {
		if err := e.Live.Sync(); err != nil {
			return err
		}
	}
	e.note(4, "barrier: synced the filesystems of %s and %s in %s", e.Store.Dir, e.LiveDir, time.Since(start).Round(10*time.Microsecond))
	return nil
}

// separateLive reports whether the live directory exists on a filesystem
// other than the system directory's.
func (e *Engine) separateLive() (bool, error) {
	if ok, err := durable.Exists(e.FS, e.LiveDir); err != nil || !ok {
		return false, err
	}
	same, err := e.FS.SameFS(e.Store.Dir, e.LiveDir)
	return !same, err
}

// abort handles a failure that concerns the whole run (a barrier, the
// journal or the commit could not be written): every tree of the run is
// rolled back, and a barrier makes that durable before anything goes.
func (e *Engine) abort(jobs []*job, jr *journal, err error) {
	fail := func(extra error) {
		for _, j := range jobs {
			if !j.failed {
				j.fail(errors.Join(err, extra))
			}
		}
	}
	if jr.File == committedEntry {
		if rerr := e.Store.RenameJournal(committedEntry, journalEntry); rerr != nil {
			fail(fmt.Errorf("roll back: %w (the journal is kept: run %s again, which completes the transition)", rerr, e.Suggest.Cmd("update")))
			return
		}
		jr.File = journalEntry
	}
	ours := map[string]bool{}
	for _, j := range jobs {
		ours[j.entry.Tree] = true
	}
	for i := range jr.Trees {
		if ours[jr.Trees[i].Tree] {
			jr.Trees[i].Committed = false
		}
	}
	errs := e.finish(jr, true)
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
