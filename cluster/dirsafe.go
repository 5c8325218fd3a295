package cluster

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/treeshift/treeshift/internal/durable"
)

// A directory store tells root which member roots to run the engine on and
// which configuration to apply there, so whoever can write in it acts as
// root. Before the store is read or written:
//   - every directory above it is owned by root or the invoking user, and
//     writable by nobody else unless sticky (then nobody else can move or
//     replace the entries of ours in it);
//   - the store directory and its configs directory are directories, not
//     symbolic links, owned by root or the invoking user, and not writable
//     by group or others;
//   - its files are opened without following a symbolic link, and must be
//     regular files.
// Refusals name the path and what is wrong.

// UnsafeStoreError reports a part of a directory store treeshift will not
// use.
type UnsafeStoreError struct {
	Path    string
	Problem string
}

func (e *UnsafeStoreError) Error() string {
	return "cluster store " + e.Path + ": " + e.Problem + ": refused"
}

func trustedUID(uid int) bool { return uid == 0 || uid == os.Geteuid() }

// safeDir checks the store directory (or dir under it) and, with create,
// makes it when missing. exists is false when it is missing and was not
// made.
func (d *DirStore) safeDir(dir string, create bool) (exists bool, err error) {
	if err := checkAbove(filepath.Dir(dir)); err != nil {
		return false, err
	}
	fi, err := os.Lstat(dir)
	if errors.Is(err, fs.ErrNotExist) {
		if !create {
			return false, nil
		}
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return false, err
		}
		fi, err = os.Lstat(dir)
	}
	if err != nil {
		return false, err
	}
	uid, _ := durable.Owner(fi)
	switch {
	case fi.Mode()&fs.ModeSymlink != 0:
		return true, &UnsafeStoreError{dir, "a symbolic link where the store's directory must be"}
	case !fi.IsDir():
		return true, &UnsafeStoreError{dir, "not a directory"}
	case !trustedUID(uid):
		return true, &UnsafeStoreError{dir, fmt.Sprintf("owned by uid %d, neither root nor this user", uid)}
	case fi.Mode().Perm()&0o022 != 0:
		return true, &UnsafeStoreError{dir, fmt.Sprintf("writable by group or others (mode %04o): chmod go-w it", fi.Mode().Perm())}
	}
	return true, nil
}

// checkAbove checks the directories above the store, from the nearest
// one that exists up to /: along the path as given, every link on it must
// be root's or this user's, in a directory only they may change (or a
// sticky one), so that no one else can make the path lead elsewhere
// between this check and the use; then along the real path.
func checkAbove(dir string) error {
	for {
		if _, err := os.Lstat(dir); err == nil || filepath.Dir(dir) == dir {
			break
		}
		dir = filepath.Dir(dir)
	}
	cur := "/"
	for _, c := range strings.Split(strings.Trim(filepath.Clean(dir), "/"), "/") {
		if c == "" {
			continue
		}
		if err := checkDirAbove(cur); err != nil {
			return err
		}
		cur = filepath.Join(cur, c)
		fi, err := os.Lstat(cur)
		if err != nil {
			return err
		}
		if fi.Mode()&fs.ModeSymlink != 0 {
			if uid, _ := durable.Owner(fi); !trustedUID(uid) {
				return &UnsafeStoreError{cur, fmt.Sprintf("a symbolic link on the store's path owned by uid %d, neither root nor this user", uid)}
			}
		}
	}
	real, err := filepath.EvalSymlinks(dir)
	if err != nil {
		return err
	}
	for p := real; ; p = filepath.Dir(p) {
		if err := checkDirAbove(p); err != nil {
			return err
		}
		if filepath.Dir(p) == p {
			return nil
		}
	}
}

// checkDirAbove checks one directory above the store: root's or this
// user's, and writable by no one else unless sticky.
func checkDirAbove(p string) error {
	fi, err := os.Stat(p)
	if err != nil {
		return err
	}
	uid, _ := durable.Owner(fi)
	switch {
	case !trustedUID(uid):
		return &UnsafeStoreError{p, fmt.Sprintf("a directory above the store owned by uid %d, neither root nor this user", uid)}
	case fi.Mode().Perm()&0o022 != 0 && fi.Mode()&fs.ModeSticky == 0:
		return &UnsafeStoreError{p, fmt.Sprintf("a directory above the store writable by others (mode %04o) and not sticky", fi.Mode().Perm())}
	}
	return nil
}

// openFile opens a file of the store without following a symbolic link.
func openFile(p string, flag int) (*os.File, error) {
	// The store's files are its owner's only: a lock file others could
	// open is one any user could flock, holding every stage back.
	f, err := os.OpenFile(p, flag|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_CLOEXEC, 0o600)
	if errors.Is(err, unix.ELOOP) {
		return nil, &UnsafeStoreError{p, "a symbolic link where a file of the store belongs"}
	}
	if err != nil {
		return nil, err
	}
	fi, err := f.Stat()
	if err == nil && !fi.Mode().IsRegular() {
		err = &UnsafeStoreError{p, "not a regular file"}
	}
	if err == nil && flag&(os.O_RDWR|os.O_WRONLY) != 0 && fi.Mode().Perm()&0o077 != 0 {
		if uid, _ := durable.Owner(fi); uid == os.Geteuid() {
			// Made readable by an older treeshift: closed now.
			err = f.Chmod(0o600)
		}
	}
	if err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

// readFile reads a file of the store without following a symbolic link.
func readFile(p string) ([]byte, error) {
	f, err := openFile(p, os.O_RDONLY)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(f)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", p, err)
	}
	return b, nil
}
