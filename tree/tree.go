// Package tree owns the system directory of one owner: the system state file
// (format stamp, start order, current tree), the owner lock, and the trees.
//
// A tree is stored copy-on-write. tree/NAME is a symbolic link to a hidden
// generation directory tree/.NAME.GEN holding the tree in its format and its
// compiled database. A change writes a whole new generation beside the old
// one, makes it durable, then swaps the link in one rename: a reader, a crash
// or a supervisor sees the old tree or the new one, never a mix, and the old
// generation stays intact for as long as a live database still points into
// it.
package tree

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/treeshift/treeshift/format"
	"github.com/treeshift/treeshift/internal/compile"
	"github.com/treeshift/treeshift/internal/durable"
	"github.com/treeshift/treeshift/internal/fserr"
	"github.com/treeshift/treeshift/internal/model"
)

const (
	stateName = "state"
	treesName = "tree"
	lockName  = "lock"
)

// Store is an owner's system directory.
type Store struct {
	// Dir is the directory's path as the process opens it.
	Dir string
}

// Open returns the store at dir; nothing is read or created until used.
func Open(dir string) *Store { return &Store{Dir: dir} }

// Tree is a tree as loaded from its current generation.
type Tree struct {
	*model.Tree
	// Format is the version the generation is written in.
	Format int
	// Gen is the generation number; Dir its directory.
	Gen int
	Dir string
}

// CompiledDir is the generation's compiled database, where the live link of
// an initialized tree points.
func (t *Tree) CompiledDir() string { return filepath.Join(t.Dir, compile.Dir) }

// NotFoundError reports a tree that does not exist.
type NotFoundError struct{ Name string }

func (e *NotFoundError) Error() string { return fmt.Sprintf("tree %s does not exist", e.Name) }

func (s *Store) treesDir() string { return filepath.Join(s.Dir, treesName) }

// Pointer is the path of the link that names tree name's current generation.
func (s *Store) Pointer(name string) string { return filepath.Join(s.treesDir(), name) }

// GenDir is the directory of generation gen of tree name.
func (s *Store) GenDir(name string, gen int) string {
	return filepath.Join(s.treesDir(), "."+name+"."+strconv.Itoa(gen))
}

// Names lists the trees of the store, sorted.
func (s *Store) Names() ([]string, error) {
	entries, err := os.ReadDir(s.treesDir())
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", s.treesDir(), unwrap(err))
	}
	var names []string
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), ".") {
			continue
		}
		if e.Type()&fs.ModeSymlink == 0 {
			return nil, fmt.Errorf("%s: expected a link to a tree generation, found a %s", filepath.Join(s.treesDir(), e.Name()), kind(e.Type()))
		}
		names = append(names, e.Name())
	}
	return names, nil
}

// Exists reports whether tree name exists.
func (s *Store) Exists(name string) (bool, error) {
	_, err := os.Lstat(s.Pointer(name))
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("%s: %w", s.Pointer(name), unwrap(err))
	}
	return true, nil
}

// current resolves the pointer of tree name to its generation number, checking
// that it is a link of the expected shape.
func (s *Store) current(name string) (int, error) {
	p := s.Pointer(name)
	target, err := os.Readlink(p)
	if errors.Is(err, fs.ErrNotExist) {
		return 0, &NotFoundError{Name: name}
	}
	if err != nil {
		if fi, serr := os.Lstat(p); serr == nil && fi.Mode()&fs.ModeSymlink == 0 {
			return 0, fmt.Errorf("%s: expected a link to a tree generation, found a %s", p, kind(fi.Mode()))
		}
		return 0, fmt.Errorf("%s: %w", p, unwrap(err))
	}
	prefix := "." + name + "."
	gen, err := strconv.Atoi(strings.TrimPrefix(target, prefix))
	if !strings.HasPrefix(target, prefix) || err != nil || gen < 1 {
		return 0, fmt.Errorf("%s: points to %q, expected %sN", p, target, prefix)
	}
	return gen, nil
}

// CurrentGen returns the generation tree name's link names, without
// reading the generation.
func (s *Store) CurrentGen(name string) (int, error) { return s.current(name) }

// PeekFormat returns the format version tree name's current generation
// states, without decoding it.
func (s *Store) PeekFormat(name string) (int, error) {
	gen, err := s.current(name)
	if err != nil {
		return 0, err
	}
	dir := s.GenDir(name, gen)
	v, err := format.Peek(newGenFS(dir))
	if err != nil {
		return 0, rebase(dir, err)
	}
	return v, nil
}

// Load reads tree name's current generation and decodes it. A generation
// holding a symbolic link, an unreadable file or a record that does not
// decode is refused with the path and what is wrong.
func (s *Store) Load(name string) (*Tree, error) {
	gen, err := s.current(name)
	if err != nil {
		return nil, err
	}
	return s.LoadGen(name, gen)
}

// LoadGen reads generation gen of tree name, current or not, with the same
// checks as Load.
func (s *Store) LoadGen(name string, gen int) (*Tree, error) {
	dir := s.GenDir(name, gen)
	fi, err := os.Lstat(dir)
	if err != nil {
		return nil, fmt.Errorf("%s: generation %d of tree %s: %w", dir, gen, name, unwrap(err))
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("%s: expected a tree generation directory, found a %s", dir, kind(fi.Mode()))
	}
	if err := noLinks(dir); err != nil {
		return nil, err
	}
	t, v, err := format.Read(newGenFS(dir))
	if err != nil {
		return nil, rebase(dir, err)
	}
	if t.Name != name {
		return nil, fmt.Errorf("%s: records tree %q, but is tree %s", dir, t.Name, name)
	}
	return &Tree{Tree: t, Format: v, Gen: gen, Dir: dir}, nil
}

// noLinks refuses a generation that holds symbolic links or special files
// where its records are: treeshift never writes them, so one means someone
// else did, and following it could read files outside the tree. The service
// directories are not walked, which on a large tree is most of the entries:
// no decoder reads them, and what copies them (a live temporary copy, an s6
// service directory) refuses anything but files and directories itself.
func noLinks(dir string) error {
	skip := filepath.Join(dir, compile.Dir, "servicedirs")
	return filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return fmt.Errorf("%s: %w", p, unwrap(err))
		}
		if !d.Type().IsRegular() && !d.IsDir() {
			return fmt.Errorf("%s: a %s where only files and directories belong", p, kind(d.Type()))
		}
		if p == skip && d.IsDir() {
			return filepath.SkipDir
		}
		return nil
	})
}

// rebase turns a format error naming a file inside dir into one naming the
// full path.
func rebase(dir string, err error) error {
	var fe *format.FileError
	if errors.As(err, &fe) {
		return &format.FileError{Name: filepath.Join(dir, fe.Name), Msg: fe.Msg}
	}
	var uv *format.UnknownVersionError
	if errors.As(err, &uv) {
		return &format.UnknownVersionError{Name: filepath.Join(dir, uv.Name), Version: uv.Version}
	}
	return err
}

// Stage writes t in format v as a new generation beside the current one, with
// its compiled service directories, and makes it durable. Nothing refers to
// the new generation until Commit.
func (s *Store) Stage(t *model.Tree, v int) (*Tree, error) {
	nt, err := s.StageUnsynced(t, v)
	if err != nil {
		return nil, err
	}
	// One filesystem sync makes every file and directory of the generation
	// durable before anything can point at it.
	if err := durable.SyncFS(nt.Dir); err != nil {
		s.RemoveGen(t.Name, nt.Gen)
		return nil, err
	}
	return nt, nil
}

// StageUnsynced is Stage without the final sync, for a caller that stages
// several generations and syncs the filesystem once (see Sync) before it
// commits any of them.
func (s *Store) StageUnsynced(t *model.Tree, v int) (*Tree, error) {
	if err := t.Validate(); err != nil {
		return nil, fmt.Errorf("tree %s: %w", t.Name, err)
	}
	c, err := format.Get(v)
	if err != nil {
		return nil, err
	}
	files, err := c.Encode(t)
	if err != nil {
		return nil, fmt.Errorf("tree %s: encode as format %d: %w", t.Name, v, err)
	}
	files = append(files, compile.ServiceDirs(t)...)
	if err := durable.MkdirAll(s.treesDir(), 0o755); err != nil {
		return nil, err
	}
	gen, err := s.nextGen(t.Name)
	if err != nil {
		return nil, err
	}
	dir := s.GenDir(t.Name, gen)
	if err := os.Mkdir(dir, 0o755); err != nil {
		return nil, fmt.Errorf("create %s: %w", dir, unwrap(err))
	}
	if err := writeFiles(dir, files); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	return &Tree{Tree: t, Format: v, Gen: gen, Dir: dir}, nil
}

// Sync makes every write under the system directory durable, and every
// rename: one filesystem sync instead of a sync per file and directory.
func (s *Store) Sync() error { return durable.SyncFS(s.Dir) }

// writeFiles writes files under dir, a directory it has just created, with
// the directories they need: each parent is made once, without the lookups
// os.MkdirAll makes to find out what exists.
func writeFiles(dir string, files []model.File) error {
	made := map[string]bool{dir: true}
	var mkdir func(d string) error
	mkdir = func(d string) error {
		if made[d] {
			return nil
		}
		if len(d) <= len(dir) {
			return fmt.Errorf("%s: not inside %s", d, dir)
		}
		if err := mkdir(filepath.Dir(d)); err != nil {
			return err
		}
		if err := os.Mkdir(d, 0o755); err != nil {
			return fmt.Errorf("create %s: %w", d, unwrap(err))
		}
		made[d] = true
		return nil
	}
	for _, f := range files {
		p := filepath.Join(dir, filepath.FromSlash(f.Name))
		if err := mkdir(filepath.Dir(p)); err != nil {
			return err
		}
		if err := durable.CreateFile(p, f.Data, f.Mode); err != nil {
			return fmt.Errorf("write %s: %w", p, unwrap(err))
		}
	}
	return nil
}

// nextGen returns one more than the highest generation of name on disk, so a
// new generation never reuses the directory of a live or leftover one.
func (s *Store) nextGen(name string) (int, error) {
	gens, err := s.Generations(name)
	if err != nil {
		return 0, err
	}
	if len(gens) == 0 {
		return 1, nil
	}
	return slices.Max(gens) + 1, nil
}

// Generations lists the generation numbers of tree name present on disk,
// current or not.
func (s *Store) Generations(name string) ([]int, error) {
	// Names only, unsorted: the directory holds every tree's generations,
	// and an update looks here once per tree.
	var entries []string
	d, err := os.Open(s.treesDir())
	if err == nil {
		entries, err = d.Readdirnames(-1)
		d.Close()
	}
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("read %s: %w", s.treesDir(), unwrap(err))
	}
	prefix := "." + name + "."
	var gens []int
	for _, e := range entries {
		if rest, ok := strings.CutPrefix(e, prefix); ok {
			if g, err := strconv.Atoi(rest); err == nil && g > 0 {
				gens = append(gens, g)
			}
		}
	}
	slices.Sort(gens)
	return gens, nil
}

// Commit makes generation t the current one of its tree, in one durable
// rename of the tree's link.
func (s *Store) Commit(t *Tree) error { return s.CommitGen(t.Name, t.Gen) }

// CommitGen makes generation gen of tree name the current one.
func (s *Store) CommitGen(name string, gen int) error {
	return durable.Symlink(filepath.Base(s.GenDir(name, gen)), s.Pointer(name))
}

// CommitUnsynced is Commit without the directory sync: the caller syncs the
// store (Sync) before relying on it.
func (s *Store) CommitUnsynced(t *Tree) error {
	return durable.SwapSymlink(filepath.Base(t.Dir), s.Pointer(t.Name))
}

// RemoveGen deletes generation gen of tree name. The caller guarantees that
// neither the tree's link nor a live database points into it. The removal
// is not synced: a generation that reappears after a crash is unused, and
// the next change collects it again.
func (s *Store) RemoveGen(name string, gen int) error {
	return durable.Discard(s.GenDir(name, gen))
}

// Destroy removes tree name: its link first, so the tree is gone in one step,
// then every generation.
func (s *Store) Destroy(name string) error {
	gens, err := s.Generations(name)
	if err != nil {
		return err
	}
	if err := durable.RemoveAll(s.Pointer(name)); err != nil {
		return err
	}
	for _, g := range gens {
		if err := s.RemoveGen(name, g); err != nil {
			return err
		}
	}
	return nil
}

func kind(m fs.FileMode) string {
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

func unwrap(err error) error { return fserr.Cause(err) }
