package tree

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/treeshift/treeshift/internal/durable"
	"golang.org/x/sys/unix"
)

// Lock is the owner lock: one treeshift at a time changes an owner's trees.
// It is an flock on a file in the system directory, so the kernel releases
// it when its holder dies, however it dies.
type Lock struct{ f *os.File }

// BusyError reports that another process held the lock for the whole wait.
type BusyError struct {
	Path   string
	Holder string // the holder's pid as it wrote it, or "unknown"
	Waited time.Duration
}

func (e *BusyError) Error() string {
	return fmt.Sprintf("%s is held by pid %s; gave up after waiting %s", e.Path, e.Holder, e.Waited)
}

// Lock takes the owner lock, waiting up to wait for a holder to let go.
func (s *Store) Lock(wait time.Duration) (*Lock, error) {
	if err := durable.MkdirAll(s.Dir, 0o755); err != nil {
		return nil, err
	}
	p := filepath.Join(s.Dir, lockName)
	f, err := os.OpenFile(p, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("open lock %s: %w", p, unwrap(err))
	}
	deadline := time.Now().Add(wait)
	for {
		err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
		if err == nil {
			break
		}
		if !errors.Is(err, unix.EWOULDBLOCK) {
			f.Close()
			return nil, fmt.Errorf("lock %s: %w", p, err)
		}
		if time.Now().After(deadline) {
			b, _ := os.ReadFile(p)
			holder := strings.TrimSpace(string(b))
			if holder == "" {
				holder = "unknown"
			}
			f.Close()
			return nil, &BusyError{Path: p, Holder: holder, Waited: wait}
		}
		time.Sleep(20 * time.Millisecond)
	}
	// The pid is advice for the message of a waiting process, not state:
	// it needs no fsync.
	if err := f.Truncate(0); err == nil {
		f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	}
	return &Lock{f: f}, nil
}

// Unlock releases the lock.
func (l *Lock) Unlock() error {
	l.f.Truncate(0)
	return l.f.Close()
}
