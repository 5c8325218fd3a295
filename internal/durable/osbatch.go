package durable

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"slices"
	"strings"
	"sync/atomic"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The operations on whole trees of files: a tree generation or a compiled
// database holds thousands of entries, and resolving each one's path from
// its anchor again (an openat2 walk, a descriptor opened and closed) costs
// more than making it. Below, a directory is opened once, reached without
// following a link as every path is, and its entries are made relative to
// it.

// FlushCount is how many flushes the real FS made: fsyncs of files (the
// atomic writes' included), fsyncs of directories, and filesystem syncs.
type FlushCount struct {
	Fsync, SyncDir, SyncFS int64
}

// Total is the number of flushes of every kind.
func (c FlushCount) Total() int64 { return c.Fsync + c.SyncDir + c.SyncFS }

// Sub is the flushes made since an earlier count.
func (c FlushCount) Sub(before FlushCount) FlushCount {
	return FlushCount{c.Fsync - before.Fsync, c.SyncDir - before.SyncDir, c.SyncFS - before.SyncFS}
}

func (c FlushCount) String() string {
	return fmt.Sprintf("%d flush(es): %d syncfs, %d fsync of a file, %d fsync of a directory", c.Total(), c.SyncFS, c.Fsync, c.SyncDir)
}

var flushes struct{ fsync, syncdir, syncfs atomic.Int64 }

// Flushes returns the flushes every OS of the process has made so far: a
// run reports the difference between two counts.
func Flushes() FlushCount {
	return FlushCount{flushes.fsync.Load(), flushes.syncdir.Load(), flushes.syncfs.Load()}
}

// SameFS reports whether a and b are on one filesystem.
func (o *OS) SameFS(a, b string) (bool, error) {
	var devs [2]uint64
	for i, p := range []string{a, b} {
		fd, base, err := o.parent("stat", p)
		if err != nil {
			return false, err
		}
		var st unix.Stat_t
		err = unix.Fstatat(fd, base, &st, unix.AT_SYMLINK_NOFOLLOW)
		unix.Close(fd)
		if err != nil {
			return false, pathError("stat", o.Host(p), err)
		}
		devs[i] = st.Dev
	}
	return devs[0] == devs[1], nil
}

// fdWriter writes to a descriptor.
type fdWriter int

func (w fdWriter) Write(b []byte) (int, error) {
	n := 0
	for n < len(b) {
		var k int
		if err := retry(func() (err error) { k, err = unix.Write(int(w), b[n:]); return err }); err != nil {
			return n, err
		}
		n += k
	}
	return n, nil
}

// CreateStream writes the new file p with what write writes, unsynced.
func (o *OS) CreateStream(p string, perm fs.FileMode, write func(w io.Writer) error) error {
	fd, base, err := o.parent("create", p)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	var f int
	err = retry(func() (err error) {
		f, err = unix.Openat(fd, base, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, uint32(perm.Perm()))
		return err
	})
	if err != nil {
		return pathError("create", o.Host(p), err)
	}
	werr := func() error {
		bw := bufio.NewWriterSize(fdWriter(f), 64<<10)
		if err := write(bw); err != nil {
			return err
		}
		if err := bw.Flush(); err != nil {
			return err
		}
		if perm.Perm()&umask != 0 {
			return unix.Fchmod(f, uint32(perm.Perm()))
		}
		return nil
	}()
	if err := unix.Close(f); werr == nil {
		werr = err
	}
	if werr != nil {
		unix.Unlinkat(fd, base, 0)
		return pathError("create", o.Host(p), werr)
	}
	point("create", o.Host(p))
	return nil
}

// dirFDs holds the open directories of a tree being built or cloned, by
// their path below its top. Entries come a directory before what it holds,
// so the few most recent directories serve nearly every entry; the others
// are opened again when needed, from the top, never following a link.
type dirFDs struct {
	top  int
	open map[string]int
}

func (d *dirFDs) get(rel string) (int, error) {
	if rel == "." || rel == "" {
		return d.top, nil
	}
	if fd, ok := d.open[rel]; ok {
		return fd, nil
	}
	fd, err := openat2(d.top, rel, unix.O_RDONLY|unix.O_DIRECTORY, unix.RESOLVE_BENEATH|unix.RESOLVE_NO_SYMLINKS)
	if err == unix.ENOSYS {
		fd, err = walk(d.top, rel)
	}
	if err != nil {
		return -1, err
	}
	d.put(rel, fd)
	return fd, nil
}

func (d *dirFDs) put(rel string, fd int) {
	// A tree has thousands of directories: a descriptor each would run
	// out of them.
	if len(d.open) >= 64 {
		d.closeAll()
	}
	d.open[rel] = fd
}

func (d *dirFDs) closeAll() {
	for k, fd := range d.open {
		unix.Close(fd)
		delete(d.open, k)
	}
}

// mkdirAt makes directory base in dirfd with mode perm, whatever the umask.
func mkdirAt(dirfd int, base string, perm fs.FileMode) error {
	if err := retry(func() error { return unix.Mkdirat(dirfd, base, uint32(perm.Perm())) }); err != nil {
		return err
	}
	if perm.Perm()&umask != 0 {
		return fchmodDir(dirfd, base, perm)
	}
	return nil
}

// openDir opens directory base of dirfd, not following it.
func openDir(dirfd int, base string) (int, error) {
	var fd int
	err := retry(func() (err error) {
		fd, err = unix.Openat(dirfd, base, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		return err
	})
	return fd, err
}

// Build creates dir and the entries below it.
func (o *OS) Build(dir string, perm fs.FileMode, entries []Entry) error {
	pfd, base, err := o.parent("mkdir", dir)
	if err != nil {
		return err
	}
	defer unix.Close(pfd)
	if err := mkdirAt(pfd, base, perm); err != nil {
		return pathError("mkdir", o.Host(dir), err)
	}
	point("mkdir", o.Host(dir))
	top, err := openDir(pfd, base)
	if err != nil {
		return pathError("open", o.Host(dir), err)
	}
	defer unix.Close(top)
	fds := &dirFDs{top: top, open: map[string]int{}}
	defer fds.closeAll()
	for _, e := range entries {
		p, err := below(o, dir, e.Name)
		if err != nil {
			return err
		}
		dfd, err := fds.get(path.Dir(e.Name))
		if err != nil {
			return o.explain("open", path.Dir(p), err)
		}
		name := path.Base(e.Name)
		op := "create"
		switch {
		case e.Mode.IsDir():
			op = "mkdir"
			err = mkdirAt(dfd, name, e.Mode)
			if err == nil {
				var fd int
				if fd, err = openDir(dfd, name); err == nil {
					fds.put(e.Name, fd)
				}
			}
		case e.Link != "":
			op = "link"
			err = o.linkInto(e.Link, dfd, name, p)
		default:
			err = createAt(dfd, name, e.Data, e.Mode)
		}
		if err != nil {
			var pe *fs.PathError
			if errors.As(err, &pe) {
				return err
			}
			return pathError(op, o.Host(p), err)
		}
		point(op, o.Host(p))
	}
	return nil
}

// linkInto makes name in dirfd another name of the file old, or a copy of
// it when old is on another filesystem.
func (o *OS) linkInto(old string, dirfd int, name, p string) error {
	ofd, obase, err := o.parent("link", old)
	if err != nil {
		return err
	}
	defer unix.Close(ofd)
	return linkOrCopy(ofd, obase, dirfd, name, o.Host(old))
}

// linkOrCopy links or copies a regular file between two open directories.
func linkOrCopy(sfd int, sname string, dfd int, dname, shost string) error {
	err := retry(func() error { return unix.Linkat(sfd, sname, dfd, dname, 0) })
	if err != unix.EXDEV {
		return err
	}
	var f int
	err = retry(func() (err error) {
		f, err = unix.Openat(sfd, sname, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
		return err
	})
	if err != nil {
		return pathError("open", shost, err)
	}
	defer unix.Close(f)
	var st unix.Stat_t
	if err := unix.Fstat(f, &st); err != nil {
		return pathError("stat", shost, err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		return pathError("open", shost, ErrNotRegular)
	}
	b := make([]byte, 0, st.Size)
	for {
		if len(b) == cap(b) {
			b = append(b, 0)[:len(b)]
		}
		var n int
		if err := retry(func() (err error) { n, err = unix.Read(f, b[len(b):cap(b)]); return err }); err != nil {
			return pathError("read", shost, err)
		}
		if n == 0 {
			break
		}
		b = b[:len(b)+n]
	}
	return createAt(dfd, dname, b, fs.FileMode(st.Mode&0o777))
}

// CloneTree recreates src at dst in one walk of open directories.
func (o *OS) CloneTree(src, dst string) error {
	src, err := Clean(src)
	if err != nil {
		return err
	}
	if Under(dst, src) {
		return pathError("copy", o.Host(dst), errors.New("a directory cannot be cloned into itself"))
	}
	sfd, err := o.dir(src)
	if err != nil {
		return err
	}
	defer unix.Close(sfd)
	var st unix.Stat_t
	if err := unix.Fstat(sfd, &st); err != nil {
		return pathError("stat", o.Host(src), err)
	}
	pfd, base, err := o.parent("mkdir", dst)
	if err != nil {
		return err
	}
	defer unix.Close(pfd)
	if err := mkdirAt(pfd, base, fs.FileMode(st.Mode&0o777)); err != nil {
		return pathError("mkdir", o.Host(dst), err)
	}
	point("mkdir", o.Host(dst))
	dfd, err := openDir(pfd, base)
	if err != nil {
		return pathError("open", o.Host(dst), err)
	}
	defer unix.Close(dfd)
	return o.cloneAt(sfd, dfd, src, dst)
}

func (o *OS) cloneAt(sfd, dfd int, src, dst string) error {
	ents, err := readDirents(sfd)
	if err != nil {
		return pathError("readdir", o.Host(src), err)
	}
	// By name, as every other FS clones: a clone that fails half way
	// leaves the same part made.
	slices.SortFunc(ents, func(a, b dirent) int { return strings.Compare(a.name, b.name) })
	for _, e := range ents {
		s, d := path.Join(src, e.name), path.Join(dst, e.name)
		typ := e.typ
		var st unix.Stat_t
		if typ == unix.DT_DIR || typ == unix.DT_UNKNOWN {
			if err := unix.Fstatat(sfd, e.name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
				return pathError("lstat", o.Host(s), err)
			}
			typ = dtype(st.Mode)
		}
		switch typ {
		case unix.DT_DIR:
			if err := mkdirAt(dfd, e.name, fs.FileMode(st.Mode&0o777)); err != nil {
				return pathError("mkdir", o.Host(d), err)
			}
			point("mkdir", o.Host(d))
			s2, err := openDir(sfd, e.name)
			if err != nil {
				return pathError("open", o.Host(s), err)
			}
			d2, err := openDir(dfd, e.name)
			if err != nil {
				unix.Close(s2)
				return pathError("open", o.Host(d), err)
			}
			err = o.cloneAt(s2, d2, s, d)
			unix.Close(s2)
			unix.Close(d2)
			if err != nil {
				return err
			}
		case unix.DT_REG:
			if err := linkOrCopy(sfd, e.name, dfd, e.name, o.Host(s)); err != nil {
				var pe *fs.PathError
				if errors.As(err, &pe) {
					return err
				}
				return pathError("link", o.Host(d), err)
			}
			point("link", o.Host(d))
		default:
			return pathError("copy", o.Host(s), fmt.Errorf("a %s where only files and directories belong", Kind(modeOfDT(typ))))
		}
	}
	return nil
}

func dtype(mode uint32) uint8 {
	switch mode & unix.S_IFMT {
	case unix.S_IFDIR:
		return unix.DT_DIR
	case unix.S_IFREG:
		return unix.DT_REG
	case unix.S_IFLNK:
		return unix.DT_LNK
	case unix.S_IFIFO:
		return unix.DT_FIFO
	case unix.S_IFSOCK:
		return unix.DT_SOCK
	case unix.S_IFCHR:
		return unix.DT_CHR
	case unix.S_IFBLK:
		return unix.DT_BLK
	}
	return unix.DT_UNKNOWN
}

func modeOfDT(t uint8) fs.FileMode {
	switch t {
	case unix.DT_LNK:
		return fs.ModeSymlink
	case unix.DT_FIFO:
		return fs.ModeNamedPipe
	case unix.DT_SOCK:
		return fs.ModeSocket
	case unix.DT_CHR:
		return fs.ModeDevice | fs.ModeCharDevice
	case unix.DT_BLK:
		return fs.ModeDevice
	}
	return fs.ModeIrregular
}

// dirent is a directory entry with its type as getdents(2) gives it
// (DT_UNKNOWN on filesystems that do not say).
type dirent struct {
	name string
	typ  uint8
}

// readDirents lists the open directory fd, but for . and .., from its
// start: one getdents call per 32 KiB of entries, no stat of each.
func readDirents(fd int) ([]dirent, error) {
	if _, err := unix.Seek(fd, 0, 0); err != nil {
		return nil, err
	}
	buf := make([]byte, 32<<10)
	var out []dirent
	for {
		var n int
		err := retry(func() (err error) { n, err = unix.Getdents(fd, buf); return err })
		if err != nil {
			return nil, err
		}
		if n <= 0 {
			return out, nil
		}
		for off := 0; off < n; {
			// struct linux_dirent64: ino u64, off s64, reclen u16, type u8, name.
			reclen := int(*(*uint16)(unsafe.Pointer(&buf[off+16])))
			typ := buf[off+18]
			name := buf[off+19 : off+reclen]
			if i := bytes.IndexByte(name, 0); i >= 0 {
				name = name[:i]
			}
			off += reclen
			if s := string(name); s != "." && s != ".." {
				out = append(out, dirent{s, typ})
			}
		}
	}
}
