package durable

import (
	"fmt"
	"io"
	"io/fs"
	"sync"
)

// Faulty is an FS that makes one call fail, for tests of what a failed
// write, rename or sync leaves behind. Every call that changes something or
// syncs is counted; the Nth one returns Err — without doing its work, or,
// with After, after doing it (a rename done whose directory sync then
// failed looks like that to the caller). With Sticky, every call from the
// Nth on fails. Reads are passed through.
type Faulty struct {
	FS
	// N is the call to fail, from 1; 0 fails none and only counts.
	N     int
	Err   error
	After bool
	// Sticky fails every call from the Nth on, as a disk that filled up or
	// died would: the undo of what failed fails too.
	Sticky bool

	mu    sync.Mutex
	count int
	// Failed describes the first call that failed, once one has.
	Failed string
	// Calls lists the calls counted, each as its operation and path.
	Calls []string
}

// Count is the number of calls counted so far.
func (f *Faulty) Count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.count
}

// call counts a call and runs it, failing it if it is the Nth.
func (f *Faulty) call(op, p string, do func() error) error {
	f.mu.Lock()
	f.count++
	f.Calls = append(f.Calls, op+" "+p)
	fail := f.count == f.N || f.Sticky && f.N > 0 && f.count > f.N
	if fail && f.Failed == "" {
		f.Failed = op + " " + p
	}
	f.mu.Unlock()
	if !fail {
		return do()
	}
	if f.After {
		if err := do(); err != nil {
			return err
		}
	}
	return pathError(op, f.Host(p), f.Err)
}

func (f *Faulty) Mkdir(p string, perm fs.FileMode) error {
	return f.call("mkdir", p, func() error { return f.FS.Mkdir(p, perm) })
}

func (f *Faulty) Create(p string, data []byte, perm fs.FileMode) error {
	return f.call("create", p, func() error { return f.FS.Create(p, data, perm) })
}

func (f *Faulty) Symlink(target, p string) error {
	return f.call("symlink", p, func() error { return f.FS.Symlink(target, p) })
}

func (f *Faulty) Link(old, p string) error {
	return f.call("link", p, func() error { return f.FS.Link(old, p) })
}

func (f *Faulty) Rename(old, p string) error {
	return f.call("rename", p, func() error { return f.FS.Rename(old, p) })
}

func (f *Faulty) Remove(p string) error {
	return f.call("remove", p, func() error { return f.FS.Remove(p) })
}

func (f *Faulty) RemoveAll(p string) error {
	return f.call("remove", p, func() error { return f.FS.RemoveAll(p) })
}

func (f *Faulty) Chown(p string, uid, gid int) error {
	return f.call("chown", p, func() error { return f.FS.Chown(p, uid, gid) })
}

func (f *Faulty) Chmod(p string, perm fs.FileMode) error {
	return f.call("chmod", p, func() error { return f.FS.Chmod(p, perm) })
}

func (f *Faulty) WriteFile(p string, data []byte, perm fs.FileMode) error {
	return f.call("write", p, func() error { return f.FS.WriteFile(p, data, perm) })
}

func (f *Faulty) WriteStream(p string, perm fs.FileMode, write func(w io.Writer) error) error {
	return f.call("write", p, func() error { return f.FS.WriteStream(p, perm, write) })
}

func (f *Faulty) SwapSymlink(target, p string) error {
	return f.call("symlink", p, func() error { return f.FS.SwapSymlink(target, p) })
}

func (f *Faulty) Fsync(p string) error {
	return f.call("fsync", p, func() error { return f.FS.Fsync(p) })
}

func (f *Faulty) SyncDir(p string) error {
	return f.call("sync directory", p, func() error { return f.FS.SyncDir(p) })
}

func (f *Faulty) SyncFS(p string) error {
	return f.call("sync filesystem of", p, func() error { return f.FS.SyncFS(p) })
}

func (f *Faulty) String() string {
	return fmt.Sprintf("call %d fails with %v (after: %v, sticky: %v)", f.N, f.Err, f.After, f.Sticky)
}

func (f *Faulty) CreateStream(p string, perm fs.FileMode, write func(w io.Writer) error) error {
	return f.call("create", p, func() error { return f.FS.CreateStream(p, perm, write) })
}

// Build and CloneTree are made of single operations, each counted and
// failed on its own, as the real FS makes each entry in turn.
func (f *Faulty) Build(dir string, perm fs.FileMode, entries []Entry) error {
	return BuildEach(f, dir, perm, entries)
}

func (f *Faulty) CloneTree(src, dst string) error { return CloneEach(f, src, dst) }
