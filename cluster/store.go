package cluster

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/natefinch/atomic"
	"golang.org/x/sys/unix"

	"github.com/treeshift/treeshift/migrate"
)

// Store keeps the cluster record where every member and operator can reach
// it: DirStore, a directory on one host, or EtcdStore. Every change is a
// compare-and-swap against the revision it was read at, so two writers on
// different hosts never lose each other's update.
type Store interface {
	// Load returns the record and the revision it was read at;
	// ErrNoCluster when there is none.
	Load(ctx context.Context) (*State, Rev, error)
	// Commit replaces the record read at rev (the zero Rev: there was
	// none) by st and appends the stage records add, in one atomic,
	// durable write — unless the record changed since: then ErrConflict
	// and nothing is written. With narrow, only changes to the parts st
	// changes conflict (etcd: a member's own key; a directory store
	// compares the whole record always).
	Commit(ctx context.Context, st *State, rev Rev, add []Record, narrow bool) error
	// Records returns every stage record, oldest first.
	Records(ctx context.Context) ([]Record, error)
	// Lock excludes other long stage commands, on any host, until the
	// returned function runs; it gives up after wait.
	Lock(ctx context.Context, wait time.Duration) (unlock func(), err error)
	// PutConfig stores a cluster configuration document under its id;
	// GetConfig reads it back (every member's agent, when it rolls).
	PutConfig(ctx context.Context, id string, doc []byte) error
	GetConfig(ctx context.Context, id string) ([]byte, error)
	// String names the store in messages.
	String() string
	Close() error
}

// ErrNoCluster is returned by Load when no cluster was initialized.
var ErrNoCluster = errors.New("no cluster record: run treeshift cluster init first")

// ErrConflict is returned by Commit when the record changed since it was
// read.
var ErrConflict = errors.New("the cluster record changed since it was read")

// Rev is the revision a record was read at: the directory store's
// revision of its file, or etcd's mod revision of each key the record is
// made of, with what each held.
type Rev struct {
	File  int64
	parts map[string]part
}

type part struct {
	rev   int64
	value []byte
}

// Open opens the store named by spec: etcd://HOST:PORT[,HOST:PORT...][/PREFIX]
// or a directory.
func Open(spec string) (Store, error) {
	if strings.HasPrefix(spec, "etcd://") {
		return OpenEtcd(spec)
	}
	if strings.Contains(spec, "://") {
		return nil, &migrate.UsageError{Err: fmt.Errorf("--store %s: expected a directory or etcd://HOST:PORT[,HOST:PORT...][/PREFIX]", spec)}
	}
	abs, err := filepath.Abs(spec)
	if err != nil {
		return nil, err
	}
	return &DirStore{Dir: abs}, nil
}

// noCluster is ErrNoCluster for a Cluster, with the init command its user
// must run.
func (c *Cluster) noCluster(err error) error {
	if errors.Is(err, ErrNoCluster) {
		return fmt.Errorf("%w", &noClusterError{cmd: c.cmd("init", "--member", c.memberSyntax(), "...")})
	}
	return err
}

func (c *Cluster) memberSyntax() string {
	if _, ok := c.Store.(*DirStore); ok {
		return "ID=ROOT"
	}
	return "ID"
}

type noClusterError struct{ cmd string }

func (e *noClusterError) Error() string        { return "no cluster record: run " + e.cmd + " first" }
func (e *noClusterError) Is(target error) bool { return target == ErrNoCluster }

// load reads the record, naming the command that makes one when there is
// none.
func (c *Cluster) load(ctx context.Context) (*State, Rev, error) {
	st, rev, err := c.Store.Load(ctx)
	return st, rev, c.noCluster(err)
}

// tx is one change of the record: the record as read, and the stage
// records the change appends.
type tx struct {
	st  *State
	w   Writer
	add []Record
	// narrow: the change depends only on the parts it writes (see
	// Store.Commit).
	narrow bool
	op     *opRun
}

func (t *tx) rec(stage, event, member string) *Record {
	r := t.st.record(t.w, stage, event, member)
	if t.op != nil {
		r.Op, r.Coordinator = t.op.id, t.op.via
	}
	t.add = append(t.add, r)
	return &t.add[len(t.add)-1]
}

// opRun is the stage operation a coordinator carries out (etcd): what it
// writes is filed under the operation and in the name of who asked for it
// (the operator's user and host), and says which agent coordinated.
type opRun struct {
	id        string
	requested Writer
	via       string
}

// writer is who a change made for o is made by: the operator who asked
// for the operation, now; without an operation, this process.
func (o *opRun) writer() Writer {
	if o == nil {
		return writer()
	}
	w := o.requested
	w.Time = time.Now().UTC()
	return w
}

func (o *opRun) ID() string {
	if o == nil {
		return ""
	}
	return o.id
}

// change reads the record, lets fn change it, and commits the change if
// nobody wrote the record in between; otherwise it reads it again and
// calls fn again, so fn decides on what is there, never on a stale copy.
// fn returning an error commits nothing.
func change(ctx context.Context, s Store, op *opRun, fn func(t *tx) error) (*State, error) {
	for {
		st, rev, err := s.Load(ctx)
		if err != nil {
			return nil, err
		}
		t := &tx{st: st, w: op.writer(), op: op}
		if err := fn(t); err != nil {
			return st, err
		}
		if !t.narrow {
			// A member's own change leaves the cluster's part alone.
			st.Written = t.w
		}
		err = s.Commit(ctx, st, rev, t.add, t.narrow)
		if errors.Is(err, ErrConflict) {
			continue
		}
		return st, err
	}
}

func (c *Cluster) change(ctx context.Context, fn func(t *tx) error) (*State, error) {
	st, err := change(ctx, c.Store, c.op, fn)
	return st, c.noCluster(err)
}

// DirStore is a Store in a directory of one host: cluster.json (the record
// with its revision and the stage records), written atomically and durably,
// a lock file for long stages and another held only while a change is
// compared and written.
type DirStore struct{ Dir string }

func (d *DirStore) String() string { return d.Dir }
func (d *DirStore) Close() error   { return nil }

func (d *DirStore) path() string { return filepath.Join(d.Dir, "cluster.json") }

// dirFile is cluster.json.
type dirFile struct {
	State
	Revision int64    `json:"revision"`
	Records  []Record `json:"records"`
}

// flock takes an exclusive lock on DIR/name, waiting up to wait.
func (d *DirStore) flock(ctx context.Context, name string, wait time.Duration) (func(), error) {
	if _, err := d.safeDir(d.Dir, true); err != nil {
		return nil, err
	}
	p := filepath.Join(d.Dir, name)
	f, err := openFile(p, os.O_RDWR|os.O_CREATE)
	if err != nil {
		return nil, err
	}
	deadline := time.Now().Add(wait)
	for unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB) != nil {
		if time.Now().After(deadline) || ctx.Err() != nil {
			f.Close()
			return nil, fmt.Errorf("%s is held by another cluster command; gave up after %s", p, wait)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return func() { f.Close() }, nil
}

func (d *DirStore) Lock(ctx context.Context, wait time.Duration) (func(), error) {
	return d.flock(ctx, "lock", wait)
}

func (d *DirStore) read() (*dirFile, error) {
	exists, err := d.safeDir(d.Dir, false)
	if err != nil {
		return nil, err
	}
	if !exists {
		return nil, ErrNoCluster
	}
	b, err := readFile(d.path())
	if errors.Is(err, fs.ErrNotExist) {
		return nil, ErrNoCluster
	}
	if err != nil {
		return nil, err
	}
	var f dirFile
	if err := json.Unmarshal(b, &f); err != nil {
		return nil, fmt.Errorf("%s: %v", d.path(), err)
	}
	if f.Schema != 1 && f.Schema != Schema {
		return nil, fmt.Errorf("%s: unknown schema %d", d.path(), f.Schema)
	}
	if f.Schema == 1 {
		// Version 1 numbered nothing: its records are numbered in order.
		for i := range f.Records {
			f.Records[i].Seq = i + 1
		}
		f.Schema = Schema
	}
	if err := f.State.check(); err != nil {
		return nil, fmt.Errorf("%s: %v", d.path(), err)
	}
	// Two paths to one directory, edited in: one root is one member.
	if err := checkRoots(f.Members); err != nil {
		return nil, fmt.Errorf("%s: %v", d.path(), err)
	}
	return &f, nil
}

func (d *DirStore) Load(ctx context.Context) (*State, Rev, error) {
	f, err := d.read()
	if err != nil {
		return nil, Rev{}, err
	}
	return &f.State, Rev{File: f.Revision}, nil
}

func (d *DirStore) Records(ctx context.Context) ([]Record, error) {
	f, err := d.read()
	if err != nil {
		return nil, err
	}
	return f.Records, nil
}

func (d *DirStore) Commit(ctx context.Context, st *State, r Rev, add []Record, narrow bool) error {
	rev := r.File
	unlock, err := d.flock(ctx, "commit.lock", time.Minute)
	if err != nil {
		return err
	}
	defer unlock()
	f, err := d.read()
	switch {
	case errors.Is(err, ErrNoCluster):
		if rev != 0 {
			return ErrConflict
		}
		f = &dirFile{}
	case err != nil:
		return err
	case f.Revision != rev:
		return ErrConflict
	}
	n := len(f.Records)
	for i := range add {
		add[i].Seq = n + i + 1
	}
	out := dirFile{State: *st, Revision: rev + 1, Records: append(f.Records, add...)}
	if out.Records == nil {
		out.Records = []Record{}
	}
	b, err := json.MarshalIndent(out, "", "  ")
	if err != nil {
		return err
	}
	// The store is a directory of the operator's choosing, not one of
	// treeshift's own: natefinch/atomic writes the record (a temporary
	// file, fsynced, renamed over it), and the directory is synced so the
	// rename survives a crash.
	if err := atomic.WriteFile(d.path(), bytes.NewReader(append(b, '\n'))); err != nil {
		return fmt.Errorf("write %s: %w", d.path(), err)
	}
	dir, err := os.Open(d.Dir)
	if err != nil {
		return err
	}
	defer dir.Close()
	return dir.Sync()
}

func (d *DirStore) configPath(id string) string { return filepath.Join(d.Dir, "configs", id+".json") }

func (d *DirStore) PutConfig(ctx context.Context, id string, doc []byte) error {
	if _, err := d.safeDir(d.Dir, true); err != nil {
		return err
	}
	if _, err := d.safeDir(filepath.Dir(d.configPath(id)), true); err != nil {
		return err
	}
	if err := atomic.WriteFile(d.configPath(id), bytes.NewReader(doc)); err != nil {
		return fmt.Errorf("write %s: %w", d.configPath(id), err)
	}
	dir, err := os.Open(filepath.Dir(d.configPath(id)))
	if err != nil {
		return err
	}
	defer dir.Close()
	return dir.Sync()
}

func (d *DirStore) GetConfig(ctx context.Context, id string) ([]byte, error) {
	if _, err := d.safeDir(d.Dir, false); err != nil {
		return nil, err
	}
	if _, err := d.safeDir(filepath.Dir(d.configPath(id)), false); err != nil {
		return nil, err
	}
	b, err := readFile(d.configPath(id))
	if err != nil {
		return nil, fmt.Errorf("configuration %s: %w", id, err)
	}
	return b, nil
}
