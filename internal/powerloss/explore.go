package powerloss

import (
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path"
	"strings"
	"time"

	"github.com/treeshift/treeshift/format"
	"github.com/treeshift/treeshift/internal/durable"
	"github.com/treeshift/treeshift/internal/owner"
	"github.com/treeshift/treeshift/internal/scratch"
	"github.com/treeshift/treeshift/migrate"
)

// Config says what to explore.
type Config struct {
	// Owner owns the staged system; Owner.Root is its root, a host path,
	// which is copied and never changed.
	Owner owner.Owner
	// Live is the live directory inside the root (default owner.DefaultLive).
	Live string
	// To is the format every tree is moved to (default: the newest).
	To int
	// Mounts are directories inside the root that are filesystems of their
	// own: a filesystem sync of one makes nothing on another durable, and
	// a hard link cannot cross from one to another. Nil means the live
	// directory, as on most systems; an empty list, one filesystem.
	Mounts []string
	// States bounds the distinct crash states checked: 0 checks every state
	// enumerated. The states of every crash point with every unsynced
	// change lost (a few dozen) are checked whatever the bound: they decide
	// when each run committed. Then come, in a random order (Seed), those
	// most likely to find a fault (see specs), then the others.
	States int
	// Random is the number of random subsets of the unsynced changes tried
	// at each crash point; negative for none.
	Random int
	Seed   uint64
	// Recovery also records two recoveries of an interrupted update, one
	// that rolls back and one that completes, and explores their crash
	// states: a crash during recovery must be recoverable too.
	Recovery bool
	// Drop, if set, leaves the syncs it returns true for out of the traces:
	// the states are then those of a run that never made them (the host
	// still does, which changes nothing about the trace).
	Drop func(Sync) bool
	// Scratch is where crash states are written and checked (default: a
	// temporary directory, removed at the end).
	Scratch string
	// Stop ends the exploration after this many violations (default 5).
	Stop int
	// Progress, if set, is called now and then with the number of crash
	// states checked so far.
	Progress func(checked int)
}

// Result is what an exploration found.
type Result struct {
	Runs []RunStats
	// Enumerated is the number of crash states the explorer generated,
	// Tried the number it looked at (all of them without a bound), and
	// States the number of distinct ones among those, each checked once
	// (a recovery and an update each).
	Enumerated, Tried, States int
	Violations                []Violation
	Elapsed                   time.Duration
}

// RunStats describes one recorded run.
type RunStats struct {
	// Name says which run: the update, or a recovery from a crash state.
	Name string
	// Calls is the FS calls made; Units and Syncs the trace's events;
	// Dropped the syncs left out.
	Calls, Units, Syncs, Dropped int
	// Points is the number of crash points (one after each event, and one
	// before the first).
	Points int
	// Enumerated, Tried and States as in Result, for this run.
	Enumerated, Tried, States int
	// Commit is the event after which every crash state recovers to the
	// converted system, or "" if there is none.
	Commit string
}

// Violation is a crash state whose recovery broke the guarantee.
type Violation struct {
	Run     string
	State   string
	Problem string
}

func (v Violation) String() string {
	return fmt.Sprintf("%s\n    in the %s, %s", strings.ReplaceAll(v.Problem, "\n", "\n    "), v.Run, v.State)
}

// OK reports whether no violation was found.
func (r *Result) OK() bool { return len(r.Violations) == 0 }

// Summary is one line for people.
func (r *Result) Summary() string {
	calls, points := 0, 0
	for _, x := range r.Runs {
		calls += x.Calls
		points += x.Points
	}
	verdict := "the guarantee held in every one"
	if !r.OK() {
		verdict = fmt.Sprintf("%d violation(s) of the guarantee", len(r.Violations))
	}
	of := fmt.Sprintf("every one of the %d", r.Enumerated)
	if r.Tried < r.Enumerated {
		of = fmt.Sprintf("a sample of the %d", r.Enumerated)
	}
	return fmt.Sprintf("%d crash states explored (%s enumerated at %d crash points of %d run(s), %d file operations; %d tried, duplicates checked once) in %s: %s",
		r.States, of, points, len(r.Runs), calls, r.Tried, r.Elapsed.Round(time.Millisecond), verdict)
}

// run is a recorded run and what is known of its crash states.
type run struct {
	name  string
	trace *trace
	stats *RunStats
	// commit is the first crash point whose every-change-lost state
	// recovers to the converted system (-1: none yet known).
	commit int
}

// Explore records an update of the staged system, generates the crash
// states its trace allows, and checks the recovery of each. An error means
// the exploration could not be carried out (the staged system does not
// update, a crash state could not be written); what it found is in the
// result.
func Explore(cfg Config) (*Result, error) {
	start := time.Now()
	if cfg.Live == "" {
		cfg.Live = owner.DefaultLive
	}
	if cfg.To == 0 {
		cfg.To = format.Newest()
	}
	if cfg.Mounts == nil {
		cfg.Mounts = []string{cfg.Live}
	}
	if cfg.Random == 0 {
		cfg.Random = 2
	}
	if cfg.Stop == 0 {
		cfg.Stop = 5
	}
	work := cfg.Scratch
	if work == "" {
		d, err := scratch.Dir("treeshift-powerloss")
		if err != nil {
			return nil, err
		}
		defer os.RemoveAll(d)
		work = d
	}
	c := &checker{cfg: cfg, scratch: work, cache: map[[32]byte]*outcome{}, updated: map[[32]byte]string{}}
	res := &Result{}
	defer func() { res.Elapsed = time.Since(start) }()

	// The state before, and the converted state, from a real run.
	b, done, err := c.open(cfg.Owner.Root, nil)
	if err != nil {
		return res, err
	}
	c.before, err = statusOf(b)
	done()
	if err != nil {
		return res, err
	}
	for _, t := range c.before.st.Trees {
		if t.Live.Initialized {
			c.live = append(c.live, t.Name)
		}
	}
	upd, err := c.record("update", cfg.Owner.Root)
	if err != nil {
		return res, err
	}
	c.after = upd.end
	if c.after.json == c.before.json {
		return res, fmt.Errorf("the staged system in %s has nothing to update to format %d", cfg.Owner.Root, cfg.To)
	}
	runs := []*run{upd.run}
	if cfg.Recovery {
		starts, err := upd.recoveries(c)
		if err != nil {
			return res, err
		}
		for _, r := range starts {
			rec, err := c.record(r.name, r.root)
			if err != nil {
				return res, err
			}
			runs = append(runs, rec.run)
		}
	}
	for _, r := range runs {
		res.Runs = append(res.Runs, *r.stats)
	}

	// Every crash point's every-change-lost state first: they decide the
	// commit point of each run, against which the others are judged.
	var todo []spec
	for _, r := range runs {
		for k := 0; k <= len(r.trace.events); k++ {
			todo = append(todo, spec{run: r, k: k, mode: allLost})
		}
		r.stats.Enumerated = len(r.trace.events) + 1
	}
	var first, others []spec
	for _, r := range runs {
		f, e, o := r.specs(cfg.Random, cfg.Seed)
		first, others = append(first, f...), append(append(others, e...), o...)
		r.stats.Enumerated += len(f) + len(e) + len(o)
	}
	if cfg.States > 0 {
		// A bounded run takes the likeliest states first, then a sample
		// of the others.
		rng := rand.New(rand.NewPCG(cfg.Seed, 1))
		rng.Shuffle(len(first), func(i, j int) { first[i], first[j] = first[j], first[i] })
		rng.Shuffle(len(others), func(i, j int) { others[i], others[j] = others[j], others[i] })
	}
	todo = append(append(todo, first...), others...)
	for i, sp := range todo {
		if cfg.States > 0 && c.checked >= cfg.States && sp.mode != allLost {
			break
		}
		if len(res.Violations) >= cfg.Stop {
			break
		}
		if sp.mode != allLost && sp.k == 0 {
			continue
		}
		if err := c.judge(sp, res); err != nil {
			return res, err
		}
		if cfg.Progress != nil && i%100 == 0 {
			cfg.Progress(c.checked)
		}
	}
	res.States = c.checked
	for i, r := range runs {
		res.Runs[i].Enumerated, res.Runs[i].Tried, res.Runs[i].States = r.stats.Enumerated, r.stats.Tried, r.stats.States
		if r.commit >= 0 {
			res.Runs[i].Commit = r.trace.describe(spec{k: r.commit, mode: allLost}, nil)
		}
		res.Enumerated += r.stats.Enumerated
		res.Tried += r.stats.Tried
	}
	return res, nil
}

// checker checks crash states.
type checker struct {
	cfg           Config
	scratch       string
	before, after doc
	live          []string // the trees live before the run
	cache         map[[32]byte]*outcome
	// updated holds what the update after recovery found, by the
	// fingerprint of the recovered files.
	updated map[[32]byte]string
	checked int
}

// doc is a status document and its JSON, to compare.
type doc struct {
	st   *migrate.Status
	json string
}

func statusOf(e *migrate.Engine) (doc, error) {
	st, err := e.Status(nil)
	if err != nil {
		return doc{}, err
	}
	b, err := json.MarshalIndent(st, "", " ")
	return doc{st, string(b)}, err
}

// outcome is what became of a crash state: the system its recovery left
// (before, after, or after with the stamp not yet moved: lagging), or what
// went wrong.
type outcome struct {
	class   string
	problem string
	detail  string // how the recovered system differs from the converted one
}

// nosync is the FS of the checking runs: nothing crashes them, so what
// they write need not be durable, and skipping the syncs makes each check
// cheap.
type nosync struct{ durable.FS }

func (nosync) Fsync(string) error   { return nil }
func (nosync) SyncDir(string) error { return nil }
func (nosync) SyncFS(string) error  { return nil }

// open opens the engine of the system in root (a host path) as a new run
// would, with one worker, so that runs repeat exactly; wrap (default: no
// syncs) wraps its FS. done releases what the engine holds open.
func (c *checker) open(root string, wrap func(durable.FS) durable.FS) (e *migrate.Engine, done func(), err error) {
	o := c.cfg.Owner
	o.Root = root
	var closer io.Closer
	done = func() {
		if closer != nil {
			closer.Close()
		}
	}
	e, err = migrate.Open(o, migrate.Options{Live: c.cfg.Live, WrapFS: func(f durable.FS) durable.FS {
		closer, _ = f.(io.Closer)
		if wrap != nil {
			return wrap(f)
		}
		return nosync{f}
	}})
	if err != nil {
		done()
		return nil, nil, err
	}
	e.Workers = 1
	return e, done, nil
}

// recorded is a run recorded from a copy of a system, and the engine of
// that copy after the run.
type recorded struct {
	*run
	end doc // the status after the run
}

// record copies the system in src to a new directory and records an update
// of the copy to the target format, which must succeed.
func (c *checker) record(name, src string) (*recorded, error) {
	root, err := os.MkdirTemp(c.scratch, "run")
	if err != nil {
		return nil, err
	}
	if out, err := exec.Command("cp", "-a", src+"/.", root).CombinedOutput(); err != nil {
		return nil, fmt.Errorf("cp -a %s %s: %v: %s", src, root, err, out)
	}
	f := &files{mounts: append([]string{"/"}, c.cfg.Mounts...)}
	base, err := scan(root, f)
	if err != nil {
		return nil, err
	}
	var rec *recorder
	e, done, err := c.open(root, func(inner durable.FS) durable.FS {
		rec = newRecorder(inner, f, base)
		rec.Drop = c.cfg.Drop
		return rec
	})
	if err != nil {
		return nil, err
	}
	_, err = e.Update(nil, c.cfg.To)
	done()
	if err != nil {
		return nil, fmt.Errorf("%s of the staged system in %s: %w", name, root, err)
	}
	if err := rec.failure(); err != nil {
		return nil, fmt.Errorf("%s: the recorder lost track of the run: %w", name, err)
	}
	// The model must hold exactly what the run left on disk, or the
	// states made from it are not the run's.
	if got, want := rec.vol.describe(f), describeHost(root); got != want {
		return nil, fmt.Errorf("%s: the recorder's model of the run differs from the disk:\n%s", name, lineDiff(want, got))
	}
	t := rec.trace
	t.finish()
	e, done, err = c.open(root, nil)
	if err != nil {
		return nil, err
	}
	end, err := statusOf(e)
	done()
	if err != nil {
		return nil, err
	}
	st := &RunStats{Name: name, Calls: t.Calls, Units: t.units(), Syncs: t.syncs(), Dropped: t.Dropped, Points: len(t.events) + 1}
	return &recorded{run: &run{name: name, trace: t, stats: st, commit: -1}, end: end}, nil
}

// describeHost describes the host directory root as state.describe does.
func describeHost(root string) string {
	f := &files{mounts: []string{"/"}}
	s, err := scan(root, f)
	if err != nil {
		return err.Error()
	}
	return s.describe(f)
}

// lineDiff lists the lines of a missing from b and of b missing from a.
func lineDiff(a, b string) string {
	in := func(s string) map[string]bool {
		m := map[string]bool{}
		for _, l := range strings.Split(s, "\n") {
			m[l] = true
		}
		return m
	}
	ma, mb := in(a), in(b)
	var out []string
	for _, l := range strings.Split(a, "\n") {
		if !mb[l] {
			out = append(out, "disk:  "+l)
		}
	}
	for _, l := range strings.Split(b, "\n") {
		if !ma[l] {
			out = append(out, "model: "+l)
		}
	}
	return strings.Join(out, "\n")
}

// start is a crash state a recovery is recorded from.
type start struct{ name, root string }

// recoveries writes two crash states of the update to recover from: the
// richest one that rolls back (the journal open and not committed, every
// unsynced change kept) and the poorest one that completes (the journal
// committed, every unsynced change lost). A run that has no such state
// (one whose journal is never durably committed) has no such recovery.
func (r *recorded) recoveries(c *checker) ([]start, error) {
	t := r.trace
	// A run commits by renaming its journal "update.committed" (schema 3)
	// or, when some tree failed, by marking the trees committed in it.
	jr := path.Join(c.cfg.Owner.SystemDir(), "journal", "update")
	committed := func(s *state) bool {
		return s.read(jr+".committed") != "" || strings.Contains(s.read(jr), `"committed":true`)
	}
	var out []start
	rollback, complete := -1, -1
	for k := 0; k <= len(t.events); k++ {
		if s, _ := t.build(spec{k: k, mode: allKept}); strings.Contains(s.read(jr), `"committed":false`) && !committed(s) {
			rollback = k
		}
		if s, _ := t.build(spec{k: k, mode: allLost}); complete < 0 && committed(s) {
			complete = k
		}
	}
	for _, x := range []struct {
		name string
		k    int
		mode byte
	}{{"recovery that rolls back", rollback, allKept}, {"recovery that completes", complete, allLost}} {
		if x.k < 0 {
			continue
		}
		s, _ := t.build(spec{k: x.k, mode: x.mode})
		dir, err := os.MkdirTemp(c.scratch, "start")
		if err != nil {
			return nil, err
		}
		if err := s.materialize(t.files, dir); err != nil {
			return nil, fmt.Errorf("write a crash state in %s: %w", dir, err)
		}
		out = append(out, start{fmt.Sprintf("%s (from the update's %s)", x.name, t.describe(spec{k: x.k, mode: x.mode}, nil)), dir})
	}
	return out, nil
}

// read returns the content of the file at p in s, or "".
func (s *state) read(p string) string {
	n, _, _, err := s.lookup(p)
	if err != nil {
		return ""
	}
	if _, ok := s.dirs[n]; ok {
		return ""
	}
	return string(s.contentOf(n).b)
}

// judge checks the crash state sp and records what is wrong with it.
func (c *checker) judge(sp spec, res *Result) error {
	r := sp.run
	r.stats.Tried++
	s, lost := r.trace.build(sp)
	fp := s.fingerprint(r.trace.files)
	o, seen := c.cache[fp]
	if !seen {
		var err error
		if o, err = c.check(s, r.trace.files); err != nil {
			return err
		}
		c.cache[fp] = o
		c.checked++
		r.stats.States++
		if o.problem != "" {
			res.Violations = append(res.Violations, Violation{Run: r.name, State: r.trace.describe(sp, lost), Problem: o.problem})
			return nil
		}
	}
	if o.problem != "" {
		return nil // reported where first met
	}
	done := o.class == "after" || o.class == "lagging"
	if sp.mode == allLost && done && r.commit < 0 {
		r.commit = sp.k
	}
	switch {
	case sp.k == len(r.trace.events) && o.class != "after":
		res.Violations = append(res.Violations, Violation{Run: r.name, State: r.trace.describe(sp, lost),
			Problem: fmt.Sprintf("the run had returned, yet recovery leaves the system %s:\n%s", c.words(o.class), o.detail)})
	case r.commit >= 0 && sp.k >= r.commit && !done:
		res.Violations = append(res.Violations, Violation{Run: r.name, State: r.trace.describe(sp, lost),
			Problem: fmt.Sprintf("the system went back after it was converted: a crash at point %d with every unsynced change lost recovers to the converted system, yet this later one to the system before the run; the run moved on before its outcome was durable", r.commit)})
	}
	return nil
}

func (c *checker) words(class string) string {
	switch class {
	case "before":
		return "as it was before the run"
	case "lagging":
		return "converted, but with the format stamp not moved"
	}
	return class
}

// check writes the crash state s, and runs on it what the next treeshift
// update runs: recovery (under the owner lock), then an update to the
// target format. It requires that every tree live before has a live link
// that resolves, in the crash state and after recovery; that recovery
// succeeds and leaves the system exactly as before the run or exactly as
// converted (its stamp may lag); and that the update then succeeds and
// leaves the system exactly as converted, with no journal left.
func (c *checker) check(s *state, f *files) (*outcome, error) {
	dir, err := os.MkdirTemp(c.scratch, "state")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	if err := s.materialize(f, dir); err != nil {
		return nil, fmt.Errorf("write a crash state in %s: %w", dir, err)
	}
	bad := func(format string, args ...any) (*outcome, error) {
		return &outcome{problem: fmt.Sprintf(format, args...)}, nil
	}
	e, done, err := c.open(dir, nil)
	if err != nil {
		return bad("the next run cannot open the system: %v", err)
	}
	defer done()
	if msg := c.links(e); msg != "" {
		return bad("after the crash: %s", msg)
	}
	unlock, err := e.Lock()
	if err != nil {
		return bad("the next run cannot take the owner lock: %v", err)
	}
	_, err = e.Recover()
	unlock()
	if err != nil {
		return bad("recovery fails: %v", err)
	}
	if msg := c.links(e); msg != "" {
		return bad("after recovery: %s", msg)
	}
	got, err := statusOf(e)
	if err != nil {
		return bad("after recovery, status fails: %v", err)
	}
	o := &outcome{detail: strings.ReplaceAll(strings.ReplaceAll(lineDiff(c.after.json, got.json), "disk:  ", "want: "), "model: ", "got:  ")}
	switch got.json {
	case c.before.json:
		o.class = "before"
	case c.after.json:
		o.class = "after"
	default:
		lag := *got.st
		lag.Stamp = c.after.st.Stamp
		if b, _ := json.MarshalIndent(&lag, "", " "); got.st.Stamp == c.before.st.Stamp && string(b) == c.after.json {
			o.class = "lagging"
		} else {
			return bad("after recovery the system is neither as it was nor as converted:\n%s", lineDiff2(c.before.json, c.after.json, got.json))
		}
	}
	// Recovery collects what the crash left unused, so many crash states
	// recover to the same files: the update after is then the same run.
	fp, err := diskPrint(dir)
	if err != nil {
		return nil, err
	}
	if prev, ok := c.updated[fp]; ok {
		if prev != "" {
			return bad("%s", prev)
		}
		return o, nil
	}
	msg := c.update(dir)
	c.updated[fp] = msg
	if msg != "" {
		return bad("%s", msg)
	}
	return o, nil
}

// diskPrint is the fingerprint of the files below the host directory dir.
func diskPrint(dir string) ([32]byte, error) {
	f := &files{mounts: []string{"/"}}
	s, err := scan(dir, f)
	if err != nil {
		return [32]byte{}, err
	}
	return s.fingerprint(f), nil
}

// update runs the update that follows recovery on the system in dir, and
// says what is wrong with it, if anything.
func (c *checker) update(dir string) string {
	bad := func(format string, args ...any) string { return fmt.Sprintf(format, args...) }
	e2, done, err := c.open(dir, nil)
	if err != nil {
		return bad("after recovery, the next run cannot open the system: %v", err)
	}
	defer done()
	if _, err := e2.Update(nil, c.cfg.To); err != nil {
		return bad("after recovery, the update fails: %v", err)
	}
	final, err := statusOf(e2)
	if err != nil {
		return bad("after the update, status fails: %v", err)
	}
	if final.json != c.after.json {
		return bad("after the update the system is not as converted:\n%s", lineDiff2(c.before.json, c.after.json, final.json))
	}
	if names, err := e2.Pending(); err != nil || len(names) > 0 {
		return bad("after the update, the journal still holds %v (%v)", names, err)
	}
	if msg := c.links(e2); msg != "" {
		return bad("after the update: %s", msg)
	}
	return ""
}

// links checks that every tree live before the run still has a live link,
// and that it resolves.
func (c *checker) links(e *migrate.Engine) string {
	for _, name := range c.live {
		if _, err := e.Live.Tree(name).Target(); err != nil {
			return fmt.Sprintf("the live link of tree %s: %v", name, err)
		}
	}
	return ""
}

// lineDiff2 shows got against the converted system, and against the
// system before where that is closer.
func lineDiff2(before, after, got string) string {
	d := lineDiff(after, got)
	if b := lineDiff(before, got); strings.Count(b, "\n") < strings.Count(d, "\n") {
		return "against the system before the run:\n" + strings.ReplaceAll(strings.ReplaceAll(b, "disk:  ", "want: "), "model: ", "got:  ")
	}
	return "against the converted system:\n" + strings.ReplaceAll(strings.ReplaceAll(d, "disk:  ", "want: "), "model: ", "got:  ")
}
