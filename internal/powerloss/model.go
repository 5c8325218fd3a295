package powerloss

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
)

// A file system, as the explorer models it: inodes, and directories mapping
// names to inodes. A state says which entries each directory holds and what
// each regular file contains; what an inode is (its type, its mode when
// made, a link's target) never changes once it is made, so it is kept once,
// in the trace, for every state.

// ino names an inode of the model (not the host's inode number).
type ino int

// rootIno is the root directory of the root (--root).
const rootIno ino = 0

type kind byte

const (
	kDir  kind = 'd'
	kFile kind = 'f'
	kLink kind = 'l'
)

// inode is what an inode is, fixed when it is made.
type inode struct {
	kind   kind
	perm   fs.FileMode
	target string // a link's
	fs     int    // the filesystem it lives on (an index into mounts)
	path   string // where it was made, for reports
}

// blob is a file's content, with its hash for fingerprints.
type blob struct {
	b   []byte
	sum [32]byte
}

func newBlob(b []byte) *blob { return &blob{b: b, sum: sha256.Sum256(b)} }

var emptyBlob = newBlob(nil)

// state is the entries of every directory and the content and mode of every
// regular file. A state made by clone shares the maps of its original until
// it writes to one (see dir).
type state struct {
	dirs  map[ino]map[string]ino
	data  map[ino]*blob
	perm  map[ino]fs.FileMode // a mode changed since the inode was made
	owned map[ino]bool        // dirs whose map this state may write
}

func newState() *state {
	return &state{dirs: map[ino]map[string]ino{}, data: map[ino]*blob{}, perm: map[ino]fs.FileMode{}, owned: map[ino]bool{}}
}

// clone returns a state that starts as s and shares its directory maps
// until it changes them.
func (s *state) clone() *state {
	c := &state{dirs: make(map[ino]map[string]ino, len(s.dirs)), data: make(map[ino]*blob, len(s.data)),
		perm: make(map[ino]fs.FileMode, len(s.perm)), owned: map[ino]bool{}}
	for k, v := range s.dirs {
		c.dirs[k] = v
	}
	for k, v := range s.data {
		c.data[k] = v
	}
	for k, v := range s.perm {
		c.perm[k] = v
	}
	return c
}

// dir returns directory d's entries for writing.
func (s *state) dir(d ino) map[string]ino {
	m := s.dirs[d]
	if !s.owned[d] {
		c := make(map[string]ino, len(m)+1)
		for k, v := range m {
			c[k] = v
		}
		s.dirs[d], s.owned[d] = c, true
		m = c
	}
	return m
}

// files is the inode table shared by a trace's states.
type files struct {
	inodes []inode
	mounts []string // mounts[0] is "/"; the others are paths inside the root
}

func (f *files) add(n inode) ino {
	f.inodes = append(f.inodes, n)
	return ino(len(f.inodes) - 1)
}

// fsOf returns the filesystem holding path p: the longest mount it is under.
func (f *files) fsOf(p string) int {
	best, n := 0, 0
	for i, m := range f.mounts {
		if (p == m || m == "/" || strings.HasPrefix(p, m+"/")) && len(m) > n {
			best, n = i, len(m)
		}
	}
	return best
}

var errNotFound = errors.New("not in the model")

// lookup resolves p (a clean absolute path inside the root) in s, without
// following links; it returns the inode, its directory and its name.
func (s *state) lookup(p string) (n, dir ino, name string, err error) {
	if p == "/" {
		return rootIno, rootIno, "", nil
	}
	cur := rootIno
	parts := strings.Split(strings.TrimPrefix(p, "/"), "/")
	for i, c := range parts {
		entries, ok := s.dirs[cur]
		if !ok {
			return 0, 0, "", fmt.Errorf("%s: %w (not a directory on the way)", p, errNotFound)
		}
		next, ok := entries[c]
		if !ok {
			return 0, cur, c, fmt.Errorf("%s: %w", p, errNotFound)
		}
		if i == len(parts)-1 {
			return next, cur, c, nil
		}
		cur = next
	}
	panic("unreachable")
}

// parent resolves p's directory, which must exist, and returns it and p's
// name in it.
func (s *state) parent(p string) (ino, string, error) {
	d, _, _, err := s.lookup(path.Dir(p))
	if err != nil {
		return 0, "", err
	}
	if _, ok := s.dirs[d]; !ok {
		return 0, "", fmt.Errorf("%s: not a directory", path.Dir(p))
	}
	return d, path.Base(p), nil
}

// scan reads the host directory root into a state: the durable state a
// recorded run starts from. Hard links among its files are kept as one
// inode.
func scan(root string, f *files) (*state, error) {
	s := newState()
	byHost := map[uint64]ino{}
	fi, err := os.Lstat(root)
	if err != nil {
		return nil, err
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("%s: not a directory", root)
	}
	f.inodes = f.inodes[:0]
	f.add(inode{kind: kDir, perm: fi.Mode().Perm() | fi.Mode()&fs.ModeSticky, fs: 0, path: "/"})
	s.dirs[rootIno] = map[string]ino{}
	var walk func(host, p string, d ino) error
	walk = func(host, p string, d ino) error {
		entries, err := os.ReadDir(host)
		if err != nil {
			return err
		}
		for _, e := range entries {
			h, q := filepath.Join(host, e.Name()), path.Join(p, e.Name())
			fi, err := os.Lstat(h)
			if err != nil {
				return err
			}
			mode := fi.Mode()
			n := inode{perm: mode.Perm() | mode&fs.ModeSticky, fs: f.fsOf(q), path: q}
			st, _ := fi.Sys().(*syscall.Stat_t)
			switch {
			case mode.IsDir():
				n.kind = kDir
				id := f.add(n)
				s.dirs[d][e.Name()] = id
				s.dirs[id] = map[string]ino{}
				if err := walk(h, q, id); err != nil {
					return err
				}
			case mode.IsRegular():
				if st != nil && st.Nlink > 1 {
					if id, ok := byHost[st.Ino]; ok {
						s.dirs[d][e.Name()] = id
						continue
					}
				}
				b, err := os.ReadFile(h)
				if err != nil {
					return err
				}
				n.kind = kFile
				id := f.add(n)
				if st != nil && st.Nlink > 1 {
					byHost[st.Ino] = id
				}
				s.dirs[d][e.Name()] = id
				s.data[id] = newBlob(b)
			case mode&fs.ModeSymlink != 0:
				t, err := os.Readlink(h)
				if err != nil {
					return err
				}
				n.kind, n.target = kLink, t
				s.dirs[d][e.Name()] = f.add(n)
			default:
				return fmt.Errorf("%s: a %v, which the model does not hold", h, mode.Type())
			}
		}
		return nil
	}
	if err := walk(root, "/", rootIno); err != nil {
		return nil, err
	}
	return s, nil
}

// walk visits every path reachable from the root in s, sorted, parents
// first.
func (s *state) walk(f *files, visit func(p string, n ino, in inode)) {
	var rec func(p string, d ino)
	rec = func(p string, d ino) {
		entries := s.dirs[d]
		names := make([]string, 0, len(entries))
		for name := range entries {
			names = append(names, name)
		}
		slices.Sort(names)
		for _, name := range names {
			n := entries[name]
			q := path.Join(p, name)
			in := f.inodes[n]
			visit(q, n, in)
			if in.kind == kDir {
				rec(q, n)
			}
		}
	}
	rec("/", rootIno)
}

// modeOf is n's mode in s.
func (s *state) modeOf(f *files, n ino) fs.FileMode {
	if m, ok := s.perm[n]; ok {
		return m
	}
	return f.inodes[n].perm
}

// contentOf is file n's content in s: what was last made durable of it, or
// nothing.
func (s *state) contentOf(n ino) *blob {
	if b, ok := s.data[n]; ok {
		return b
	}
	return emptyBlob
}

// fingerprint identifies what s holds, reachable from the root: two states
// with one fingerprint recover alike.
func (s *state) fingerprint(f *files) [32]byte {
	h := sha256.New()
	s.walk(f, func(p string, n ino, in inode) {
		fmt.Fprintf(h, "%s\x00%c%o\x00", p, in.kind, s.modeOf(f, n))
		switch in.kind {
		case kFile:
			h.Write(s.contentOf(n).sum[:])
		case kLink:
			h.Write([]byte(in.target))
		}
		h.Write([]byte{0})
	})
	var out [32]byte
	h.Sum(out[:0])
	return out
}

// describe lists what s holds, a line a path, for comparing a model with
// the disk.
func (s *state) describe(f *files) string {
	var b strings.Builder
	s.walk(f, func(p string, n ino, in inode) {
		fmt.Fprintf(&b, "%s %c %04o", p, in.kind, s.modeOf(f, n))
		switch in.kind {
		case kFile:
			fmt.Fprintf(&b, " %x", s.contentOf(n).sum[:6])
		case kLink:
			fmt.Fprintf(&b, " -> %s", in.target)
		}
		b.WriteByte('\n')
	})
	return b.String()
}

// materialize writes s into the empty host directory dir: directories,
// files with their content, links, and hard links for files with several
// names. Modes are set last, deepest first, so a directory that denies
// writing is still filled.
func (s *state) materialize(f *files, dir string) error {
	first := map[ino]string{}
	type chmod struct {
		host string
		mode fs.FileMode
	}
	var modes []chmod
	var err error
	s.walk(f, func(p string, n ino, in inode) {
		if err != nil {
			return
		}
		host := filepath.Join(dir, p)
		switch in.kind {
		case kDir:
			err = os.Mkdir(host, 0o700)
			modes = append(modes, chmod{host, s.modeOf(f, n)})
		case kFile:
			if prev, ok := first[n]; ok {
				err = os.Link(prev, host)
				return
			}
			first[n] = host
			err = os.WriteFile(host, s.contentOf(n).b, 0o600)
			modes = append(modes, chmod{host, s.modeOf(f, n)})
		case kLink:
			err = os.Symlink(in.target, host)
		}
	})
	if err != nil {
		return err
	}
	modes = append(modes, chmod{dir, s.modeOf(f, rootIno)})
	for i := len(modes) - 1; i >= 0; i-- {
		if err := os.Chmod(modes[i].host, modes[i].mode); err != nil {
			return err
		}
	}
	return nil
}
