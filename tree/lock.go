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
// it when its holder dies, however it dies. Taking it writes nothing: the
// holder's pid, for a waiting process's message, comes from /proc/locks, so
// a command that changes nothing leaves even the lock file's mtime alone.
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
// With create false, nothing is created: a missing lock file means there is
// no system directory, and a lock that locks nothing is returned.
func (s *Store) Lock(wait time.Duration, create bool) (*Lock, error) {
	p := filepath.Join(s.Dir, lockName)
	flags := os.O_RDONLY
	if create {
		if err := durable.MkdirAll(s.Dir, 0o755); err != nil {
			return nil, err
		}
		flags = os.O_RDWR | os.O_CREATE
	}
	f, err := os.OpenFile(p, flags, 0o644)
	if !create && errors.Is(err, os.ErrNotExist) {
		return &Lock{}, nil
	}
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
			holder := holderPID(f)
			f.Close()
			return nil, &BusyError{Path: p, Holder: holder, Waited: wait}
		}
		time.Sleep(20 * time.Millisecond)
	}
	return &Lock{f: f}, nil
}

// Unlock releases the lock.
func (l *Lock) Unlock() error {
	if l.f == nil {
		return nil
	}
	return l.f.Close()
}

// holderPID finds the pid holding an flock on f in /proc/locks, whose lines
// read "N: FLOCK ADVISORY WRITE PID MAJ:MIN:INODE 0 EOF".
func holderPID(f *os.File) string {
	var st unix.Stat_t
	if unix.Fstat(int(f.Fd()), &st) != nil {
		return "unknown"
	}
	b, err := os.ReadFile("/proc/locks")
	if err != nil {
		return "unknown"
	}
	suffix := ":" + strconv.FormatUint(st.Ino, 10)
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) >= 6 && f[1] == "FLOCK" && strings.HasSuffix(f[5], suffix) {
			return f[4]
		}
	}
	return "unknown"
}
