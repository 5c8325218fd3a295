package durable

import (
	"bytes"
	"errors"
	"io"
	"io/fs"
	"path"
)

// SubFS is the directory dir of fsys as an io/fs file system, for the format
// decoders: ReadFile reads regular files only (a link or a FIFO where a
// record belongs is an error) of at most max bytes each; Stat does not
// follow links. Errors name the file relative to dir, as the decoders
// report it.
func SubFS(fsys FS, dir string, max int64) fs.FS { return subFS{fsys, dir, max} }

type subFS struct {
	fsys FS
	dir  string
	max  int64
}

func (s subFS) full(op, name string) (string, error) {
	if !fs.ValidPath(name) {
		return "", &fs.PathError{Op: op, Path: name, Err: fs.ErrInvalid}
	}
	if name == "." {
		return s.dir, nil
	}
	return path.Join(s.dir, name), nil
}

// rel restates err for name: the decoders name files relative to the tree.
func rel(op, name string, err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return &fs.PathError{Op: op, Path: name, Err: pe.Err}
	}
	return &fs.PathError{Op: op, Path: name, Err: err}
}

func (s subFS) ReadFile(name string) ([]byte, error) {
	p, err := s.full("open", name)
	if err != nil {
		return nil, err
	}
	b, err := s.fsys.ReadFile(p, s.max)
	if err != nil {
		return nil, rel("open", name, err)
	}
	return b, nil
}

func (s subFS) ReadDir(name string) ([]fs.DirEntry, error) {
	p, err := s.full("open", name)
	if err != nil {
		return nil, err
	}
	entries, err := s.fsys.ReadDir(p)
	if err != nil {
		return nil, rel("open", name, err)
	}
	return entries, nil
}

func (s subFS) Stat(name string) (fs.FileInfo, error) {
	p, err := s.full("stat", name)
	if err != nil {
		return nil, err
	}
	fi, err := s.fsys.Lstat(p)
	if err != nil {
		return nil, rel("stat", name, err)
	}
	return fi, nil
}

// Open gives the whole of a regular file, read at once, or a directory
// that can be listed: what fs.ReadFile, fs.ReadDir and fs.Stat fall back
// on.
func (s subFS) Open(name string) (fs.File, error) {
	fi, err := s.Stat(name)
	if err != nil {
		return nil, err
	}
	if fi.IsDir() {
		entries, err := s.ReadDir(name)
		if err != nil {
			return nil, err
		}
		return &subDir{fi: fi, entries: entries}, nil
	}
	b, err := s.ReadFile(name)
	if err != nil {
		return nil, err
	}
	return &subFile{fi: fi, r: bytes.NewReader(b)}, nil
}

type subFile struct {
	fi fs.FileInfo
	r  *bytes.Reader
}

func (f *subFile) Stat() (fs.FileInfo, error) { return f.fi, nil }
func (f *subFile) Read(b []byte) (int, error) { return f.r.Read(b) }
func (f *subFile) Close() error               { return nil }

type subDir struct {
	fi      fs.FileInfo
	entries []fs.DirEntry
}

func (d *subDir) Stat() (fs.FileInfo, error) { return d.fi, nil }
func (d *subDir) Read([]byte) (int, error)   { return 0, io.EOF }
func (d *subDir) Close() error               { return nil }
func (d *subDir) ReadDir(n int) ([]fs.DirEntry, error) {
	if n <= 0 {
		e := d.entries
		d.entries = nil
		return e, nil
	}
	if len(d.entries) == 0 {
		return nil, io.EOF
	}
	n = min(n, len(d.entries))
	e := d.entries[:n]
	d.entries = d.entries[n:]
	return e, nil
}
