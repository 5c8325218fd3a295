package migrate

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/treeshift/treeshift/internal/durable"
	"github.com/treeshift/treeshift/internal/owner"
	"github.com/treeshift/treeshift/internal/suggest"
	"github.com/treeshift/treeshift/internal/supervisor"
	"github.com/treeshift/treeshift/internal/supervisor/s6"
	"github.com/treeshift/treeshift/livedb"
	"github.com/treeshift/treeshift/tree"
)

// Engine is one owner's system as the engine changes it: the trees in the
// system directory, their live parts, the supervisor backend, and the
// directives. Every change to a tree, a live link or the stamp is a method
// of Engine.
type Engine struct {
	Owner owner.Owner
	// FS is the file system every read and write goes through: the real
	// one, or an overlay that keeps a dry run's changes in memory.
	FS    durable.FS
	Store *tree.Store
	Live  livedb.Dir
	// LiveDir is the live directory inside the root (-l).
	LiveDir  string
	Backend  supervisor.Backend
	Registry *Registry
	// Suggest writes the commands messages tell the user to run.
	Suggest suggest.Prefix
	// DryRun: the FS is an overlay; nothing reaches the disk, and the
	// actions are printed as what a real run would do.
	DryRun bool
	// Report receives what the engine does (nil: nothing is reported).
	Report Reporter
	// Wait bounds how long the engine waits for another treeshift's lock.
	Wait time.Duration
	// Workers bounds how many trees a transition works on at once (default:
	// the number of CPUs Go may use).
	Workers int
	// watch, when set, notices outside writers during a transition.
	noWatch bool

	// defs is the root opened for reading service definitions.
	defsOnce sync.Once
	defs     *os.Root
	defsErr  error
}

// Reporter receives what an engine does.
type Reporter interface {
	// Action is a step of a change: traced by a real run, printed by a
	// dry run.
	Action(line string)
	// Note is a message at a verbosity level: 2 info, 3 tracing, 4 debug.
	Note(level int, format string, args ...any)
	// Warn is something the user should look at, though the command goes
	// on: shown from verbosity 2.
	Warn(msg string)
	// Waiting is told at once when the owner lock is held by another
	// process, and Got when the lock is then taken.
	Waiting(lock string, holder tree.Holder, wait time.Duration)
}

func (e *Engine) act(format string, args ...any) {
	if e.Report != nil {
		e.Report.Action(fmt.Sprintf(format, args...))
	}
}

func (e *Engine) warn(format string, args ...any) {
	if e.Report != nil {
		e.Report.Warn(fmt.Sprintf(format, args...))
	}
}

func (e *Engine) note(level int, format string, args ...any) {
	if e.Report != nil {
		e.Report.Note(level, format, args...)
	}
}

// Options open an engine.
type Options struct {
	// Live is the live directory inside the root (-l); default
	// owner.DefaultLive.
	Live string
	// Wait bounds the wait for the owner lock.
	Wait time.Duration
	// DryRun opens the engine on an overlay of the root.
	DryRun bool
	// Report receives what the engine does.
	Report Reporter
	// Registry holds the directives; default the shipped ones as the
	// root's files tighten them (Load).
	Registry *Registry
	// WrapFS, if set, wraps the file system the engine uses: for the
	// tests and the self-test, which record or fail its calls.
	WrapFS func(durable.FS) durable.FS
}

// UsageError is a request that cannot be carried out as asked: an unknown
// tree or service, a bad name, a definition or dependency error. The command
// line reports it with exit code 100.
type UsageError struct{ Err error }

func (e *UsageError) Error() string { return e.Err.Error() }
func (e *UsageError) Unwrap() error { return e.Err }

func usage(format string, args ...any) error {
	return &UsageError{Err: fmt.Errorf(format, args...)}
}

// ServiceTimeout bounds each wait for a supervised service to change state.
const ServiceTimeout = 10 * time.Second

// Open returns the engine of owner o. The root must exist as a directory;
// nothing is created until a change is made. The owner's part of the live
// directory is checked (livedb.Dir.Check) before anything is read from it.
func Open(o owner.Owner, opts Options) (*Engine, error) {
	live := opts.Live
	if live == "" {
		live = owner.DefaultLive
	}
	if !path.IsAbs(live) {
		return nil, usage("live directory %q is not an absolute path", live)
	}
	live = path.Clean(live)
	fi, err := os.Stat(o.Root)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil, usage("--root %s does not exist", o.Root)
	case err != nil:
		return nil, fmt.Errorf("--root %s: %w", o.Root, err)
	case !fi.IsDir():
		return nil, usage("--root %s is not a directory", o.Root)
	}
	sysDir := o.SystemDir()
	real, err := durable.NewOS(o.Root, sysDir, live)
	if err != nil {
		return nil, err
	}
	var fsys durable.FS = real
	if opts.WrapFS != nil {
		fsys = opts.WrapFS(fsys)
	}
	if opts.DryRun {
		fsys = durable.NewOverlay(fsys)
	}
	r := opts.Registry
	if r == nil {
		if r, err = Load(o.Root); err != nil {
			real.Close()
			return nil, err
		}
	}
	e := &Engine{
		Owner:    o,
		FS:       fsys,
		Store:    tree.Open(fsys, sysDir),
		Live:     livedb.Dir{FS: fsys, Path: live, UID: o.UID},
		LiveDir:  live,
		Backend:  supervisor.Files{},
		Registry: r,
		Suggest:  suggest.Prefix{Root: o.Root, Live: live},
		DryRun:   opts.DryRun,
		Report:   opts.Report,
		Wait:     opts.Wait,
	}
	e.Live.AreaHint = e.Suggest.Cmd("scandir", "create", "--owner", o.Name)
	// Whoever owns the root directory owns everything staged under it:
	// the live directory's shared parts may be theirs as well as root's.
	if uid, ok := durable.Owner(fi); ok && uid != 0 {
		e.Live.Trusted = []int{uid}
	}
	// An owner's live part that someone else controls is refused before
	// anything is read from it: its links and states could be anything.
	if err := e.Live.Check(); err != nil {
		return nil, err
	}
	name, err := e.Live.Backend()
	if err != nil {
		return nil, err
	}
	if name == "s6" {
		if err := s6.Check(); err != nil {
			return nil, err
		}
		e.Backend = &s6.Backend{Scan: fsys.Host(e.Live.ScanDir()), Timeout: ServiceTimeout, Suggest: e.Suggest}
	}
	if opts.DryRun {
		// The overlay keeps a dry run's files in memory; the supervisor's
		// processes are kept there by this.
		e.Backend = &supervisor.Dry{Backend: e.Backend}
	}
	return e, nil
}

// Lock takes the owner lock for a command, waiting up to e.Wait and
// reporting the wait. A dry run takes it too, so that what it reports is
// not changing under it, but creates nothing.
func (e *Engine) Lock() (unlock func(), err error) { return e.lock(false, nil) }

// LockTrees takes the owner lock for a command that changes the trees
// names, refusing while an unfinished update holds one of them; with no
// names, while an unfinished update holds any tree. The other trees stay
// usable: one tree stuck in the journal wedges no other. It is checked
// with the lock held, since an update may be interrupted while this
// command waits.
func (e *Engine) LockTrees(names ...string) (unlock func(), err error) { return e.lock(true, names) }

// lockApply takes the owner lock for an apply or an update, which finish
// an interrupted apply rather than being refused by it.
func (e *Engine) lockApply() (unlock func(), err error) { return e.lock(true, nil, true) }

func (e *Engine) lock(gate bool, names []string, applying ...bool) (unlock func(), err error) {
	start := time.Now()
	waited := false
	l, err := e.Store.Lock(e.Wait, !e.DryRun, func(h tree.Holder) {
		waited = true
		if e.Report != nil {
			e.Report.Waiting(e.Store.LockPath(), h, e.Wait)
		}
	})
	if err != nil {
		return nil, err
	}
	if waited {
		e.note(2, "got the owner lock after %s", time.Since(start).Round(10*time.Millisecond))
	}
	e.note(4, "holding the owner lock %s", e.Store.LockPath())
	unlock = func() { l.Unlock() }
	if p := e.StampProblem(); p != "" {
		unlock()
		return nil, errors.New(p)
	}
	if !gate {
		return unlock, nil
	}
	// An update removes its journal unsynced (docs/DURABILITY.md): a
	// power loss could bring it back, and it would then be finished again
	// over the change this command makes. Synced here, it cannot.
	if err := e.Store.SyncJournals(); err != nil {
		unlock()
		return nil, err
	}
	pending, err := e.Pending()
	if err != nil {
		unlock()
		return nil, err
	}
	var held []string
	for _, p := range pending {
		if len(names) == 0 || slices.Contains(names, p) {
			held = append(held, p)
		}
	}
	if len(held) > 0 {
		unlock()
		return nil, &InterruptedError{Trees: held, Cmd: e.Suggest.Cmd("update")}
	}
	if len(applying) == 0 {
		// An apply changes any tree: until it is finished, none is
		// changed by anything else.
		if j, _, err := e.readApplyJournal(); err != nil || j != nil {
			unlock()
			if err != nil {
				return nil, err
			}
			return nil, &InterruptedApplyError{File: j.File, Cmd: e.Suggest.Cmd("apply", "--resume")}
		}
	}
	return unlock, nil
}

// InterruptedApplyError refuses a change while an apply is unfinished.
type InterruptedApplyError struct {
	File string
	Cmd  string
}

func (e *InterruptedApplyError) Error() string {
	return fmt.Sprintf("the apply of %s was interrupted: run %s first", e.File, e.Cmd)
}

// InterruptedError refuses a change while an update is unfinished.
type InterruptedError struct {
	Trees []string
	Cmd   string
}

func (e *InterruptedError) Error() string {
	return fmt.Sprintf("the update of tree(s) %s was interrupted: run %s first", strings.Join(e.Trees, " "), e.Cmd)
}

// StampProblem says what is wrong with the owner's format stamp, or "": a
// stamp of a format this treeshift does not know was written by a newer
// one, whose trees this one must not touch (nor "fix" the stamp back); a
// state file that cannot be read is refused likewise.
func (e *Engine) StampProblem() string {
	st, err := e.Store.ReadState()
	if err != nil {
		// A state file that cannot be read says nothing of the format
		// the trees are in: no change is made on a guess.
		return err.Error()
	}
	if st.Stamp == 0 || e.Registry.Version(st.Stamp) != nil {
		return ""
	}
	return fmt.Sprintf("%s: format stamp %d is not a format this treeshift knows (newest %d): a newer treeshift wrote it, and only it may change these trees",
		e.Host(e.Store.StatePath()), st.Stamp, e.Registry.Newest())
}

// Warning returns the warning a command that only reads gives while an
// update is unfinished, or "".
func (e *Engine) Warning() string {
	if p := e.StampProblem(); p != "" {
		return p
	}
	if names, _ := e.Pending(); len(names) > 0 {
		return fmt.Sprintf("the update of tree(s) %s was interrupted: run %s", strings.Join(names, " "), e.Suggest.Cmd("update"))
	}
	if j, _, _ := e.readApplyJournal(); j != nil {
		return fmt.Sprintf("the apply of %s was interrupted: run %s", j.File, e.Suggest.Cmd("apply", "--resume"))
	}
	return ""
}

// Host is p's path on the host.
func (e *Engine) Host(p string) string { return e.FS.Host(p) }
