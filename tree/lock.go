package tree

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"strconv"
	"strings"
	"time"

	"github.com/treeshift/treeshift/internal/durable"
	"golang.org/x/sys/unix"
)

// Lock is the owner lock: one treeshift at a time changes an owner's trees.
// It is an flock on a file in the system directory, so the kernel releases
// it when its holder dies, however it dies. Taking it writes nothing: the
// holder's pid, for a waiting process's message, comes from /proc, so a
// command that changes nothing leaves even the lock file's mtime alone.
type Lock struct{ f durable.LockFile }

// Holder is the process holding a lock, as far as /proc tells.
type Holder struct {
	PID     int    // 0: not found
	Command string // its command line, shortened; "" if unreadable
	UID     int    // its user, -1 if unknown
}

func (h Holder) String() string {
	s := ""
	switch {
	case h.PID == 0:
		return "an unknown process"
	case h.Command == "":
		s = "pid " + strconv.Itoa(h.PID)
	default:
		s = fmt.Sprintf("pid %d (%s)", h.PID, h.Command)
	}
	if h.UID >= 0 && h.UID != os.Geteuid() {
		// Not the owner's own treeshift: a user who opened the lock
		// while it could be read (it is the owner's only now).
		s += fmt.Sprintf(" of uid %d, not this owner's", h.UID)
	}
	return s
}

// holder describes process pid.
func holder(pid int) Holder {
	h := Holder{PID: pid, Command: command(pid), UID: -1}
	var st unix.Stat_t
	if unix.Stat(fmt.Sprintf("/proc/%d", pid), &st) == nil {
		h.UID = int(st.Uid)
	}
	return h
}

// BusyError reports that another process held the lock for the whole wait.
type BusyError struct {
	Path   string
	Holder Holder
	Waited time.Duration
}

func (e *BusyError) Error() string {
	return fmt.Sprintf("%s is held by %s; gave up after waiting %s", e.Path, e.Holder, e.Waited)
}

// LockPath is the owner lock's file.
func (s *Store) LockPath() string { return path.Join(s.Dir, LockName) }

// Lock takes the owner lock, waiting up to wait for a holder to let go; if
// it must wait, waiting (if not nil) is told at once who holds the lock.
// With create false, nothing is created: a missing lock file means there is
// no system directory, and a lock that locks nothing is returned.
func (s *Store) Lock(wait time.Duration, create bool, waiting func(Holder)) (*Lock, error) {
	p := s.LockPath()
	if create {
		if err := durable.MkdirAll(s.FS, s.Dir, 0o755, true); err != nil {
			return nil, err
		}
	}
	f, err := s.FS.OpenLock(p, create)
	if !create && errors.Is(err, fs.ErrNotExist) {
		return &Lock{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("open lock %s", durable.Describe(err))
	}
	deadline := time.Now().Add(wait)
	told := false
	for {
		err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
		if err == nil {
			break
		}
		if !errors.Is(err, unix.EWOULDBLOCK) {
			f.Close()
			return nil, fmt.Errorf("lock %s: %w", s.Host(p), err)
		}
		if !told && waiting != nil && wait > 0 {
			waiting(holderOf(f))
			told = true
		}
		if time.Now().After(deadline) {
			holder := holderOf(f)
			f.Close()
			return nil, &BusyError{Path: s.Host(p), Holder: holder, Waited: wait}
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

// holderOf finds the process holding an flock on f in /proc/locks, whose
// lines read "N: FLOCK ADVISORY WRITE PID MAJ:MIN:INODE 0 EOF" with the
// device numbers in hex. Both device and inode must match: an inode number
// alone names a file on every filesystem that has one, and a message naming
// some other filesystem's lock holder could get the wrong process killed.
func holderOf(f durable.LockFile) Holder {
	var st unix.Stat_t
	if unix.Fstat(int(f.Fd()), &st) != nil {
		return Holder{}
	}
	b, err := os.ReadFile("/proc/locks")
	if err != nil {
		return Holder{}
	}
	h := findHolder(string(b), unix.Major(st.Dev), unix.Minor(st.Dev), st.Ino)
	if h.PID != 0 && h.Command == "" {
		// /proc/locks names the process that took the lock, which may
		// have passed the open file on and exited (flock(1) on an
		// inherited descriptor): look for whoever holds it now.
		if now := fdHolder(st.Dev, st.Ino); now.PID != 0 {
			return now
		}
	}
	return h
}

// fdHolder finds a process other than this one with the lock file open
// and a lock on that descriptor, as /proc/PID/fdinfo shows.
func fdHolder(dev, ino uint64) Holder {
	procs, _ := os.ReadDir("/proc")
	for _, p := range procs {
		pid, err := strconv.Atoi(p.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		fds, _ := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
		for _, fd := range fds {
			var st unix.Stat_t
			if unix.Stat(fmt.Sprintf("/proc/%d/fd/%s", pid, fd.Name()), &st) != nil || st.Dev != dev || st.Ino != ino {
				continue
			}
			info, err := os.ReadFile(fmt.Sprintf("/proc/%d/fdinfo/%s", pid, fd.Name()))
			if err == nil && strings.Contains(string(info), "FLOCK") {
				return holder(pid)
			}
		}
	}
	return Holder{}
}

// findHolder is holderOf's search of the /proc/locks text.
func findHolder(locks string, major, minor uint32, ino uint64) Holder {
	want := fmt.Sprintf("%02x:%02x:%d", major, minor, ino)
	for _, line := range strings.Split(locks, "\n") {
		f := strings.Fields(line)
		// A blocked waiter's line has "->" after the number.
		if len(f) >= 6 && f[1] == "FLOCK" && f[5] == want {
			pid, err := strconv.Atoi(f[4])
			if err != nil || pid <= 0 {
				continue
			}
			return holder(pid)
		}
	}
	return Holder{}
}

// command returns a process's command line, shortened for a message.
func command(pid int) string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil {
		return ""
	}
	c := strings.TrimSpace(strings.ReplaceAll(string(b), "\x00", " "))
	if len(c) > 80 {
		c = c[:77] + "..."
	}
	return c
}
