package cluster

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"sync"
	"sync/atomic"
	"time"

	"github.com/treeshift/treeshift/internal/durable"
)

// An agent acts for its member only while it holds the member's lease: a
// member cut off from etcd is declared down when its lease expires, and
// from then on the cluster decides without it (another agent may act for
// the member, a coordinator goes on without it, an operator may delete
// it). Its writes to etcd already compare the lease, so a stale agent
// writes nothing there; its writes to its own disk are fenced here. The
// agent renews the lease itself and knows, by its own clock, a time before
// which etcd cannot have expired it: the time it sent its last successful
// renewal, plus the TTL, less a margin. Past that time every write and sync
// of the member's engine fails — fencing by lease, not by hope. The engine
// then stops where it is, as if the process had crashed there: its
// journal, written before, lets the next run (the agent's, once it holds a
// lease again) finish or roll back the transition.

// errFenced is the error of a write refused by the fence.
var errFenced = errors.New("fenced: the agent's lease could not be renewed in time, and etcd may have expired it: the agent acts no more under it")

// fence knows until when an agent's lease is known to live. Times are
// time.Now's, compared on the monotonic clock: a step of the wall clock
// (NTP) moves no fence.
type fence struct {
	mu    sync.Mutex
	until time.Time
	// refused counts the calls refused.
	refused atomic.Int64
	// now is the clock (tests).
	now func() time.Time
}

func newFence() *fence { return &fence{now: time.Now} }

// renewed records a renewal sent at sent, granting ttl: the lease lives at
// least until sent+ttl on etcd's clock; the margin (a tenth) covers the
// two clocks' rates and the time between this process's check and its
// write.
func (f *fence) renewed(sent time.Time, ttl time.Duration) {
	t := sent.Add(ttl - ttl/10)
	f.mu.Lock()
	defer f.mu.Unlock()
	if t.After(f.until) {
		f.until = t
	}
}

// check fails once the lease may have expired.
func (f *fence) check() error {
	if f.left() > 0 {
		return nil
	}
	f.refused.Add(1)
	return errFenced
}

// left is how long the lease is still known to live.
func (f *fence) left() time.Duration {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.until.Sub(f.now())
}

// wrap is the member's file system behind the fence.
func (f *fence) wrap(fsys durable.FS) durable.FS { return &fencedFS{FS: fsys, f: f} }

// fencedFS refuses every change and sync once its fence is down; reads go
// through, so that an engine fenced mid-run still reports what it finds.
type fencedFS struct {
	durable.FS
	f *fence
}

func (x *fencedFS) do(op, p string, fn func() error) error {
	if err := x.f.check(); err != nil {
		return &fs.PathError{Op: op, Path: x.FS.Host(p), Err: err}
	}
	return fn()
}

func (x *fencedFS) Mkdir(p string, perm fs.FileMode) error {
	return x.do("mkdir", p, func() error { return x.FS.Mkdir(p, perm) })
}

func (x *fencedFS) Create(p string, data []byte, perm fs.FileMode) error {
	return x.do("create", p, func() error { return x.FS.Create(p, data, perm) })
}

func (x *fencedFS) Symlink(target, p string) error {
	return x.do("symlink", p, func() error { return x.FS.Symlink(target, p) })
}

func (x *fencedFS) Link(old, p string) error {
	return x.do("link", p, func() error { return x.FS.Link(old, p) })
}

func (x *fencedFS) Rename(old, p string) error {
	return x.do("rename", p, func() error { return x.FS.Rename(old, p) })
}

func (x *fencedFS) Remove(p string) error {
	return x.do("remove", p, func() error { return x.FS.Remove(p) })
}

func (x *fencedFS) RemoveAll(p string) error {
	return x.do("remove", p, func() error { return x.FS.RemoveAll(p) })
}

func (x *fencedFS) Chown(p string, uid, gid int) error {
	return x.do("chown", p, func() error { return x.FS.Chown(p, uid, gid) })
}

func (x *fencedFS) Chmod(p string, perm fs.FileMode) error {
	return x.do("chmod", p, func() error { return x.FS.Chmod(p, perm) })
}

func (x *fencedFS) WriteFile(p string, data []byte, perm fs.FileMode) error {
	return x.do("write", p, func() error { return x.FS.WriteFile(p, data, perm) })
}

func (x *fencedFS) WriteStream(p string, perm fs.FileMode, write func(w io.Writer) error) error {
	return x.do("write", p, func() error { return x.FS.WriteStream(p, perm, write) })
}

func (x *fencedFS) SwapSymlink(target, p string) error {
	return x.do("symlink", p, func() error { return x.FS.SwapSymlink(target, p) })
}

func (x *fencedFS) Fsync(p string) error {
	return x.do("fsync", p, func() error { return x.FS.Fsync(p) })
}

func (x *fencedFS) SyncDir(p string) error {
	return x.do("sync directory", p, func() error { return x.FS.SyncDir(p) })
}

func (x *fencedFS) SyncFS(p string) error {
	return x.do("sync filesystem of", p, func() error { return x.FS.SyncFS(p) })
}

// Build and CloneTree make whole trees of files in one call (the
// transition stages generations and private copies with them): behind a
// fence they are made a file at a time, each fenced, so that an engine
// whose fence falls in the middle of one writes nothing more, as with
// every other change. CreateStream writes one file.
func (x *fencedFS) Build(dir string, perm fs.FileMode, entries []durable.Entry) error {
	return durable.BuildEach(x, dir, perm, entries)
}

func (x *fencedFS) CloneTree(src, dst string) error { return durable.CloneEach(x, src, dst) }

func (x *fencedFS) CreateStream(p string, perm fs.FileMode, write func(w io.Writer) error) error {
	return x.do("create", p, func() error { return x.FS.CreateStream(p, perm, write) })
}

func (x *fencedFS) String() string { return fmt.Sprintf("fenced %v", x.FS) }
