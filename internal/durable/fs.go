// Package durable owns every file operation treeshift makes in the
// directories it owns — the system directory and the live directory — and
// says exactly when each becomes durable.
//
// All of them go through an FS. Paths are absolute paths inside the root
// given by --root ("/var/lib/treeshift/state"); the FS turns them into the
// host's. The real FS, OS, resolves every path below an anchor (the system
// directory, the live directory) without following a single symbolic link:
// a link planted where treeshift expects a directory or a file is refused,
// naming it, and nothing is read or written through it. The anchors
// themselves are found inside the root, symbolic links among their parents
// confined to it, and must not be links either.
//
// Overlay is an FS that keeps every change in memory over a read-only base:
// the dry run is the real run on an Overlay, so it reads back what it
// "wrote" and can never disagree with the real run.
//
// Durability. Nothing an FS method writes is durable until synced:
//   - Create, Mkdir, Symlink, Link, Rename, Remove: durable once the
//     directory holding the entry is synced (SyncDir), and a created file's
//     data once the file is (Fsync) — or once the whole filesystem is
//     (SyncFS);
//   - CreateStream and Build write new entries the same way, unsynced: a
//     whole tree of files (Build) or one file written piece by piece
//     (CreateStream) costs no flush until a sync covers it;
//   - WriteFile, WriteStream and SwapSymlink replace an entry atomically (a
//     reader sees the old one or the new one, never a mix) and make the new
//     content durable before the rename; the rename itself is durable once
//     the directory is synced.
//
// The flushes the real FS makes (fsync of a file, of a directory, syncfs)
// are counted for the whole process: see Flushes.
//
// The atomic replacements are google/renameio's, run on an os.Root opened on
// the one directory concerned, which is itself reached without following a
// link. Renames of whole directories are natefinch/atomic's ReplaceFile on
// the same footing.
package durable

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"strings"

	"github.com/treeshift/treeshift/internal/fserr"
)

// FS is the file operations treeshift makes in the directories it owns.
type FS interface {
	// Host returns the path the process opens for p: for messages, and
	// for programs given a path (the s6 tools).
	Host(p string) string

	// Lstat describes p without following it if it is a link.
	Lstat(p string) (fs.FileInfo, error)
	// ReadFile reads the regular file p, refusing anything else (a link,
	// a FIFO) and a file larger than max bytes.
	ReadFile(p string, max int64) ([]byte, error)
	// ReadDir lists directory p, sorted by name.
	ReadDir(p string) ([]fs.DirEntry, error)
	// Readlink returns the target of link p.
	Readlink(p string) (string, error)

	// SameFS reports whether a and b (which must exist) are on one
	// filesystem, so that a sync of one covers the other.
	SameFS(a, b string) (bool, error)

	// Mkdir creates directory p.
	Mkdir(p string, perm fs.FileMode) error
	// Create writes a new file p, which must not exist.
	Create(p string, data []byte, perm fs.FileMode) error
	// CreateStream writes the new file p, which must not exist, with what
	// write writes (a buffered writer), unsynced. If write fails, p is
	// removed.
	CreateStream(p string, perm fs.FileMode, write func(w io.Writer) error) error
	// Build creates directory dir (mode perm), which must not exist, and
	// the entries below it in their order, a directory before what it
	// holds: a whole tree of files in one call, each path not resolved
	// anew. Nothing is synced. If it fails, what it made is left for the
	// caller to remove.
	Build(dir string, perm fs.FileMode, entries []Entry) error
	// CloneTree recreates directory src at dst (which must not exist):
	// its directories made anew, with their modes, its files hard links to
	// src's where both are on one filesystem, copies otherwise. It is for
	// directories that are never modified in place (tree generations,
	// compiled databases), where a link is as good as a copy. Nothing is
	// synced. Anything but regular files and directories is refused.
	CloneTree(src, dst string) error
	// Symlink creates link p to target; p must not exist.
	Symlink(target, p string) error
	// Link makes p another name of the file old (a hard link); p must not
	// exist. It fails with an error matching ErrCrossDevice when the two
	// are on different filesystems.
	Link(old, p string) error
	// Rename renames old to p, replacing p if it is a file, a link or an
	// empty directory.
	Rename(old, p string) error
	// Remove removes a file, a link or an empty directory.
	Remove(p string) error
	// RemoveAll removes p and everything below it; a missing p is no error.
	RemoveAll(p string) error
	// Chown and Chmod change p's owner and mode, never through a link.
	Chown(p string, uid, gid int) error
	Chmod(p string, perm fs.FileMode) error

	// WriteFile replaces p with a file holding data, atomically, its data
	// durable before the rename.
	WriteFile(p string, data []byte, perm fs.FileMode) error
	// WriteStream is WriteFile for content written piece by piece: write
	// gets a buffered writer. If write fails, p is left as it was.
	WriteStream(p string, perm fs.FileMode, write func(w io.Writer) error) error
	// SwapSymlink points link p at target, replacing whatever link is
	// there in one rename.
	SwapSymlink(target, p string) error

	// Fsync makes file p's data durable; SyncDir makes directory p's
	// entries durable; SyncFS makes everything on p's filesystem durable.
	Fsync(p string) error
	SyncDir(p string) error
	SyncFS(p string) error

	// OpenLock opens p for an flock: for writing (creating it) with
	// create, else read-only (a missing file is fs.ErrNotExist).
	OpenLock(p string, create bool) (LockFile, error)
}

// Entry is one entry of a Build: a directory (Mode has fs.ModeDir), or a
// regular file holding Data, or, with Link set, another name of the file at
// Link (a path inside the root) — a copy of it if Link is on another
// filesystem.
type Entry struct {
	// Name is the entry's path below the directory built ("a/b").
	Name string
	Mode fs.FileMode
	Data []byte
	Link string
}

// LockFile is an open file that can be locked with flock.
type LockFile interface {
	Fd() uintptr
	Close() error
}

// ErrSymlink is the error of an operation that met a symbolic link where
// none belongs.
var ErrSymlink = errors.New("a symbolic link where none belongs")

// ErrNotRegular is the error of reading something that is not a regular
// file where one belongs.
var ErrNotRegular = errors.New("not a regular file")

// ErrCrossDevice is the error of a hard link between two filesystems.
var ErrCrossDevice = errors.New("on another filesystem")

// TooLargeError reports a file over the size a reader accepts.
type TooLargeError struct {
	Size, Max int64
}

func (e *TooLargeError) Error() string {
	return fmt.Sprintf("%d bytes, over the limit of %d", e.Size, e.Max)
}

// Clean checks that p is an absolute, clean path inside the root and
// returns it; every FS method calls it first.
func Clean(p string) (string, error) {
	if !path.IsAbs(p) || path.Clean(p) != p || strings.Contains(p, "\x00") {
		return "", fmt.Errorf("%q is not a clean absolute path inside the root", p)
	}
	return p, nil
}

// Under reports whether p is dir or below it.
func Under(p, dir string) bool {
	return p == dir || dir == "/" || strings.HasPrefix(p, dir+"/")
}

// pathError wraps err for p, shown as the host path, with the standard
// library's own wrappers removed so the path appears once.
func pathError(op, host string, err error) error {
	return &fs.PathError{Op: op, Path: host, Err: fserr.Cause(err)}
}

// Describe says what is wrong with p in a message's words: "PATH: a
// symbolic link where none belongs".
func Describe(err error) string {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Path + ": " + pe.Err.Error()
	}
	return err.Error()
}

var (
	_ FS = (*OS)(nil)
	_ FS = (*Overlay)(nil)
	_ FS = (*Faulty)(nil)
)
