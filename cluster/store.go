package cluster

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/sys/unix"

	"github.com/natefinch/atomic"
)

// Store keeps the cluster record where every member can reach it. The
// embedded DirStore is a directory shared by the members; a distributed
// store implements the same three operations.
type Store interface {
	// Lock excludes other stage commands until the returned function runs.
	Lock(wait time.Duration) (unlock func(), err error)
	// Load returns the record; ErrNoCluster when there is none.
	Load() (*State, error)
	// Save replaces the record atomically and durably.
	Save(*State) error
	// SharedRoot is the root of the cluster-shared trees.
	SharedRoot() string
}

// ErrNoCluster is returned by Load when no cluster was initialized.
var ErrNoCluster = errors.New("no cluster record: run treeshift cluster init first")

// noCluster is ErrNoCluster for a Cluster, with the init command its user
// must run.
func (c *Cluster) noCluster(err error) error {
	if errors.Is(err, ErrNoCluster) {
		return fmt.Errorf("%w", &noClusterError{cmd: c.cmd("init", "--member", "ID=ROOT", "...")})
	}
	return err
}

type noClusterError struct{ cmd string }

func (e *noClusterError) Error() string        { return "no cluster record: run " + e.cmd + " first" }
func (e *noClusterError) Is(target error) bool { return target == ErrNoCluster }

// DirStore is a Store in a directory: cluster.json, a lock file, and the
// shared trees under shared/.
type DirStore struct{ Dir string }

func (d DirStore) path() string { return filepath.Join(d.Dir, "cluster.json") }

// SharedRoot is the --root of the cluster-shared trees.
func (d DirStore) SharedRoot() string { return filepath.Join(d.Dir, "shared") }

func (d DirStore) Lock(wait time.Duration) (func(), error) {
	if err := os.MkdirAll(d.Dir, 0o755); err != nil {
		return nil, err
	}
	p := filepath.Join(d.Dir, "lock")
	f, err := os.OpenFile(p, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", p, err)
	}
	deadline := time.Now().Add(wait)
	for unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB) != nil {
		if time.Now().After(deadline) {
			f.Close()
			return nil, fmt.Errorf("%s is held by another cluster command; gave up after %s", p, wait)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return func() { f.Close() }, nil
}

func (d DirStore) Load() (*State, error) {
	b, err := os.ReadFile(d.path())
	if errors.Is(err, fs.ErrNotExist) {
		return nil, ErrNoCluster
	}
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", d.path(), err)
	}
	var st State
	if err := json.Unmarshal(b, &st); err != nil {
		return nil, fmt.Errorf("%s: %v", d.path(), err)
	}
	if st.Schema != 1 {
		return nil, fmt.Errorf("%s: unknown schema %d", d.path(), st.Schema)
	}
	return &st, nil
}

func (d DirStore) Save(st *State) error {
	b, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(d.Dir, 0o755); err != nil {
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
