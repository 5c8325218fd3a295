// Package tree owns the system directory of one owner: the system state file
// (format stamp, start order, current tree), the owner lock, the journal
// entries and live records, tagged copies, and the trees.
//
// A tree is stored copy-on-write. tree/NAME is a symbolic link to a hidden
// generation directory tree/.NAME.GEN holding the tree in its format and its
// compiled database. A change writes a whole new generation beside the old
// one, makes it durable, then swaps the link in one rename: a reader, a crash
// or a supervisor sees the old tree or the new one, never a mix, and the old
// generation stays intact for as long as a live database still points into
// it.
//
// Every file is read and written through a durable.FS, so no symbolic link
// below the system directory is followed; the names this package gives its
// files are exported, and no other package spells them.
package tree

import (
	"errors"
	"fmt"
	"io/fs"
	"path"
	"slices"
	"strconv"
	"strings"

	"github.com/treeshift/treeshift/format"
	"github.com/treeshift/treeshift/internal/compile"
	"github.com/treeshift/treeshift/internal/durable"
	"github.com/treeshift/treeshift/internal/model"
)

// On-disk names in the system directory.
const (
	// StateName is the system state file.
	StateName = "state"
	// TreesName is the directory of tree links and generations.
	TreesName = "tree"
	// LockName is the owner lock.
	LockName = "lock"
	// JournalName is the directory of journal entries.
	JournalName = "journal"
	// LiveName is the directory of live records.
	LiveName = "live"
	// TaggedName is the directory of tagged copies.
	TaggedName = "tagged"
)

// maxRecordFile bounds what a decoder is given of one file, whatever the
// format's own limits: a file this large is not a record treeshift wrote.
const maxRecordFile = 256 << 20

// Store is an owner's system directory.
type Store struct {
	// FS is where it is read and written; Dir its path inside the root.
	FS  durable.FS
	Dir string
}

// Open returns the store at dir (inside fsys's root); nothing is read or
// created until used.
func Open(fsys durable.FS, dir string) *Store { return &Store{FS: fsys, Dir: path.Clean(dir)} }

// Host is dir's path on the host, for messages.
func (s *Store) Host(p string) string { return s.FS.Host(p) }

// Tree is a tree as loaded from one of its generations.
type Tree struct {
	*model.Tree
	// Format is the version the generation is written in.
	Format int
	// Gen is the generation number; Dir its directory (inside the root).
	Gen int
	Dir string
}

// CompiledDir is the generation's compiled database, where the live link of
// an initialized tree points.
func (t *Tree) CompiledDir() string { return path.Join(t.Dir, compile.Dir) }

// NotFoundError reports a tree that does not exist.
type NotFoundError struct{ Name string }

func (e *NotFoundError) Error() string { return fmt.Sprintf("tree %s does not exist", e.Name) }

// TreesDir is the directory of tree links and generations.
func (s *Store) TreesDir() string { return path.Join(s.Dir, TreesName) }

// Pointer is the path of the link that names tree name's current generation.
func (s *Store) Pointer(name string) string { return path.Join(s.TreesDir(), name) }

// GenDir is the directory of generation gen of tree name.
func (s *Store) GenDir(name string, gen int) string {
	return path.Join(s.TreesDir(), "."+name+"."+strconv.Itoa(gen))
}

// CompiledDir is the compiled database of generation gen of tree name.
func (s *Store) CompiledDir(name string, gen int) string {
	return path.Join(s.GenDir(name, gen), compile.Dir)
}

// Names lists the trees of the store, sorted. An entry that is not a tree
// link, or whose name is not a valid tree name, is an error naming it.
func (s *Store) Names() ([]string, error) {
	entries, err := s.FS.ReadDir(s.TreesDir())
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var names []string
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), ".") {
			continue
		}
		p := path.Join(s.TreesDir(), e.Name())
		if e.Type()&fs.ModeSymlink == 0 {
			return nil, fmt.Errorf("%s: expected a link to a tree generation, found a %s", s.Host(p), durable.Kind(e.Type()))
		}
		if err := model.CheckName(e.Name()); err != nil {
			return nil, fmt.Errorf("%s: not a tree: %v", s.Host(p), err)
		}
		names = append(names, e.Name())
	}
	return names, nil
}

// Exists reports whether tree name exists.
func (s *Store) Exists(name string) (bool, error) {
	if err := model.CheckName(name); err != nil {
		return false, err
	}
	return durable.Exists(s.FS, s.Pointer(name))
}

// CurrentGen returns the generation tree name's link names, without reading
// the generation; the link must be of the expected shape.
func (s *Store) CurrentGen(name string) (int, error) {
	if err := model.CheckName(name); err != nil {
		return 0, err
	}
	p := s.Pointer(name)
	target, err := s.FS.Readlink(p)
	if errors.Is(err, fs.ErrNotExist) {
		return 0, &NotFoundError{Name: name}
	}
	if err != nil {
		if fi, serr := s.FS.Lstat(p); serr == nil && fi.Mode()&fs.ModeSymlink == 0 {
			return 0, fmt.Errorf("%s: expected a link to a tree generation, found a %s", s.Host(p), durable.Kind(fi.Mode()))
		}
		return 0, err
	}
	prefix := "." + name + "."
	gen, err := strconv.Atoi(strings.TrimPrefix(target, prefix))
	if !strings.HasPrefix(target, prefix) || err != nil || gen < 1 {
		return 0, fmt.Errorf("%s: points to %q, expected %sN", s.Host(p), target, prefix)
	}
	return gen, nil
}

// PeekFormat returns the format version tree name's current generation
// states, without decoding it.
func (s *Store) PeekFormat(name string) (int, error) {
	gen, err := s.CurrentGen(name)
	if err != nil {
		return 0, err
	}
	dir := s.GenDir(name, gen)
	v, err := format.Peek(durable.SubFS(s.FS, dir, maxRecordFile))
	if err != nil {
		return 0, s.rebase(dir, err)
	}
	return v, nil
}

// Load reads tree name's current generation and decodes it.
func (s *Store) Load(name string) (*Tree, error) {
	gen, err := s.CurrentGen(name)
	if err != nil {
		return nil, err
	}
	return s.LoadGen(name, gen)
}

// LoadGen reads generation gen of tree name, current or not. A generation
// holding a symbolic link where a record belongs, an unreadable file or a
// record that does not decode is refused with the path and what is wrong.
func (s *Store) LoadGen(name string, gen int) (*Tree, error) {
	if err := model.CheckName(name); err != nil {
		return nil, err
	}
	dir := s.GenDir(name, gen)
	fi, err := s.FS.Lstat(dir)
	if err != nil {
		return nil, fmt.Errorf("generation %d of tree %s: %w", gen, name, err)
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("%s: expected a tree generation directory, found a %s", s.Host(dir), durable.Kind(fi.Mode()))
	}
	if err := s.noLinks(dir); err != nil {
		return nil, err
	}
	t, v, err := format.Read(durable.SubFS(s.FS, dir, maxRecordFile))
	if err != nil {
		return nil, s.rebase(dir, err)
	}
	if t.Name != name {
		return nil, fmt.Errorf("%s: records tree %q, but is tree %s", s.Host(dir), t.Name, name)
	}
	return &Tree{Tree: t, Format: v, Gen: gen, Dir: dir}, nil
}

// noLinks refuses a generation that holds symbolic links or special files
// where its records are: treeshift never writes them, so one means someone
// else did. The service directories are not walked, which on a large tree
// is most of the entries: no decoder reads them, and what copies them (a
// live temporary copy, an s6 service directory) refuses anything but files
// and directories itself.
func (s *Store) noLinks(dir string) error {
	skip := path.Join(dir, compile.Dir, compile.ServiceDirsName)
	var walk func(d string) error
	walk = func(d string) error {
		entries, err := s.FS.ReadDir(d)
		if err != nil {
			return err
		}
		for _, e := range entries {
			p := path.Join(d, e.Name())
			switch {
			case e.IsDir():
				if p != skip {
					if err := walk(p); err != nil {
						return err
					}
				}
			case !e.Type().IsRegular():
				return fmt.Errorf("%s: a %s where only files and directories belong", s.Host(p), durable.Kind(e.Type()))
			}
		}
		return nil
	}
	return walk(dir)
}

// rebase turns a format error naming a file inside dir into one naming the
// host path.
func (s *Store) rebase(dir string, err error) error {
	host := s.Host(dir)
	var fe *format.FileError
	if errors.As(err, &fe) {
		return &format.FileError{Name: path.Join(host, fe.Name), Msg: fe.Msg}
	}
	var uv *format.UnknownVersionError
	if errors.As(err, &uv) {
		return &format.UnknownVersionError{Name: path.Join(host, uv.Name), Version: uv.Version}
	}
	var pe *fs.PathError
	if errors.As(err, &pe) && !path.IsAbs(pe.Path) {
		return &fs.PathError{Op: pe.Op, Path: path.Join(host, pe.Path), Err: pe.Err}
	}
	return err
}

// Stage writes t in format v as a new generation beside the current one,
// with its compiled service directories: generation gen, or with gen 0 the
// one after the highest on disk. Nothing is synced, and nothing refers to
// the new generation until Commit: the caller syncs (Sync) in between,
// once for every generation it stages.
func (s *Store) Stage(t *model.Tree, v, gen int) (*Tree, error) {
	if err := t.Validate(); err != nil {
		return nil, fmt.Errorf("tree %s: %w", t.Name, err)
	}
	c, err := format.Get(v)
	if err != nil {
		return nil, err
	}
	files, err := c.Encode(t)
	if err != nil {
		return nil, fmt.Errorf("tree %s: encode as format %s: %w", t.Name, format.Name(v), err)
	}
	files = append(files, compile.ServiceDirs(t)...)
	if err := durable.MkdirAll(s.FS, s.TreesDir(), 0o755, true); err != nil {
		return nil, err
	}
	if gen == 0 {
		if gen, err = s.nextGen(t.Name); err != nil {
			return nil, err
		}
	}
	dir := s.GenDir(t.Name, gen)
	entries, err := entriesOf(files)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", s.Host(dir), err)
	}
	if err := s.FS.Build(dir, 0o755, entries); err != nil {
		s.FS.RemoveAll(dir)
		return nil, err
	}
	return &Tree{Tree: t, Format: v, Gen: gen, Dir: dir}, nil
}

// Sync makes every write and rename under the system directory durable: one
// filesystem sync instead of a sync per file and directory.
func (s *Store) Sync() error { return s.FS.SyncFS(s.Dir) }

// entriesOf lists the files of a generation as a Build makes them, each
// directory once, before what it holds.
func entriesOf(files []model.File) ([]durable.Entry, error) {
	made := map[string]bool{".": true}
	out := make([]durable.Entry, 0, len(files)*3/2)
	var mkdir func(d string)
	mkdir = func(d string) {
		if made[d] {
			return
		}
		mkdir(path.Dir(d))
		made[d] = true
		out = append(out, durable.Entry{Name: d, Mode: fs.ModeDir | 0o755})
	}
	for _, f := range files {
		if !fs.ValidPath(f.Name) || f.Name == "." {
			return nil, fmt.Errorf("%q: a file outside its generation", f.Name)
		}
		mkdir(path.Dir(f.Name))
		out = append(out, durable.Entry{Name: f.Name, Data: f.Data, Mode: f.Mode})
	}
	return out, nil
}

// nextGen returns one more than the highest generation of name on disk.
func (s *Store) nextGen(name string) (int, error) {
	l, err := s.List()
	if err != nil {
		return 0, err
	}
	return l.Next(name), nil
}

// Generations lists the generation numbers of tree name present on disk,
// current or not, sorted.
func (s *Store) Generations(name string) ([]int, error) {
	l, err := s.List()
	if err != nil {
		return nil, err
	}
	return l.Gens[name], nil
}

// TrashDir is where a transition moves what it no longer needs — old
// generations, and the private copies of live databases on the same
// filesystem — for the next change to remove (SweepTrash): a rename is one
// operation, a removal one per file, and a run's removals were a quarter of
// its time.
func (s *Store) TrashDir() string { return path.Join(s.Dir, trashName) }

const trashName = "trash"

// Trash moves p, a directory of the system directory's filesystem that
// nothing points at, into the trash as name, unsynced; if the trash holds
// a name already, p is removed instead.
func (s *Store) Trash(p, name string) error {
	dst := path.Join(s.TrashDir(), name)
	err := durable.MkdirAll(s.FS, s.TrashDir(), 0o700, false)
	if err == nil {
		var ok bool
		if ok, err = durable.Exists(s.FS, dst); err == nil && !ok {
			if err = s.FS.Rename(p, dst); err == nil {
				return nil
			}
		}
	}
	// A trash that cannot take it (a name there already, or the trash
	// itself unusable: made immutable, say) must not keep p: removed in
	// place, as before there was a trash.
	return s.FS.RemoveAll(p)
}

// TrashGen moves generation gen of tree name into the trash.
func (s *Store) TrashGen(name string, gen int) error {
	return s.Trash(s.GenDir(name, gen), name+"."+strconv.Itoa(gen))
}

// SweepTrash empties the trash, unsynced: nothing in it is used.
func (s *Store) SweepTrash() error { return s.FS.RemoveAll(s.TrashDir()) }

// Listing is what the trees directory holds, from one read of it: what a
// run over many trees consults instead of reading the directory again for
// each.
type Listing struct {
	// Links are the names of the tree links (not checked to be trees).
	Links []string
	// Gens maps a tree name to its generations on disk, sorted.
	Gens map[string][]int
	// Swaps maps a link name to the leftovers of interrupted swaps of it.
	Swaps map[string][]string
}

// List reads the trees directory once. A missing directory lists nothing.
func (s *Store) List() (*Listing, error) {
	l := &Listing{Gens: map[string][]int{}, Swaps: map[string][]string{}}
	entries, err := s.FS.ReadDir(s.TreesDir())
	if errors.Is(err, fs.ErrNotExist) {
		return l, nil
	}
	if err != nil {
		return nil, err
	}
	links := map[string]bool{}
	for _, e := range entries {
		if !strings.HasPrefix(e.Name(), ".") {
			links[e.Name()] = true
			l.Links = append(l.Links, e.Name())
		}
	}
	for _, e := range entries {
		rest, ok := strings.CutPrefix(e.Name(), ".")
		if !ok || !e.IsDir() {
			continue
		}
		if i := strings.LastIndexByte(rest, '.'); i > 0 {
			name, g := rest[:i], rest[i+1:]
			if gen, err := strconv.Atoi(g); err == nil && gen > 0 && strconv.Itoa(gen) == g {
				l.Gens[name] = append(l.Gens[name], gen)
				continue
			}
		}
		// renameio stages a swap of link NAME in .NAME followed by digits;
		// NAME may end in digits itself.
		for k := len(rest) - 1; k > 0 && rest[k] >= '0' && rest[k] <= '9'; k-- {
			if links[rest[:k]] {
				l.Swaps[rest[:k]] = append(l.Swaps[rest[:k]], path.Join(s.TreesDir(), e.Name()))
				break
			}
		}
	}
	for _, g := range l.Gens {
		slices.Sort(g)
	}
	return l, nil
}

// Next is the generation after the highest of tree name on disk, so a new
// generation never reuses the directory of a live or leftover one.
func (l *Listing) Next(name string) int {
	if g := l.Gens[name]; len(g) > 0 {
		return g[len(g)-1] + 1
	}
	return 1
}

// Commit makes generation gen of tree name the current one, in one rename
// of the tree's link. With synced, the rename is durable when Commit
// returns; otherwise the caller syncs the store (Sync) before relying on it.
func (s *Store) Commit(name string, gen int, synced bool) error {
	target := path.Base(s.GenDir(name, gen))
	if synced {
		return durable.SymlinkSynced(s.FS, target, s.Pointer(name))
	}
	return s.FS.SwapSymlink(target, s.Pointer(name))
}

// RemoveGen deletes generation gen of tree name. The caller guarantees that
// neither the tree's link nor a live database points into it. The removal
// is not synced: a generation that reappears after a crash is unused, and
// the next change collects it again.
func (s *Store) RemoveGen(name string, gen int) error {
	return s.FS.RemoveAll(s.GenDir(name, gen))
}

// Destroy removes tree name: its link first, durably, so the tree is gone in
// one step, then every generation.
func (s *Store) Destroy(name string) error {
	gens, err := s.Generations(name)
	if err != nil {
		return err
	}
	if err := durable.RemoveAllSynced(s.FS, s.Pointer(name)); err != nil {
		return err
	}
	for _, g := range gens {
		if err := s.RemoveGen(name, g); err != nil {
			return err
		}
	}
	return nil
}

// SweepOrphans removes the generations of trees that do not exist: what a
// tree creation interrupted before its link was made, or a destruction
// interrupted after its link was removed, left behind. Nothing points at
// them: a tree's live link is removed before its tree link.
func (s *Store) SweepOrphans() error {
	entries, err := s.FS.ReadDir(s.TreesDir())
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	links := map[string]bool{}
	for _, e := range entries {
		if !strings.HasPrefix(e.Name(), ".") {
			links[e.Name()] = true
		}
	}
	for _, e := range entries {
		rest, ok := strings.CutPrefix(e.Name(), ".")
		i := strings.LastIndexByte(rest, '.')
		if !ok || i < 0 || !e.IsDir() {
			continue
		}
		name, g := rest[:i], rest[i+1:]
		if gen, err := strconv.Atoi(g); err != nil || gen < 1 || strconv.Itoa(gen) != g || model.CheckName(name) != nil || links[name] {
			continue
		}
		if err := s.FS.RemoveAll(path.Join(s.TreesDir(), e.Name())); err != nil {
			return err
		}
	}
	return nil
}

// Sweep removes what interrupted changes left in the system directory:
// renameio's temporary files beside the state and journal entries, a state
// staged by a run that did not get to use it, and half-made link swaps
// beside tree links. Leftovers are unused; their removal is not synced.
func (s *Store) Sweep() error {
	if err := durable.SweepTemp(s.FS, s.Dir, StateName); err != nil {
		return err
	}
	if err := s.FS.RemoveAll(s.stagedStatePath()); err != nil {
		return err
	}
	if err := durable.SweepTemp(s.FS, s.journalDir()); err != nil {
		return err
	}
	l, err := s.List()
	if err != nil {
		return err
	}
	return s.SweepSwaps(l, l.Links...)
}

// SweepSwaps removes the leftovers of interrupted swaps of the tree links
// names, as listed in l: renameio stages a swap in a directory holding the
// new link alone, and removes it when done.
func (s *Store) SweepSwaps(l *Listing, names ...string) error {
	for _, n := range names {
		for _, p := range l.Swaps[n] {
			sub, err := s.FS.ReadDir(p)
			if err != nil || len(sub) > 1 || (len(sub) == 1 && sub[0].Name() != "tmp.symlink") {
				continue
			}
			if err := s.FS.RemoveAll(p); err != nil {
				return err
			}
		}
	}
	return nil
}
