// Package format encodes and decodes a whole tree — metadata, one resolve
// record per service, and the compiled database index — in each on-disk
// format version treeshift knows. Codecs are pure: they turn a model.Tree into
// files and back, and never touch the disk themselves, so the tree package
// decides where and how durably those files land.
//
// Every file a codec writes states its version, and every decoder rejects an
// unknown version, a checksum mismatch, truncation, garbage, a file over its
// size limit, text that is not UTF-8, or a tree whose parts disagree, with a
// *FileError naming the file; none panics and none falls back to a default.
package format

import (
	"errors"
	"fmt"
	"io/fs"
	"slices"
	"strconv"
	"strings"
	"testing/fstest"
	"unicode/utf8"

	"github.com/treeshift/treeshift/internal/fserr"
	"github.com/treeshift/treeshift/internal/model"
)

// File is one file of an encoded tree.
type File = model.File

// Codec reads and writes one format version.
type Codec interface {
	// Version is the format's number, stated in every file it writes.
	Version() int
	// Marker is the file whose presence identifies a tree of this version.
	Marker() string
	// Encode returns the files that represent t, in a stable order.
	Encode(t *model.Tree) ([]File, error)
	// Decode reads a tree from fsys, rooted at the tree directory.
	Decode(fsys fs.FS) (*model.Tree, error)
	// Peek returns the version the marker file states, reading as little
	// as it can; it does not validate the tree.
	Peek(fsys fs.FS) (int, error)
}

// Peek returns the format version a tree directory states, without
// decoding or validating the tree: enough to tell that a tree needs no
// conversion.
func Peek(fsys fs.FS) (int, error) {
	c, err := Detect(fsys)
	if err != nil {
		return 0, err
	}
	return c.Peek(fsys)
}

// FileError says what is wrong with which file of a tree. Name is relative to
// the tree directory; callers rebase it onto the real path.
type FileError struct {
	Name string
	Msg  string
}

func (e *FileError) Error() string { return e.Name + ": " + e.Msg }

func bad(name, format string, args ...any) error {
	return &FileError{Name: name, Msg: fmt.Sprintf(format, args...)}
}

// UnknownVersionError reports a file stating a version this binary does not
// know, typically written by a newer treeshift.
type UnknownVersionError struct {
	Name    string
	Version string
}

func (e *UnknownVersionError) Error() string {
	return fmt.Sprintf("%s: unknown format version %s (this treeshift knows %s)", e.Name, e.Version, knownList())
}

var codecs = []Codec{v1{}, v2{}, v3{}}

// legacy is version "" (0): trees written before records stated their
// version. It is not among All, the versions a tree is written in today,
// but Get and Detect know it.
var legacy Codec = v1{legacy: true}

// All returns every known codec, oldest first.
func All() []Codec { return slices.Clone(codecs) }

// Newest is the newest format version.
func Newest() int { return codecs[len(codecs)-1].Version() }

// Get returns the codec of version v.
func Get(v int) (Codec, error) {
	if v == 0 {
		return legacy, nil
	}
	for _, c := range codecs {
		if c.Version() == v {
			return c, nil
		}
	}
	return nil, fmt.Errorf("unknown format version %d (this treeshift knows %s)", v, knownList())
}

func knownList() string {
	s := ""
	for i, c := range codecs {
		if i > 0 {
			s += ", "
		}
		s += fmt.Sprint(c.Version())
	}
	return s
}

// Detect finds the codec whose marker file a tree directory holds. A directory
// holding none is not a tree treeshift can read.
func Detect(fsys fs.FS) (Codec, error) {
	var found []Codec
	for _, c := range codecs {
		if _, err := fs.Stat(fsys, c.Marker()); err == nil {
			found = append(found, c)
		} else if !errors.Is(err, fs.ErrNotExist) {
			return nil, bad(c.Marker(), "%v", err)
		}
	}
	// An unstamped tree has v1's marker, without v1's header.
	if len(found) == 1 && found[0].Marker() == legacy.Marker() {
		if line, err := metaLine(fsys); err == nil && !strings.HasPrefix(line, "format=") {
			return legacy, nil
		}
	}
	switch len(found) {
	case 0:
		names := ""
		for i, c := range codecs {
			if i > 0 {
				names += ", "
			}
			names += c.Marker()
		}
		return nil, bad(".", "no tree record found (looked for %s): not a tree, or a format newer than this treeshift", names)
	case 1:
		return found[0], nil
	}
	return nil, bad(".", "holds records of several formats (%s and %s)", found[0].Marker(), found[1].Marker())
}

// Read detects the format of the tree in fsys and decodes it, then checks the
// result's invariants and that its parts agree (see check), so every caller
// gets a tree treeshift could have written, or an error naming the file at
// fault.
func Read(fsys fs.FS) (*model.Tree, int, error) {
	c, err := Detect(fsys)
	if err != nil {
		return nil, 0, err
	}
	t, err := c.Decode(fsys)
	if err != nil {
		return nil, 0, err
	}
	if err := check(c, t); err != nil {
		return nil, 0, err
	}
	return t, c.Version(), nil
}

// unwrapFS drops the path wrapper: FileError names the file itself.
func unwrapFS(err error) error { return fserr.Cause(err) }

// invalidUTF8 returns the offset of the first byte of b that is not part of
// valid UTF-8, or -1.
func invalidUTF8(b []byte) int {
	if utf8.Valid(b) {
		return -1
	}
	for i := 0; i < len(b); {
		r, n := utf8.DecodeRune(b[i:])
		if r == utf8.RuneError && n == 1 {
			return i
		}
		i += n
	}
	return -1
}

// ReadFiles decodes a tree from its encoded files held in memory, with the
// same checks as Read: how a conversion verifies an intermediate format
// without writing it.
func ReadFiles(files []File) (*model.Tree, int, error) {
	fsys := fstest.MapFS{}
	for _, f := range files {
		fsys[f.Name] = &fstest.MapFile{Data: f.Data, Mode: f.Mode}
	}
	return Read(fsys)
}

// Name is how messages and directives write version v: "" for the
// unstamped version 0.
func Name(v int) string {
	if v == 0 {
		return `""`
	}
	return strconv.Itoa(v)
}
