package powerloss

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"strconv"
	"sync"
	"syscall"

	"github.com/treeshift/treeshift/internal/durable"
)

// A trace is the ordered file operations of one run, as the model sees
// them: units (changes that persist whole or not at all) and syncs (which
// make units durable). Every FS call is decomposed into the units and syncs
// it is made of on the host: an atomic write (renameio) is a new temporary
// file, its data, an fsync of it, and a rename over the old file; a link
// swap is a temporary directory, a link in it, a rename of the link over
// the old one, and the removal of the directory.

// unit is one change that persists whole or not at all.
type unit struct {
	// group is what one sync covers: 'e' with a directory (its entries),
	// 'd' with a file (its data and mode).
	group groupKey
	fs    int
	sets  []dent // entries made or replaced
	dels  []dent // entries removed
	data  *blob  // a file's new content (group 'd')
	perm  *fs.FileMode
	// dirs are the directories this unit gives a name to that already had
	// one: a crash state keeps every earlier change of their names with it,
	// so no directory ends up with two.
	dirs []ino
	// what says what the unit is, for reports: "rename /a/.b123 to /a/b".
	what string
	// event is the unit's index in the trace's events; synced the index of
	// the first sync that makes it durable, or -1.
	event, synced int
}

type groupKey struct {
	kind byte
	n    ino
}

type dent struct {
	dir  ino
	name string
	n    ino
}

// syncEvent is an fsync, a directory sync or a filesystem sync.
type syncEvent struct {
	kind string // "fsync", "syncdir", "syncfs"
	n    ino    // the file or directory synced
	fs   int
	what string
}

type event struct {
	unit *unit
	sync *syncEvent
}

// trace is the recorded operations of one run from a durable starting
// state.
type trace struct {
	files  *files
	base   *state
	events []event
	// Calls is the number of FS calls that changed something or synced;
	// Dropped the syncs left out of the trace (Config.Drop).
	Calls, Dropped int
	// baseN is the number of inodes the run started with: the others it
	// made.
	baseN int
}

// Units and Syncs count the trace's events.
func (t *trace) units() int {
	n := 0
	for _, e := range t.events {
		if e.unit != nil {
			n++
		}
	}
	return n
}

func (t *trace) syncs() int { return len(t.events) - t.units() }

// Sync describes a sync the recorder saw, for Config.Drop.
type Sync struct {
	// Kind is "fsync", "syncdir" or "syncfs"; Path is what was synced,
	// inside the root; Call the FS call it is part of: "fsync", "syncdir",
	// "syncfs", or "write" for the fsync of an atomic write's temporary
	// file.
	Kind, Path, Call string
	// N counts the syncs of the run, from 1.
	N int
}

// recorder is a durable.FS that does every operation on the FS it wraps and
// records it in a trace. It serializes the calls it is given, so the trace
// is one order the host saw them in; the engine is run with one worker, so
// that order is the same from run to run.
type recorder struct {
	inner durable.FS
	// Drop, if set, leaves the syncs it returns true for out of the trace:
	// the explorer then judges a run that never made them (the host still
	// does, which changes nothing about the trace).
	Drop func(Sync) bool

	mu    sync.Mutex
	vol   *state // the state the run sees
	trace *trace
	tmp   int // numbers temporary names
	syncs int
	err   error
}

// newRecorder returns a recorder of calls to inner, whose root holds
// base (a scan of it) with the files f.
func newRecorder(inner durable.FS, f *files, base *state) *recorder {
	return &recorder{inner: inner, vol: base.clone(), trace: &trace{files: f, base: base, baseN: len(f.inodes)}}
}

// Err is the first call the recorder could not model: the trace is then
// not the run's.
func (r *recorder) failure() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.err
}

func (r *recorder) fail(err error) {
	if r.err == nil {
		r.err = err
	}
}

func (r *recorder) emit(u *unit) {
	if len(u.sets) == 0 && len(u.dels) == 0 && u.data == nil && u.perm == nil {
		return
	}
	u.event, u.synced = len(r.trace.events), -1
	r.trace.events = append(r.trace.events, event{unit: u})
	// The run's own view moves on at once.
	for _, d := range u.dels {
		delete(r.vol.dir(d.dir), d.name)
	}
	for _, s := range u.sets {
		r.vol.dir(s.dir)[s.name] = s.n
	}
	if u.data != nil {
		r.vol.data[u.group.n] = u.data
	}
	if u.perm != nil {
		r.vol.perm[u.group.n] = *u.perm
	}
}

func (r *recorder) emitSync(kind, p, call string, n ino, fsys int) {
	r.syncs++
	if r.Drop != nil && r.Drop(Sync{Kind: kind, Path: p, Call: call, N: r.syncs}) {
		r.trace.Dropped++
		return
	}
	r.trace.events = append(r.trace.events, event{sync: &syncEvent{kind: kind, n: n, fs: fsys, what: kind + " " + p}})
}

func (r *recorder) newInode(p string, k kind, perm fs.FileMode, target string) ino {
	f := r.trace.files
	n := f.add(inode{kind: k, perm: perm.Perm() | perm&fs.ModeSticky, target: target, fs: f.fsOf(p), path: p})
	if k == kDir {
		r.vol.dirs[n] = map[string]ino{}
		r.vol.owned[n] = true
	}
	return n
}

// entry is a unit that changes directory d's entries.
func entry(d ino, fsys int, what string) *unit {
	return &unit{group: groupKey{'e', d}, fs: fsys, what: what}
}

// tmpName is a temporary name as renameio makes them: a dot, the name, and
// digits, which is what the sweeps of the next run look for.
func (r *recorder) tmpName(base string) string {
	r.tmp++
	return "." + base + strconv.Itoa(1000000000+r.tmp)
}

// Host and the reads pass through.

func (r *recorder) Host(p string) string                         { return r.inner.Host(p) }
func (r *recorder) Lstat(p string) (fs.FileInfo, error)          { return r.inner.Lstat(p) }
func (r *recorder) ReadFile(p string, max int64) ([]byte, error) { return r.inner.ReadFile(p, max) }
func (r *recorder) ReadDir(p string) ([]fs.DirEntry, error)      { return r.inner.ReadDir(p) }
func (r *recorder) Readlink(p string) (string, error)            { return r.inner.Readlink(p) }

// call runs do under the lock, counting it, and models it with model if it
// succeeded.
func (r *recorder) call(do func() error, model func() error) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := do(); err != nil {
		return err
	}
	r.trace.Calls++
	if err := model(); err != nil {
		r.fail(err)
	}
	return nil
}

func (r *recorder) Mkdir(p string, perm fs.FileMode) error {
	return r.call(func() error { return r.inner.Mkdir(p, perm) }, func() error {
		d, name, err := r.vol.parent(p)
		if err != nil {
			return err
		}
		u := entry(d, r.trace.files.inodes[d].fs, "mkdir "+p)
		u.sets = []dent{{d, name, r.newInode(p, kDir, perm, "")}}
		r.emit(u)
		return nil
	})
}

func (r *recorder) create(p string, data []byte, perm fs.FileMode, what string) error {
	d, name, err := r.vol.parent(p)
	if err != nil {
		return err
	}
	n := r.newInode(p, kFile, perm, "")
	u := entry(d, r.trace.files.inodes[d].fs, what+" "+p)
	u.sets = []dent{{d, name, n}}
	r.emit(u)
	r.emit(&unit{group: groupKey{'d', n}, fs: r.trace.files.inodes[n].fs, data: newBlob(bytes.Clone(data)),
		what: fmt.Sprintf("data of %s (%d bytes)", p, len(data))})
	return nil
}

func (r *recorder) Create(p string, data []byte, perm fs.FileMode) error {
	return r.call(func() error { return r.inner.Create(p, data, perm) }, func() error {
		return r.create(p, data, perm, "create")
	})
}

func (r *recorder) Symlink(target, p string) error {
	return r.call(func() error { return r.inner.Symlink(target, p) }, func() error {
		return r.symlink(target, p)
	})
}

func (r *recorder) symlink(target, p string) error {
	d, name, err := r.vol.parent(p)
	if err != nil {
		return err
	}
	u := entry(d, r.trace.files.inodes[d].fs, "symlink "+p+" -> "+target)
	u.sets = []dent{{d, name, r.newInode(p, kLink, 0o777, target)}}
	r.emit(u)
	return nil
}

// SameFS is the model's answer: the mounts of the configuration are
// filesystems of their own, whatever the host's are.
func (r *recorder) SameFS(a, b string) (bool, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	f := r.trace.files
	return f.fsOf(a) == f.fsOf(b), nil
}

// CreateStream is a create: a new entry, and its data, each a unit.
func (r *recorder) CreateStream(p string, perm fs.FileMode, write func(w io.Writer) error) error {
	var buf bytes.Buffer
	return r.call(func() error {
		return r.inner.CreateStream(p, perm, func(w io.Writer) error { return write(io.MultiWriter(w, &buf)) })
	}, func() error {
		return r.create(p, buf.Bytes(), perm, "create")
	})
}

// Build and CloneTree are recorded as the single operations they are made
// of, each directory and file a change of its own.
func (r *recorder) Build(dir string, perm fs.FileMode, entries []durable.Entry) error {
	return durable.BuildEach(r, dir, perm, entries)
}

func (r *recorder) CloneTree(src, dst string) error { return durable.CloneEach(r, src, dst) }

// Link fails with durable.ErrCrossDevice between two filesystems of the
// model, as the host would between two real ones: the caller copies.
func (r *recorder) Link(old, p string) error {
	r.mu.Lock()
	f := r.trace.files
	cross := f.fsOf(old) != f.fsOf(path.Dir(p))
	r.mu.Unlock()
	if cross {
		return &fs.PathError{Op: "link", Path: r.Host(p), Err: durable.ErrCrossDevice}
	}
	return r.call(func() error { return r.inner.Link(old, p) }, func() error {
		n, _, _, err := r.vol.lookup(old)
		if err != nil {
			return err
		}
		d, name, err := r.vol.parent(p)
		if err != nil {
			return err
		}
		u := entry(d, f.inodes[d].fs, "link "+p+" to "+old)
		u.sets = []dent{{d, name, n}}
		r.emit(u)
		return nil
	})
}

func (r *recorder) Rename(old, p string) error {
	r.mu.Lock()
	f := r.trace.files
	cross := f.fsOf(path.Dir(old)) != f.fsOf(path.Dir(p))
	r.mu.Unlock()
	if cross {
		return &fs.PathError{Op: "rename", Path: r.Host(old) + " to " + r.Host(p), Err: syscall.EXDEV}
	}
	return r.call(func() error { return r.inner.Rename(old, p) }, func() error {
		return r.rename(old, p, "rename "+old+" to "+p)
	})
}

// rename is one unit: a journaling filesystem logs a rename as one
// change of both directories, so it persists whole or not at all, and it is
// durable once the directory it renames into is synced.
func (r *recorder) rename(old, p, what string) error {
	n, od, oname, err := r.vol.lookup(old)
	if err != nil {
		return err
	}
	d, name, err := r.vol.parent(p)
	if err != nil {
		return err
	}
	u := entry(d, r.trace.files.inodes[d].fs, what)
	u.dels = []dent{{od, oname, n}}
	u.sets = []dent{{d, name, n}}
	if r.trace.files.inodes[n].kind == kDir {
		u.dirs = []ino{n}
	}
	r.emit(u)
	return nil
}

func (r *recorder) Remove(p string) error {
	return r.call(func() error { return r.inner.Remove(p) }, func() error {
		return r.remove(p, "remove "+p)
	})
}

func (r *recorder) remove(p, what string) error {
	n, d, name, err := r.vol.lookup(p)
	if err != nil {
		return err
	}
	u := entry(d, r.trace.files.inodes[d].fs, what)
	u.dels = []dent{{d, name, n}}
	r.emit(u)
	return nil
}

// RemoveAll is a removal of each directory's entries, deepest first, then
// of p: one unit a directory, as each is its own change on disk.
func (r *recorder) RemoveAll(p string) error {
	return r.call(func() error { return r.inner.RemoveAll(p) }, func() error {
		n, d, name, err := r.vol.lookup(p)
		if errors.Is(err, errNotFound) {
			return nil // nothing was there
		}
		if err != nil {
			return err
		}
		var empty func(q string, dir ino)
		empty = func(q string, dir ino) {
			entries := r.vol.dirs[dir]
			if len(entries) == 0 {
				return
			}
			u := entry(dir, r.trace.files.inodes[dir].fs, "remove the entries of "+q)
			for name, c := range entries {
				if r.trace.files.inodes[c].kind == kDir {
					empty(path.Join(q, name), c)
				}
				u.dels = append(u.dels, dent{dir, name, c})
			}
			r.emit(u)
		}
		if r.trace.files.inodes[n].kind == kDir {
			empty(p, n)
		}
		u := entry(d, r.trace.files.inodes[d].fs, "remove "+p)
		u.dels = []dent{{d, name, n}}
		r.emit(u)
		return nil
	})
}

// Chown changes nothing the model holds: every file of a crash state is
// made by the process that checks it.
func (r *recorder) Chown(p string, uid, gid int) error {
	return r.call(func() error { return r.inner.Chown(p, uid, gid) }, func() error { return nil })
}

func (r *recorder) Chmod(p string, perm fs.FileMode) error {
	return r.call(func() error { return r.inner.Chmod(p, perm) }, func() error {
		n, _, _, err := r.vol.lookup(p)
		if err != nil {
			return err
		}
		m := perm.Perm() | perm&fs.ModeSticky
		r.emit(&unit{group: groupKey{'d', n}, fs: r.trace.files.inodes[n].fs, perm: &m, what: fmt.Sprintf("chmod %04o %s", m, p)})
		return nil
	})
}

func (r *recorder) WriteFile(p string, data []byte, perm fs.FileMode) error {
	return r.WriteStream(p, perm, func(w io.Writer) error {
		_, err := w.Write(data)
		return err
	})
}

// WriteStream is renameio's atomic write: a temporary file beside p, its
// data, an fsync of it, and a rename over p.
func (r *recorder) WriteStream(p string, perm fs.FileMode, write func(w io.Writer) error) error {
	var buf bytes.Buffer
	return r.call(func() error {
		return r.inner.WriteStream(p, perm, func(w io.Writer) error { return write(io.MultiWriter(w, &buf)) })
	}, func() error {
		tmp := path.Join(path.Dir(p), r.tmpName(path.Base(p)))
		if err := r.create(tmp, buf.Bytes(), perm, "create (atomic write of "+path.Base(p)+")"); err != nil {
			return err
		}
		n, _, _, err := r.vol.lookup(tmp)
		if err != nil {
			return err
		}
		r.emitSync("fsync", tmp, "write", n, r.trace.files.inodes[n].fs)
		return r.rename(tmp, p, "rename "+tmp+" to "+p+" (atomic write)")
	})
}

// SwapSymlink is renameio's: a plain symlink when p does not exist; else a
// temporary directory beside p, the new link in it, a rename of the link
// over p, and the removal of the directory.
func (r *recorder) SwapSymlink(target, p string) error {
	r.mu.Lock()
	_, _, _, err := r.vol.lookup(p)
	exists := err == nil
	r.mu.Unlock()
	return r.call(func() error { return r.inner.SwapSymlink(target, p) }, func() error {
		if !exists {
			return r.symlink(target, p)
		}
		d, _, err := r.vol.parent(p)
		if err != nil {
			return err
		}
		tmp := path.Join(path.Dir(p), r.tmpName(path.Base(p)))
		u := entry(d, r.trace.files.inodes[d].fs, "mkdir "+tmp+" (link swap)")
		u.sets = []dent{{d, path.Base(tmp), r.newInode(tmp, kDir, 0o700, "")}}
		r.emit(u)
		if err := r.symlink(target, path.Join(tmp, "tmp.symlink")); err != nil {
			return err
		}
		if err := r.rename(path.Join(tmp, "tmp.symlink"), p, "rename "+tmp+"/tmp.symlink to "+p+" (link swap to "+target+")"); err != nil {
			return err
		}
		return r.remove(tmp, "remove "+tmp+" (link swap)")
	})
}

func (r *recorder) Fsync(p string) error {
	return r.call(func() error { return r.inner.Fsync(p) }, func() error {
		n, _, _, err := r.vol.lookup(p)
		if err != nil {
			return err
		}
		r.emitSync("fsync", p, "fsync", n, r.trace.files.inodes[n].fs)
		return nil
	})
}

func (r *recorder) SyncDir(p string) error {
	return r.call(func() error { return r.inner.SyncDir(p) }, func() error {
		n, _, _, err := r.vol.lookup(p)
		if err != nil {
			return err
		}
		r.emitSync("syncdir", p, "syncdir", n, r.trace.files.inodes[n].fs)
		return nil
	})
}

func (r *recorder) SyncFS(p string) error {
	return r.call(func() error { return r.inner.SyncFS(p) }, func() error {
		r.emitSync("syncfs", p, "syncfs", 0, r.trace.files.fsOf(p))
		return nil
	})
}

// OpenLock creates the lock file when asked to and it is missing: an empty
// file, its owner's only (mode 0600).
func (r *recorder) OpenLock(p string, create bool) (durable.LockFile, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	_, _, _, missing := r.vol.lookup(p)
	l, err := r.inner.OpenLock(p, create)
	if err == nil && create && errors.Is(missing, errNotFound) {
		r.trace.Calls++
		if err := r.create(p, nil, 0o600, "create"); err != nil {
			r.fail(err)
		}
	}
	return l, err
}

// finish computes, for every unit, the first sync that makes it durable.
func (t *trace) finish() {
	for i, e := range t.events {
		s := e.sync
		if s == nil {
			continue
		}
		for j := 0; j < i; j++ {
			u := t.events[j].unit
			if u == nil || u.synced >= 0 {
				continue
			}
			switch s.kind {
			case "syncfs":
				if u.fs == s.fs {
					u.synced = i
				}
			case "syncdir":
				if u.group == (groupKey{'e', s.n}) {
					u.synced = i
				}
			case "fsync":
				if u.group == (groupKey{'d', s.n}) {
					u.synced = i
				}
			}
		}
	}
}
