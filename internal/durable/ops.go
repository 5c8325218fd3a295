package durable

import (
	"errors"
	"fmt"
	"io/fs"
	"path"
	"slices"
	"strings"
)

// The operations below are made of an FS's methods, so they behave alike
// on the real FS, an Overlay and the recording and failing FSes of the
// tests.

// MkdirAll creates p and any missing parents with mode perm. With synced,
// the parent of every directory it creates is synced, so p is durable when
// it returns.
func MkdirAll(fsys FS, p string, perm fs.FileMode, synced bool) error {
	p, err := Clean(p)
	if err != nil {
		return err
	}
	if p == "/" {
		return nil // the root exists: the FS was opened on it
	}
	fi, err := fsys.Lstat(p)
	if err == nil {
		if !fi.IsDir() {
			if fi.Mode()&fs.ModeSymlink != 0 {
				return pathError("mkdir", fsys.Host(p), ErrSymlink)
			}
			return pathError("mkdir", fsys.Host(p), errors.New("exists and is not a directory"))
		}
		return nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	if err := MkdirAll(fsys, path.Dir(p), perm, synced); err != nil {
		return err
	}
	if err := fsys.Mkdir(p, perm); err != nil && !errors.Is(err, fs.ErrExist) {
		return err
	}
	if synced {
		return fsys.SyncDir(path.Dir(p))
	}
	return nil
}

// WriteFileSynced replaces p atomically and durably: the rename too is
// synced.
func WriteFileSynced(fsys FS, p string, data []byte, perm fs.FileMode) error {
	if err := fsys.WriteFile(p, data, perm); err != nil {
		return err
	}
	return fsys.SyncDir(path.Dir(p))
}

// SymlinkSynced points link p at target in one rename, durably.
func SymlinkSynced(fsys FS, target, p string) error {
	if err := fsys.SwapSymlink(target, p); err != nil {
		return err
	}
	return fsys.SyncDir(path.Dir(p))
}

// RemoveAllSynced removes p and everything below it, durably: for what
// must not come back after a power loss (a closed journal).
func RemoveAllSynced(fsys FS, p string) error {
	if err := fsys.RemoveAll(p); err != nil {
		return err
	}
	return fsys.SyncDir(path.Dir(p))
}

// Exists reports whether p exists (as anything: a link is not followed).
func Exists(fsys FS, p string) (bool, error) {
	_, err := fsys.Lstat(p)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	return err == nil, err
}

// BuildEach is Build made of fsys's single operations (Mkdir, Create,
// Link, a copy when a link would cross filesystems): what every FS but the
// real one does, so that each entry is recorded, counted or failed on its
// own.
func BuildEach(fsys FS, dir string, perm fs.FileMode, entries []Entry) error {
	if err := fsys.Mkdir(dir, perm); err != nil {
		return err
	}
	for _, e := range entries {
		p, err := below(fsys, dir, e.Name)
		if err != nil {
			return err
		}
		switch {
		case e.Mode.IsDir():
			err = fsys.Mkdir(p, e.Mode.Perm())
		case e.Link != "":
			err = fsys.Link(e.Link, p)
			if errors.Is(err, ErrCrossDevice) {
				err = CopyFile(fsys, e.Link, p)
			}
		default:
			err = fsys.Create(p, e.Data, e.Mode.Perm())
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// below is the path of entry name of a Build of dir; name must be a clean
// relative path that stays below dir.
func below(fsys FS, dir, name string) (string, error) {
	if name == "" || path.IsAbs(name) || path.Clean(name) != name || name == "." || name == ".." || strings.HasPrefix(name, "../") {
		return "", pathError("create", fsys.Host(dir), fmt.Errorf("entry %q is not a path below the directory", name))
	}
	return path.Join(dir, name), nil
}

// CloneEach is CloneTree made of fsys's single operations (see
// BuildEach), in the real FS's order: depth first, by name.
func CloneEach(fsys FS, src, dst string) error {
	if Under(dst, src) {
		return pathError("copy", fsys.Host(dst), errors.New("a directory cannot be cloned into itself"))
	}
	fi, err := fsys.Lstat(src)
	if err != nil {
		return err
	}
	if !fi.IsDir() {
		return pathError("copy", fsys.Host(src), fmt.Errorf("a %s where a directory belongs", Kind(fi.Mode())))
	}
	if err := fsys.Mkdir(dst, fi.Mode().Perm()); err != nil {
		return err
	}
	entries, err := fsys.ReadDir(src)
	if err != nil {
		return err
	}
	for _, e := range entries {
		s, d := path.Join(src, e.Name()), path.Join(dst, e.Name())
		switch {
		case e.IsDir():
			err = CloneEach(fsys, s, d)
		case e.Type().IsRegular():
			err = fsys.Link(s, d)
			if errors.Is(err, ErrCrossDevice) {
				err = CopyFile(fsys, s, d)
			}
		default:
			err = pathError("copy", fsys.Host(s), fmt.Errorf("a %s where only files and directories belong", Kind(e.Type())))
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// CopyFile copies the regular file src to the new file dst, with its mode.
// Nothing is synced.
func CopyFile(fsys FS, src, dst string) error {
	fi, err := fsys.Lstat(src)
	if err != nil {
		return err
	}
	b, err := fsys.ReadFile(src, 0)
	if err != nil {
		return err
	}
	return fsys.Create(dst, b, fi.Mode().Perm())
}

// SweepSymlink removes what interrupted swaps of the link dir/base left:
// renameio stages a swap in a hidden directory named after the link and
// random digits, holding the new link as tmp.symlink, and removes it when
// done; a crash in between leaves it. Such leftovers are unused, and their
// removal is not synced.
func SweepSymlink(fsys FS, dir, base string) error {
	entries, err := fsys.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	for _, e := range entries {
		rest, ok := strings.CutPrefix(e.Name(), "."+base)
		if !ok || !e.IsDir() || rest == "" || strings.Trim(rest, "0123456789") != "" {
			continue
		}
		p := path.Join(dir, e.Name())
		sub, err := fsys.ReadDir(p)
		if err != nil || len(sub) > 1 || (len(sub) == 1 && sub[0].Name() != "tmp.symlink") {
			continue
		}
		if err := fsys.RemoveAll(p); err != nil {
			return err
		}
	}
	return nil
}

// SweepTemp removes the temporary files an interrupted atomic write left
// in dir: renameio names them after the file, with a leading dot and
// random digits (".state123456"). Only leftovers of the files named in
// bases are removed; with no bases, those of any file.
func SweepTemp(fsys FS, dir string, bases ...string) error {
	entries, err := fsys.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	for _, e := range entries {
		if !e.Type().IsRegular() {
			continue
		}
		name := e.Name()
		if !strings.HasPrefix(name, ".") {
			continue
		}
		stem := strings.TrimRight(name, "-0123456789")
		if stem == name || stem == "." {
			continue
		}
		if len(bases) > 0 && !slices.Contains(bases, stem[1:]) {
			continue
		}
		if err := fsys.Remove(path.Join(dir, name)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
	}
	return nil
}

// Kind names a file mode's type for messages.
func Kind(m fs.FileMode) string {
	switch {
	case m&fs.ModeSymlink != 0:
		return "symbolic link"
	case m.IsDir():
		return "directory"
	case m.IsRegular():
		return "regular file"
	case m&fs.ModeNamedPipe != 0:
		return "named pipe"
	case m&fs.ModeSocket != 0:
		return "socket"
	case m&fs.ModeDevice != 0:
		return "device"
	}
	return "special file"
}
