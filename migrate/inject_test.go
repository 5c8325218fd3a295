package migrate_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/treeshift/treeshift/internal/durable"
	"github.com/treeshift/treeshift/internal/owner"
	"github.com/treeshift/treeshift/migrate"
	"github.com/treeshift/treeshift/tree"
)

// Error injection: every call of a full update that writes, renames,
// removes or syncs is made to fail in turn, with EIO, ENOSPC and EACCES,
// before doing its work, after doing it, and from then on (a disk that
// stays full or dead). Each time the update must fail naming the path of
// the call, leave every live link resolving and the system as it was, as
// converted, or recoverable (its journal open), and the next update, the
// disk healed, must convert it.

// nosync skips syncs: an injected run is never crashed, so what it writes
// need not be durable, and thousands of runs need not wait for the disk.
type nosync struct{ durable.FS }

func (nosync) Fsync(string) error   { return nil }
func (nosync) SyncDir(string) error { return nil }
func (nosync) SyncFS(string) error  { return nil }

func openAt(t *testing.T, root string, f *durable.Faulty) *migrate.Engine {
	t.Helper()
	o, err := owner.ForUID(0, root, func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	e, err := migrate.Open(o, migrate.Options{WrapFS: func(fs durable.FS) durable.FS {
		if f == nil {
			return nosync{fs}
		}
		f.FS = nosync{fs}
		return f
	}})
	if err != nil {
		t.Fatal(err)
	}
	e.Workers = 1 // the calls come in the same order every run
	return e
}

func statusOf(t *testing.T, e *migrate.Engine) *migrate.Status {
	t.Helper()
	st, err := e.Status(nil)
	if err != nil {
		t.Fatalf("status: %v", err)
	}
	return st
}

func statusJSON(t *testing.T, e *migrate.Engine) string {
	t.Helper()
	b, _ := json.MarshalIndent(statusOf(t, e), "", " ")
	return string(b)
}

// eachAsBeforeOrAfter reports whether every tree of got is exactly as in
// before or exactly as in after (a run moves the trees it can and leaves
// the others as they were), and its stamp moved only if every tree did.
// It returns what is wrong, or "".
func eachAsBeforeOrAfter(before, after, got *migrate.Status) string {
	js := func(v any) string { b, _ := json.Marshal(v); return string(b) }
	if len(got.Trees) != len(before.Trees) {
		return fmt.Sprintf("%d trees, %d before", len(got.Trees), len(before.Trees))
	}
	moved := 0
	for i, tr := range got.Trees {
		switch js(tr) {
		case js(before.Trees[i]):
		case js(after.Trees[i]):
			moved++
		default:
			return fmt.Sprintf("tree %s is neither as before nor converted: %s", tr.Name, js(tr))
		}
	}
	rest := *got
	rest.Trees, rest.Stamp = nil, 0
	b, a := *before, *after
	b.Trees, b.Stamp, a.Trees, a.Stamp = nil, 0, nil, 0
	switch {
	case js(rest) != js(b) || js(b) != js(a):
		return fmt.Sprintf("the system's own status changed: %s", js(rest))
	case got.Stamp == after.Stamp && moved < len(got.Trees) && after.Stamp != before.Stamp:
		return fmt.Sprintf("the stamp moved to %d with %d of %d trees converted", got.Stamp, moved, len(got.Trees))
	case got.Stamp != before.Stamp && got.Stamp != after.Stamp:
		return fmt.Sprintf("stamp %d", got.Stamp)
	}
	return ""
}

// injection is one injected failure: call n fails with err, in a mode.
type injection struct {
	n    int
	err  syscall.Errno
	mode string // "before", "after", "sticky"
	// want is a part of the message the run must give, if set.
	want string
}

func (in injection) faulty() *durable.Faulty {
	return &durable.Faulty{N: in.n, Err: in.err, After: in.mode == "after", Sticky: in.mode == "sticky"}
}

// injections lists the runs to make, given the calls of a full update: all
// of them with TREESHIFT_CRASH_ALL (make crash); otherwise a sample that
// takes every 16th call and the calls whose failure takes the run down each
// path of its error handling — a barrier failing (abort), a barrier failing
// with the disk staying broken (abort, and the rollback fails: the journal
// is kept), the commit of the journal failing (abort after the swaps), a
// removal during cleanup failing (committed, cleanup failed), a link swap
// failing with the disk staying broken (the undo fails too).
func injections(calls []string) []injection {
	errs := []syscall.Errno{syscall.EIO, syscall.ENOSPC, syscall.EACCES}
	modes := []string{"before", "after", "sticky"}
	var out []injection
	if os.Getenv("TREESHIFT_CRASH_ALL") != "" {
		for n := range calls {
			for _, err := range errs {
				for _, m := range modes {
					out = append(out, injection{n + 1, err, m, ""})
				}
			}
		}
		return out
	}
	for n := 1; n <= len(calls); n += 16 {
		out = append(out, injection{n, errs[n%3], modes[n%2], ""})
	}
	nth := func(prefix string, i int, err syscall.Errno, mode, want string) {
		for n, c := range calls {
			if strings.HasPrefix(c, prefix) {
				if i--; i == 0 {
					out = append(out, injection{n + 1, err, mode, want})
					return
				}
			}
		}
		panic("no call " + prefix)
	}
	nth("sync filesystem of /var/lib/treeshift", 1, syscall.EIO, "before", "")
	nth("sync filesystem of /var/lib/treeshift", 2, syscall.EIO, "sticky", "(the journal is kept: run treeshift --root ")
	nth("rename /var/lib/treeshift/journal/update.committed", 1, syscall.ENOSPC, "before", "")
	// The trash refusing an entry: it is removed in place instead.
	nth("rename /var/lib/treeshift/trash/", 1, syscall.EACCES, "before", "")
	// And that failing too: committed, cleanup failed.
	nth("rename /var/lib/treeshift/trash/", 1, syscall.EACCES, "sticky", "transition committed, cleanup failed: ")
	nth("symlink /run/treeshift/tree/0/boot/compiled", 1, syscall.EIO, "sticky", "undo \"update ")
	return out
}

func TestInjectedErrorsAtEveryCall(t *testing.T) {
	staged := stageRoot(t)
	before := statusOf(t, openAt(t, staged, nil))

	count := &durable.Faulty{}
	probe := copyRoot(t, staged)
	if _, err := openAt(t, probe, count).Update(nil, 3); err != nil {
		t.Fatal(err)
	}
	afterSt := statusOf(t, openAt(t, probe, nil))
	after := statusJSON(t, openAt(t, probe, nil))
	calls := count.Calls
	if len(calls) < 50 {
		t.Fatalf("a full update makes only %d calls:\n%s", len(calls), strings.Join(calls, "\n"))
	}

	list := injections(calls)
	outcomes := map[string]int{}
	for _, in := range list {
		root := copyRoot(t, staged)
		f := in.faulty()
		what := fmt.Sprintf("call %d of %d (%s) failing with %v, %s", in.n, len(calls), calls[in.n-1], in.err, in.mode)
		report, err := openAt(t, root, f).Update(nil, 3)
		if f.Failed == "" {
			t.Fatalf("%s: the call was not made", what)
		}
		// What the run says: its error and each tree's.
		said := ""
		if err != nil {
			said = err.Error()
		}
		if report != nil {
			for _, r := range report.Trees {
				said += "\n" + r.Error + r.Cleanup
				if r.Cleanup != "" && r.Outcome != migrate.Updated {
					t.Fatalf("%s: tree %s is reported %s, though its transition committed (%s)", what, r.Tree, r.Outcome, r.Cleanup)
				}
			}
		}
		host := root + f.Failed[strings.LastIndex(f.Failed, " /")+1:]
		e := openAt(t, root, nil)
		pending, perr := e.Pending()
		if perr != nil {
			t.Fatalf("%s: the journal left does not read: %v", what, perr)
		}
		switch {
		case err == nil:
			// The failed call was one whose failure the run does not need
			// to stop for; it must have converted everything regardless.
			if got := statusJSON(t, e); got != after || len(pending) > 0 {
				t.Fatalf("%s: the run succeeded but left the system unconverted (journal %v):\n%s", what, pending, got)
			}
			outcomes["tolerated"]++
		case !strings.Contains(said, in.err.Error()),
			// With the disk staying broken, what the run reports may be a
			// later call's failure (a fallback's): it names its own path.
			!strings.Contains(said, host) && !(in.mode == "sticky" && strings.Contains(said, root+"/")):
			t.Fatalf("%s: the error does not name %s and %q:\n%s", what, host, in.err.Error(), said)
		case errors.As(err, new(*migrate.UsageError)):
			t.Fatalf("%s: reported as a usage error (exit 100), not a failure (111): %v", what, err)
		case !strings.Contains(said, in.want):
			t.Fatalf("%s: the error does not say %q:\n%s", what, in.want, said)
		}
		checkLinks(t, root, what)
		if err != nil {
			if len(pending) > 0 {
				outcomes["journal open"]++
			} else if msg := eachAsBeforeOrAfter(before, afterSt, statusOf(t, e)); msg != "" {
				t.Fatalf("%s: no journal, and %s", what, msg)
			} else {
				outcomes["each tree as before or converted"]++
			}
		}
		// The disk healed, the next update converts everything.
		if _, err := openAt(t, root, nil).Update(nil, 3); err != nil {
			t.Fatalf("%s: the next update: %v", what, err)
		}
		e = openAt(t, root, nil)
		if got := statusJSON(t, e); got != after {
			t.Fatalf("%s: after the next update the system is not converted:\n%s", what, got)
		}
		if pending, _ := e.Pending(); len(pending) > 0 {
			t.Fatalf("%s: the next update left the journal open: %v", what, pending)
		}
		checkLinks(t, root, what+", then a good update")
	}
	t.Logf("%d calls in a full update; %d injected failures: %v", len(calls), len(list), outcomes)
}

// failTrash fails every removal of the trash, as an entry made immutable
// there would.
type failTrash struct{ durable.FS }

func (f failTrash) RemoveAll(p string) error {
	if strings.HasSuffix(p, "/trash") {
		return &fs.PathError{Op: "remove", Path: f.Host(p), Err: syscall.EPERM}
	}
	return f.FS.RemoveAll(p)
}

// A trash that cannot be emptied holds no tree: nothing in it is used, so
// the run warns and goes on, every tree moves (updated, not failed), and
// no journal is left for other commands to stop at.
func TestTrashThatCannotBeEmptiedHoldsNothing(t *testing.T) {
	root := stageRoot(t)
	if _, err := openAt(t, root, nil).Update(nil, 2); err != nil {
		t.Fatal(err)
	}
	o, err := owner.ForUID(0, root, func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	rep := &recorder{}
	e, err := migrate.Open(o, migrate.Options{Report: rep, WrapFS: func(fs durable.FS) durable.FS { return failTrash{fs} }})
	if err != nil {
		t.Fatal(err)
	}
	report, err := e.Update(nil, 3)
	if err != nil {
		t.Fatalf("update with a trash that cannot be emptied: %v", err)
	}
	for _, r := range report.Trees {
		if r.Outcome != migrate.Updated || r.Cleanup != "" {
			t.Errorf("tree %s: %s %s", r.Tree, r.Outcome, r.Cleanup)
		}
	}
	if !strings.Contains(strings.Join(rep.warnings, "\n"), "/var/lib/treeshift/trash could not be emptied (") {
		t.Errorf("no warning about the trash: %q", rep.warnings)
	}
	if pending, err := openAt(t, root, nil).Pending(); err != nil || len(pending) > 0 {
		t.Fatalf("journal left: %v %v", pending, err)
	}
	// Emptied by the next change once removal works again.
	if _, err := openAt(t, root, nil).Update(nil, 3); err != nil {
		t.Fatal(err)
	}
}

// recorder keeps an engine's warnings.
type recorder struct {
	mu       sync.Mutex
	warnings []string
}

func (r *recorder) Action(string)                              {}
func (r *recorder) Note(int, string, ...any)                   {}
func (r *recorder) Waiting(string, tree.Holder, time.Duration) {}
func (r *recorder) Warn(msg string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.warnings = append(r.warnings, msg)
}

// noTrash refuses every entry into the trash, as a trash made immutable
// would.
type noTrash struct{ durable.FS }

func (f noTrash) Rename(old, p string) error {
	if strings.Contains(p, "/trash/") {
		return &fs.PathError{Op: "rename", Path: f.Host(p), Err: syscall.EPERM}
	}
	return f.FS.Rename(old, p)
}

// A trash that takes nothing holds no tree either: what would go there is
// removed in place, every tree moves, and no journal is left.
func TestTrashThatTakesNothingHoldsNothing(t *testing.T) {
	root := stageRoot(t)
	o, err := owner.ForUID(0, root, func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	e, err := migrate.Open(o, migrate.Options{WrapFS: func(fs durable.FS) durable.FS { return noTrash{fs} }})
	if err != nil {
		t.Fatal(err)
	}
	report, err := e.Update(nil, 3)
	if err != nil {
		t.Fatalf("update with a trash that takes nothing: %v", err)
	}
	for _, r := range report.Trees {
		if r.Outcome != migrate.Updated || r.Cleanup != "" {
			t.Errorf("tree %s: %s %s", r.Tree, r.Outcome, r.Cleanup)
		}
	}
	if pending, err := openAt(t, root, nil).Pending(); err != nil || len(pending) > 0 {
		t.Fatalf("journal left: %v %v", pending, err)
	}
	gens, _ := filepath.Glob(filepath.Join(root, "var/lib/treeshift/tree/.*.1"))
	if len(gens) > 0 {
		t.Errorf("old generations left: %v", gens)
	}
}
