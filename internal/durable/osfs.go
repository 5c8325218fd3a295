package durable

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/google/renameio/v2"
	"golang.org/x/sys/unix"
)

// OS is the real FS: the host's files below the root directory.
//
// Below an anchor, every directory on the way to an entry is opened with
// openat2(2) and RESOLVE_BENEATH|RESOLVE_NO_SYMLINKS relative to the
// anchor, and the entry itself is reached with a *at system call that does
// not follow it, so no symbolic link below an anchor is ever followed. An
// anchor is opened inside the root with RESOLVE_IN_ROOT (links among its
// parents resolve inside the root, as they would for a system booted from
// it) and O_NOFOLLOW: the anchor itself must not be a link. Paths outside
// every anchor (the parents of the anchors, while they are made) resolve
// inside the root likewise.
type OS struct {
	root    string // host path of the root
	rootFD  int
	anchors []string // longest first

	mu  sync.Mutex
	afd map[string]int // anchor -> its open directory

	// noOpenat2 is set when the kernel lacks openat2 (before 5.6): paths
	// are then walked a component at a time with O_NOFOLLOW, and the
	// anchors' parents may not be links either.
	noOpenat2 bool
}

// NewOS returns the FS of the root directory root (a host path) with the
// given anchors (paths inside the root).
func NewOS(root string, anchors ...string) (*OS, error) {
	fd, err := unix.Open(root, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, pathError("open", root, err)
	}
	o := &OS{root: filepath.Clean(root), rootFD: fd, afd: map[string]int{}}
	for _, a := range anchors {
		a, err := Clean(a)
		if err != nil {
			unix.Close(fd)
			return nil, err
		}
		if !slices.Contains(o.anchors, a) {
			o.anchors = append(o.anchors, a)
		}
	}
	slices.SortFunc(o.anchors, func(a, b string) int { return len(b) - len(a) })
	return o, nil
}

// Close releases the root and anchors.
func (o *OS) Close() error {
	o.mu.Lock()
	defer o.mu.Unlock()
	for a, fd := range o.afd {
		unix.Close(fd)
		delete(o.afd, a)
	}
	return unix.Close(o.rootFD)
}

// Host returns the host path of p.
func (o *OS) Host(p string) string {
	if o.root == "/" {
		return p
	}
	return o.root + p
}

// anchorOf returns the anchor p is strictly below, or "".
func (o *OS) anchorOf(p string) string {
	for _, a := range o.anchors {
		if p != a && Under(p, a) {
			return a
		}
	}
	return ""
}

// openat2 opens rel (relative to dirfd) as a directory with the given
// resolve flags, retrying on EINTR and EAGAIN (which openat2 returns when
// a rename raced with the lookup).
func openat2(dirfd int, rel string, flags uint64, resolve uint64) (int, error) {
	how := &unix.OpenHow{Flags: flags | unix.O_CLOEXEC, Resolve: resolve}
	for i := 0; ; i++ {
		fd, err := unix.Openat2(dirfd, rel, how)
		if (err == unix.EINTR || err == unix.EAGAIN) && i < 100 {
			continue
		}
		return fd, err
	}
}

// inRoot opens p, a directory not below any anchor (or an anchor itself,
// with nofollow), inside the root.
func (o *OS) inRoot(p string, nofollow bool) (int, error) {
	rel := strings.TrimPrefix(p, "/")
	if rel == "" {
		return unix.Dup(o.rootFD)
	}
	flags := uint64(unix.O_RDONLY | unix.O_DIRECTORY)
	if nofollow {
		flags |= unix.O_NOFOLLOW
	}
	if !o.noOpenat2 {
		fd, err := openat2(o.rootFD, rel, flags, unix.RESOLVE_IN_ROOT|unix.RESOLVE_NO_MAGICLINKS)
		if err != unix.ENOSYS {
			return fd, err
		}
		o.noOpenat2 = true
	}
	return walk(o.rootFD, rel)
}

// walk opens rel below dirfd a component at a time, refusing links.
func walk(dirfd int, rel string) (int, error) {
	fd, err := unix.Dup(dirfd)
	if err != nil {
		return -1, err
	}
	for _, c := range strings.Split(rel, "/") {
		next, err := unix.Openat(fd, c, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		unix.Close(fd)
		if err != nil {
			return -1, err
		}
		fd = next
	}
	return fd, nil
}

// anchor returns the open directory of anchor a.
func (o *OS) anchor(a string) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if fd, ok := o.afd[a]; ok {
		return fd, nil
	}
	fd, err := o.inRoot(a, true)
	if err != nil {
		return -1, err
	}
	o.afd[a] = fd
	return fd, nil
}

// dir opens directory p (no link followed below an anchor) and returns it
// with a function that closes it. Errors name the host path of the first
// link met, if that is what went wrong.
func (o *OS) dir(p string) (int, error) {
	a := o.anchorOf(p)
	if a == "" {
		fd, err := o.inRoot(p, slices.Contains(o.anchors, p))
		if err != nil {
			return -1, o.explain("open", p, err)
		}
		return fd, nil
	}
	afd, err := o.anchor(a)
	if err != nil {
		return -1, o.explain("open", a, err)
	}
	rel := strings.TrimPrefix(p, a+"/")
	var fd int
	if o.noOpenat2 {
		fd, err = walk(afd, rel)
	} else {
		fd, err = openat2(afd, rel, unix.O_RDONLY|unix.O_DIRECTORY, unix.RESOLVE_BENEATH|unix.RESOLVE_NO_SYMLINKS)
		if err == unix.ENOSYS {
			o.noOpenat2 = true
			fd, err = walk(afd, rel)
		}
	}
	if err != nil {
		return -1, o.explain("open", p, err)
	}
	return fd, nil
}

// explain turns a resolution error into one naming what is wrong: the
// link met on the way to p, if that is why it failed.
func (o *OS) explain(op, p string, err error) error {
	if err == unix.ELOOP || err == unix.EXDEV || err == unix.ENOTDIR {
		// Find the first link on the way: its name is the message.
		cur := ""
		for _, c := range strings.Split(strings.TrimPrefix(p, "/"), "/") {
			cur += "/" + c
			var st unix.Stat_t
			if unix.Fstatat(o.rootFD, strings.TrimPrefix(cur, "/"), &st, unix.AT_SYMLINK_NOFOLLOW) != nil {
				break
			}
			if st.Mode&unix.S_IFMT == unix.S_IFLNK {
				if o.anchorOf(cur) != "" || slices.Contains(o.anchors, cur) {
					return pathError(op, o.Host(cur), ErrSymlink)
				}
			}
		}
		if err == unix.ELOOP || err == unix.EXDEV {
			return pathError(op, o.Host(p), ErrSymlink)
		}
	}
	return pathError(op, o.Host(p), err)
}

// parent opens p's directory and returns it and p's last element.
func (o *OS) parent(op, p string) (int, string, error) {
	p, err := Clean(p)
	if err != nil {
		return -1, "", err
	}
	if p == "/" {
		return -1, "", pathError(op, o.Host(p), unix.EINVAL)
	}
	fd, err := o.dir(path.Dir(p))
	if err != nil {
		var pe *fs.PathError
		if errors.As(err, &pe) {
			pe.Op = op
		}
		return -1, "", err
	}
	return fd, path.Base(p), nil
}

func retry(call func() error) error {
	for {
		if err := call(); err != unix.EINTR {
			return err
		}
	}
}

// Lstat describes p.
func (o *OS) Lstat(p string) (fs.FileInfo, error) {
	fd, base, err := o.parent("lstat", p)
	if err != nil {
		return nil, err
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if err := retry(func() error { return unix.Fstatat(fd, base, &st, unix.AT_SYMLINK_NOFOLLOW) }); err != nil {
		return nil, pathError("lstat", o.Host(p), err)
	}
	return statInfo(base, &st), nil
}

// ReadFile reads the regular file p.
func (o *OS) ReadFile(p string, max int64) ([]byte, error) {
	fd, base, err := o.parent("open", p)
	if err != nil {
		return nil, err
	}
	defer unix.Close(fd)
	var f int
	err = retry(func() (err error) {
		f, err = unix.Openat(fd, base, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
		return err
	})
	if err == unix.ELOOP {
		return nil, pathError("open", o.Host(p), ErrSymlink)
	}
	if err != nil {
		return nil, pathError("open", o.Host(p), err)
	}
	defer unix.Close(f)
	var st unix.Stat_t
	if err := unix.Fstat(f, &st); err != nil {
		return nil, pathError("stat", o.Host(p), err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		return nil, pathError("open", o.Host(p), ErrNotRegular)
	}
	if max > 0 && st.Size > max {
		return nil, pathError("open", o.Host(p), &TooLargeError{Size: st.Size, Max: max})
	}
	// One byte more than the size, so one read normally returns the whole
	// file and the next its end.
	b := make([]byte, 0, st.Size+1)
	for {
		if len(b) == cap(b) {
			b = append(b, 0)[:len(b)]
		}
		var n int
		err := retry(func() (err error) { n, err = unix.Read(f, b[len(b):cap(b)]); return err })
		if err != nil {
			return nil, pathError("read", o.Host(p), err)
		}
		if n == 0 {
			return b, nil
		}
		b = b[:len(b)+n]
		if max > 0 && int64(len(b)) > max {
			return nil, pathError("read", o.Host(p), &TooLargeError{Size: int64(len(b)), Max: max})
		}
	}
}

// ReadDir lists directory p.
func (o *OS) ReadDir(p string) ([]fs.DirEntry, error) {
	p, err := Clean(p)
	if err != nil {
		return nil, err
	}
	fd, err := o.dir(p)
	if err != nil {
		var pe *fs.PathError
		if errors.As(err, &pe) && errors.Is(pe.Err, unix.ENOENT) {
			return nil, pathError("open", o.Host(p), fs.ErrNotExist)
		}
		return nil, err
	}
	f := os.NewFile(uintptr(fd), o.Host(p))
	defer f.Close()
	entries, err := f.ReadDir(-1)
	if err != nil {
		return nil, pathError("readdir", o.Host(p), err)
	}
	slices.SortFunc(entries, func(a, b fs.DirEntry) int { return strings.Compare(a.Name(), b.Name()) })
	return entries, nil
}

// Readlink returns the target of link p.
func (o *OS) Readlink(p string) (string, error) {
	fd, base, err := o.parent("readlink", p)
	if err != nil {
		return "", err
	}
	defer unix.Close(fd)
	buf := make([]byte, 256)
	for {
		var n int
		err := retry(func() (err error) { n, err = unix.Readlinkat(fd, base, buf); return err })
		if err != nil {
			return "", pathError("readlink", o.Host(p), err)
		}
		if n < len(buf) {
			return string(buf[:n]), nil
		}
		buf = make([]byte, 2*len(buf))
	}
}

// Mkdir creates directory p with mode perm, whatever the umask.
func (o *OS) Mkdir(p string, perm fs.FileMode) error {
	fd, base, err := o.parent("mkdir", p)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	if err := retry(func() error { return unix.Mkdirat(fd, base, uint32(perm.Perm())) }); err != nil {
		return pathError("mkdir", o.Host(p), err)
	}
	if perm.Perm()&umask != 0 {
		if err := fchmodDir(fd, base, perm); err != nil {
			return pathError("chmod", o.Host(p), err)
		}
	}
	point("mkdir", o.Host(p))
	return nil
}

func fchmodDir(dirfd int, base string, perm fs.FileMode) error {
	d, err := unix.Openat(dirfd, base, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(d)
	return unix.Fchmod(d, uint32(perm.Perm()))
}

// Create writes the new file p.
func (o *OS) Create(p string, data []byte, perm fs.FileMode) error {
	fd, base, err := o.parent("create", p)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	if err := createAt(fd, base, data, perm); err != nil {
		return pathError("create", o.Host(p), err)
	}
	point("create", o.Host(p))
	return nil
}

// createAt writes a new file in plain system calls: staging writes tens of
// thousands of small files, and an os.File costs more system calls than
// such a write (descriptor flags, poller registration).
func createAt(dirfd int, base string, data []byte, perm fs.FileMode) error {
	var f int
	err := retry(func() (err error) {
		f, err = unix.Openat(dirfd, base, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, uint32(perm.Perm()))
		return err
	})
	if err != nil {
		return err
	}
	werr := func() error {
		for len(data) > 0 {
			var n int
			if err := retry(func() (err error) { n, err = unix.Write(f, data); return err }); err != nil {
				return err
			}
			data = data[n:]
		}
		// The mode given to open is filtered by the umask; most umasks leave
		// the formats' modes alone, and then the call is skipped.
		if perm.Perm()&umask != 0 {
			return unix.Fchmod(f, uint32(perm.Perm()))
		}
		return nil
	}()
	if err := unix.Close(f); werr == nil {
		werr = err
	}
	return werr
}

// Symlink creates link p to target.
func (o *OS) Symlink(target, p string) error {
	fd, base, err := o.parent("symlink", p)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	if err := retry(func() error { return unix.Symlinkat(target, fd, base) }); err != nil {
		return pathError("symlink", o.Host(p), err)
	}
	point("symlink", o.Host(p))
	return nil
}

// Link makes p another name of old.
func (o *OS) Link(old, p string) error {
	ofd, obase, err := o.parent("link", old)
	if err != nil {
		return err
	}
	defer unix.Close(ofd)
	fd, base, err := o.parent("link", p)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	err = retry(func() error { return unix.Linkat(ofd, obase, fd, base, 0) })
	if err == unix.EXDEV {
		return pathError("link", o.Host(p), ErrCrossDevice)
	}
	if err != nil {
		return pathError("link", o.Host(p), err)
	}
	point("link", o.Host(p))
	return nil
}

// Rename renames old to p.
func (o *OS) Rename(old, p string) error {
	ofd, obase, err := o.parent("rename", old)
	if err != nil {
		return err
	}
	defer unix.Close(ofd)
	fd, base, err := o.parent("rename", p)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	if err := retry(func() error { return unix.Renameat(ofd, obase, fd, base) }); err != nil {
		return pathError("rename", o.Host(old)+" to "+o.Host(p), err)
	}
	point("rename", o.Host(p))
	return nil
}

// procPath names entry base of the open directory dirfd through
// /proc/self/fd: the kernel resolves the descriptor to the very directory
// opened, so the path follows no link the descriptor did not.
func procPath(dirfd int) string { return "/proc/self/fd/" + strconv.Itoa(dirfd) }

// Remove removes a file, link or empty directory.
func (o *OS) Remove(p string) error {
	fd, base, err := o.parent("remove", p)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	err = retry(func() error { return unix.Unlinkat(fd, base, 0) })
	if err == unix.EISDIR {
		err = retry(func() error { return unix.Unlinkat(fd, base, unix.AT_REMOVEDIR) })
	}
	if err != nil {
		return pathError("remove", o.Host(p), err)
	}
	point("remove", o.Host(p))
	return nil
}

// RemoveAll removes p and everything below it, walking open descriptors so
// that a link swapped in meanwhile is removed, not followed.
func (o *OS) RemoveAll(p string) error {
	fd, base, err := o.parent("remove", p)
	if err != nil {
		var pe *fs.PathError
		if errors.As(err, &pe) && errors.Is(pe.Err, unix.ENOENT) {
			return nil
		}
		return err
	}
	defer unix.Close(fd)
	if err := removeAt(fd, base); err != nil && err != unix.ENOENT {
		return pathError("remove", o.Host(p), err)
	}
	point("remove", o.Host(p))
	return nil
}

func removeAt(dirfd int, name string) error {
	err := retry(func() error { return unix.Unlinkat(dirfd, name, 0) })
	if err != unix.EISDIR && err != unix.EPERM {
		return err
	}
	return removeDir(dirfd, name)
}

// removeDir removes directory name of dirfd and what it holds, the
// entries' types telling directories from files so that no removal is
// tried the wrong way first. An entry made meanwhile is removed too: the
// directory is listed again while its removal finds it not empty.
func removeDir(dirfd int, name string) error {
	for tries := 0; ; tries++ {
		d, err := openDir(dirfd, name)
		if err != nil {
			return err
		}
		ents, err := readDirents(d)
		for _, e := range ents {
			if err != nil {
				break
			}
			switch e.typ {
			case unix.DT_DIR:
				err = removeDir(d, e.name)
			case unix.DT_UNKNOWN:
				err = removeAt(d, e.name)
			default:
				err = retry(func() error { return unix.Unlinkat(d, e.name, 0) })
			}
			if err == unix.ENOENT {
				err = nil
			}
		}
		unix.Close(d)
		if err != nil {
			return err
		}
		err = retry(func() error { return unix.Unlinkat(dirfd, name, unix.AT_REMOVEDIR) })
		if err != unix.ENOTEMPTY || tries == 100 {
			return err
		}
	}
}

// Chown changes p's owner, never through a link.
func (o *OS) Chown(p string, uid, gid int) error {
	fd, base, err := o.parent("chown", p)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	if err := unix.Fchownat(fd, base, uid, gid, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return pathError("chown", o.Host(p), err)
	}
	point("chown", o.Host(p))
	return nil
}

// Chmod changes p's mode; a link is refused.
func (o *OS) Chmod(p string, perm fs.FileMode) error {
	fd, base, err := o.parent("chmod", p)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	f, err := unix.Openat(fd, base, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err == unix.ELOOP {
		return pathError("chmod", o.Host(p), ErrSymlink)
	}
	if err != nil {
		return pathError("chmod", o.Host(p), err)
	}
	defer unix.Close(f)
	if err := unix.Fchmod(f, uint32(perm.Perm())); err != nil {
		return pathError("chmod", o.Host(p), err)
	}
	point("chmod", o.Host(p))
	return nil
}

// within runs fn with an os.Root opened on p's directory (reached without
// following a link) and p's last element.
func (o *OS) within(op, p string, fn func(r *os.Root, base string) error) error {
	fd, base, err := o.parent(op, p)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	r, err := os.OpenRoot(procPath(fd))
	if err != nil {
		return pathError(op, o.Host(p), fmt.Errorf("open directory through /proc/self/fd (is /proc mounted?): %w", err))
	}
	defer r.Close()
	if err := fn(r, base); err != nil {
		return pathError(op, o.Host(p), err)
	}
	return nil
}

// WriteFile replaces p atomically, with mode perm (not the old file's, as
// renameio.WriteFile would keep).
func (o *OS) WriteFile(p string, data []byte, perm fs.FileMode) error {
	return o.WriteStream(p, perm, func(w io.Writer) error {
		_, err := w.Write(data)
		return err
	})
}

// WriteStream replaces p atomically with what write writes.
func (o *OS) WriteStream(p string, perm fs.FileMode, write func(w io.Writer) error) error {
	err := o.within("write", p, func(r *os.Root, base string) error {
		f, err := renameio.NewPendingFile(base, renameio.WithRoot(r), renameio.WithStaticPermissions(perm))
		if err != nil {
			return err
		}
		defer f.Cleanup()
		bw := bufio.NewWriterSize(f, 64<<10)
		if err := write(bw); err != nil {
			return err
		}
		if err := bw.Flush(); err != nil {
			return err
		}
		flushes.fsync.Add(1) // renameio syncs the new file before the rename
		return f.CloseAtomicallyReplace()
	})
	if err == nil {
		point("write", o.Host(p))
	}
	return err
}

// SwapSymlink points link p at target in one rename.
func (o *OS) SwapSymlink(target, p string) error {
	err := o.within("symlink", p, func(r *os.Root, base string) error {
		return renameio.SymlinkRoot(r, target, base)
	})
	if err == nil {
		point("symlink", o.Host(p))
	}
	return err
}

// Fsync makes file p's data durable.
func (o *OS) Fsync(p string) error {
	fd, base, err := o.parent("fsync", p)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	f, err := unix.Openat(fd, base, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		return pathError("fsync", o.Host(p), err)
	}
	defer unix.Close(f)
	flushes.fsync.Add(1)
	if err := retry(func() error { return unix.Fsync(f) }); err != nil {
		return pathError("fsync", o.Host(p), err)
	}
	point("fsync", o.Host(p))
	return nil
}

// SyncDir makes directory p's entries durable.
func (o *OS) SyncDir(p string) error {
	p, err := Clean(p)
	if err != nil {
		return err
	}
	fd, err := o.dir(p)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	flushes.syncdir.Add(1)
	if err := retry(func() error { return unix.Fsync(fd) }); err != nil {
		return pathError("sync directory", o.Host(p), err)
	}
	point("syncdir", o.Host(p))
	return nil
}

// SyncFS makes everything on p's filesystem durable.
func (o *OS) SyncFS(p string) error {
	p, err := Clean(p)
	if err != nil {
		return err
	}
	fd, err := o.dir(p)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	flushes.syncfs.Add(1)
	if err := unix.Syncfs(fd); err != nil {
		return pathError("sync filesystem of", o.Host(p), err)
	}
	point("syncfs", o.Host(p))
	return nil
}

// OpenLock opens the lock file p.
func (o *OS) OpenLock(p string, create bool) (LockFile, error) {
	fd, base, err := o.parent("open", p)
	if err != nil {
		return nil, err
	}
	defer unix.Close(fd)
	flags := unix.O_RDONLY | unix.O_NOFOLLOW | unix.O_NONBLOCK | unix.O_CLOEXEC
	if create {
		flags = unix.O_RDWR | unix.O_CREAT | unix.O_NOFOLLOW | unix.O_NONBLOCK | unix.O_CLOEXEC
	}
	var f int
	// Only the owner may open its lock: flock needs no more than a read
	// descriptor, so a lock others can read is a lock any user can hold,
	// keeping the owner from every change.
	err = retry(func() (err error) { f, err = unix.Openat(fd, base, flags, 0o600); return err })
	if err == unix.ELOOP {
		return nil, pathError("open", o.Host(p), ErrSymlink)
	}
	if err != nil {
		return nil, pathError("open", o.Host(p), err)
	}
	var st unix.Stat_t
	if err := unix.Fstat(f, &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFREG {
		unix.Close(f)
		return nil, pathError("open", o.Host(p), ErrNotRegular)
	}
	if create && st.Mode&0o077 != 0 && int(st.Uid) == os.Geteuid() {
		// A lock file made by an older treeshift (0644): closed to
		// others from now on, by a command that changes things (a dry
		// run, which opens it without create, changes nothing).
		if err := unix.Fchmod(f, 0o600); err != nil {
			unix.Close(f)
			return nil, pathError("chmod", o.Host(p), err)
		}
	}
	return os.NewFile(uintptr(f), o.Host(p)), nil
}

// umask is the process's file mode creation mask, read once: reading it
// means setting it, which is only safe before anything else runs.
var umask = func() fs.FileMode {
	m := unix.Umask(0)
	unix.Umask(m)
	return fs.FileMode(m)
}()

// fileInfo is an fs.FileInfo from a stat.
type fileInfo struct {
	name string
	st   unix.Stat_t
}

func statInfo(name string, st *unix.Stat_t) fs.FileInfo { return &fileInfo{name, *st} }

func (s *fileInfo) Name() string { return s.name }
func (s *fileInfo) Size() int64  { return s.st.Size }
func (s *fileInfo) Mode() fs.FileMode {
	m := fs.FileMode(s.st.Mode & 0o777)
	switch s.st.Mode & unix.S_IFMT {
	case unix.S_IFDIR:
		m |= fs.ModeDir
	case unix.S_IFLNK:
		m |= fs.ModeSymlink
	case unix.S_IFIFO:
		m |= fs.ModeNamedPipe
	case unix.S_IFSOCK:
		m |= fs.ModeSocket
	case unix.S_IFCHR:
		m |= fs.ModeDevice | fs.ModeCharDevice
	case unix.S_IFBLK:
		m |= fs.ModeDevice
	}
	if s.st.Mode&unix.S_ISVTX != 0 {
		m |= fs.ModeSticky
	}
	if s.st.Mode&unix.S_ISUID != 0 {
		m |= fs.ModeSetuid
	}
	if s.st.Mode&unix.S_ISGID != 0 {
		m |= fs.ModeSetgid
	}
	return m
}
func (s *fileInfo) ModTime() time.Time { return time.Unix(s.st.Mtim.Unix()) }
func (s *fileInfo) IsDir() bool        { return s.Mode().IsDir() }
func (s *fileInfo) Sys() any           { return &s.st }

// Owner returns the uid owning the file fi describes, when known.
func Owner(fi fs.FileInfo) (int, bool) {
	switch st := fi.Sys().(type) {
	case *unix.Stat_t:
		return int(st.Uid), true
	case *syscall.Stat_t:
		return int(st.Uid), true
	case Owned:
		return st.UID(), true
	}
	return 0, false
}

// Owned is the Sys() of a FileInfo an Overlay makes up for a new entry.
type Owned interface{ UID() int }
