// Package durable owns every write treeshift makes under the system and live
// directories. Each operation is atomic (a reader sees the old or the new
// state, never a mix) and durable (once it returns, a power loss cannot undo
// it): neither renameio nor natefinch/atomic syncs the directory holding the
// renamed entry, so this package does that after every rename.
//
// Staged directories (a tree generation that nothing references yet) are
// written with plain writes and made durable by one SyncFS before they are
// committed; per-file fsyncs would cost one disk flush per record for no gain,
// since an unreferenced directory is garbage until its commit.
package durable

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/google/renameio/v2"
	"github.com/natefinch/atomic"
	"github.com/treeshift/treeshift/internal/fserr"
	"golang.org/x/sys/unix"
)

// WriteFile replaces path with data atomically and durably. The temporary file
// is created in path's own directory under a hidden name, so a scanner of that
// directory never sees a partial or visible temporary entry.
func WriteFile(path string, data []byte, perm fs.FileMode) error {
	dir := filepath.Dir(path)
	if err := renameio.WriteFile(path, data, perm, renameio.WithTempDir(dir), renameio.WithStaticPermissions(perm)); err != nil {
		return fmt.Errorf("write %s: %w", path, unwrapPath(err))
	}
	point("write", path)
	return SyncDir(dir)
}

// WriteStream is WriteFile for content produced piece by piece: write writes
// it to w, which is buffered, so a large document need never be whole in
// memory. If write fails, path is left as it was.
func WriteStream(path string, perm fs.FileMode, write func(w io.Writer) error) error {
	dir := filepath.Dir(path)
	f, err := renameio.NewPendingFile(path, renameio.WithTempDir(dir), renameio.WithStaticPermissions(perm))
	if err != nil {
		return fmt.Errorf("write %s: %w", path, unwrapPath(err))
	}
	defer f.Cleanup()
	bw := bufio.NewWriterSize(f, 64<<10)
	if err := write(bw); err != nil {
		return fmt.Errorf("write %s: %w", path, unwrapPath(err))
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("write %s: %w", path, unwrapPath(err))
	}
	if err := f.CloseAtomicallyReplace(); err != nil {
		return fmt.Errorf("write %s: %w", path, unwrapPath(err))
	}
	point("write", path)
	return SyncDir(dir)
}

// Symlink points the symbolic link at path to target, replacing any link
// already there in one rename, and makes the change durable.
func Symlink(target, path string) error {
	if err := renameio.Symlink(target, path); err != nil {
		return fmt.Errorf("symlink %s -> %s: %w", path, target, unwrapPath(err))
	}
	point("symlink", path)
	return SyncDir(filepath.Dir(path))
}

// SweepSymlink removes what interrupted swaps of the link dir/base left
// behind: renameio stages a swap in a hidden directory named after the link
// and random digits, holding the new link as tmp.symlink, and removes it
// when done; a crash in between leaves it. Such leftovers are unused, and
// their removal is not synced.
func SweepSymlink(dir, base string) error {
	entries, err := os.ReadDir(dir)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		return fmt.Errorf("read %s: %w", dir, unwrapPath(err))
	}
	for _, e := range entries {
		n := e.Name()
		rest, ok := strings.CutPrefix(n, "."+base)
		if !ok || !e.IsDir() || rest == "" || strings.Trim(rest, "0123456789") != "" {
			continue
		}
		p := filepath.Join(dir, n)
		sub, err := os.ReadDir(p)
		if err != nil || len(sub) > 1 || (len(sub) == 1 && sub[0].Name() != "tmp.symlink") {
			continue
		}
		if err := Discard(p); err != nil {
			return err
		}
	}
	return nil
}

// SwapSymlink is Symlink without the directory sync, for a caller that swaps
// several links and then syncs the filesystem once (SyncFS). Until then the
// swap may be lost in a crash, so the caller must accept either link.
func SwapSymlink(target, path string) error {
	if err := renameio.Symlink(target, path); err != nil {
		return fmt.Errorf("symlink %s -> %s: %w", path, target, unwrapPath(err))
	}
	point("symlink", path)
	return nil
}

// Replace renames src over dst (a file, or a directory onto a missing or empty
// one) and makes both directories durable.
func Replace(src, dst string) error {
	if err := atomic.ReplaceFile(src, dst); err != nil {
		return fmt.Errorf("rename %s to %s: %w", src, dst, unwrapPath(err))
	}
	point("rename", dst)
	if err := SyncDir(filepath.Dir(dst)); err != nil {
		return err
	}
	if filepath.Dir(src) != filepath.Dir(dst) {
		return SyncDir(filepath.Dir(src))
	}
	return nil
}

// SyncDir flushes a directory's entries to disk.
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("sync directory %s: %w", dir, unwrapPath(err))
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync directory %s: %w", dir, unwrapPath(err))
	}
	point("syncdir", dir)
	return nil
}

// SyncFS flushes every pending write of the filesystem holding path. It is
// how a staged directory becomes durable before it is committed.
func SyncFS(path string) error {
	d, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("sync filesystem of %s: %w", path, unwrapPath(err))
	}
	defer d.Close()
	if err := unix.Syncfs(int(d.Fd())); err != nil {
		return fmt.Errorf("sync filesystem of %s: %w", path, err)
	}
	point("syncfs", path)
	return nil
}

// MkdirAll creates path and any missing parents with mode perm, syncing the
// parent of every directory it creates.
func MkdirAll(path string, perm fs.FileMode) error {
	path = filepath.Clean(path)
	fi, err := os.Stat(path)
	if err == nil {
		if !fi.IsDir() {
			return fmt.Errorf("create directory %s: exists and is not a directory", path)
		}
		return nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("create directory %s: %w", path, unwrapPath(err))
	}
	parent := filepath.Dir(path)
	if parent != path {
		if err := MkdirAll(parent, perm); err != nil {
			return err
		}
	}
	if err := os.Mkdir(path, perm); err != nil && !errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("create directory %s: %w", path, unwrapPath(err))
	}
	point("mkdir", path)
	return SyncDir(parent)
}

// RemoveAll removes path and everything below it, then syncs its parent so
// the removal survives a crash.
func RemoveAll(path string) error {
	if err := Discard(path); err != nil {
		return err
	}
	return SyncDir(filepath.Dir(path))
}

// Discard removes path and everything below it without syncing: for garbage
// (a temporary copy, an unused generation, a closed journal entry) whose
// return after a crash is harmless because the next run removes it again.
func Discard(path string) error {
	if err := os.RemoveAll(path); err != nil {
		return fmt.Errorf("remove %s: %w", path, unwrapPath(err))
	}
	point("remove", path)
	return nil
}

// CloneTree recreates directory src at dst (which must not exist) with hard
// links to src's files, copying a file where a link is not possible (another
// filesystem), with its mode. It is for directories that are never modified
// in place, such as tree generations and compiled databases, so a link is as
// good as a copy. Nothing is synced: the caller syncs before relying on dst.
// Anything but regular files and directories is refused.
func CloneTree(src, dst string) error {
	src, dst = filepath.Clean(src), filepath.Clean(dst)
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel := p[len(src):] // WalkDir's paths all start with src
		if rel != "" && rel[0] != filepath.Separator {
			rel = string(filepath.Separator) + rel
		}
		to := dst + rel
		switch {
		case d.IsDir():
			info, err := d.Info()
			if err != nil {
				return err
			}
			return os.Mkdir(to, info.Mode().Perm())
		case d.Type().IsRegular():
			if os.Link(p, to) == nil {
				return nil
			}
			return CopyFile(p, to)
		}
		return fmt.Errorf("%s: a %v where only files and directories belong", p, d.Type())
	})
	if err != nil {
		return fmt.Errorf("copy %s to %s: %w", src, dst, unwrapPath(err))
	}
	return nil
}

// CopyFile copies the regular file from to a new file to, with its mode
// (whatever the umask). Nothing is synced.
func CopyFile(from, to string) error {
	info, err := os.Stat(from)
	if err != nil {
		return err
	}
	b, err := os.ReadFile(from)
	if err != nil {
		return err
	}
	return CreateFile(to, b, info.Mode().Perm())
}

// CreateFile writes data to path, which must not exist, with mode perm
// whatever the umask. Nothing is synced: it is for staged directories, made
// durable as a whole. It uses the system calls directly because staging
// writes tens of thousands of small files, and an os.File costs more system
// calls than the write itself (descriptor flags, poller registration).
func CreateFile(path string, data []byte, perm fs.FileMode) error {
	fd, err := ignoringEINTR(func() (int, error) {
		return unix.Open(path, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, uint32(perm.Perm()))
	})
	if err != nil {
		return &fs.PathError{Op: "create", Path: path, Err: err}
	}
	werr := func() error {
		for len(data) > 0 {
			n, err := ignoringEINTR(func() (int, error) { return unix.Write(fd, data) })
			if err != nil {
				return err
			}
			data = data[n:]
		}
		// The mode given to open is filtered by the umask; most umasks leave
		// the formats' modes alone, and then the call is skipped.
		if perm.Perm()&umask != 0 {
			return unix.Fchmod(fd, uint32(perm.Perm()))
		}
		return nil
	}()
	if err := unix.Close(fd); werr == nil {
		werr = err
	}
	if werr != nil {
		return &fs.PathError{Op: "write", Path: path, Err: werr}
	}
	return nil
}

// umask is the process's file mode creation mask, read once: reading it
// means setting it, which is only safe before anything else runs.
var umask = func() fs.FileMode {
	m := unix.Umask(0)
	unix.Umask(m)
	return fs.FileMode(m)
}()

func ignoringEINTR(call func() (int, error)) (int, error) {
	for {
		n, err := call()
		if err != unix.EINTR {
			return n, err
		}
	}
}

func unwrapPath(err error) error { return fserr.Cause(err) }
