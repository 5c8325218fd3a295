package durable

import (
	"bytes"
	"errors"
	"io"
	"io/fs"
	"os"
	"path"
	"slices"
	"strings"
	"sync"
	"time"
)

// Overlay is an FS that reads through to a base FS and keeps every change
// in memory: a dry run runs the real engine on one, so that every read,
// decode, conversion, encode and read-back happens as in the real run and
// nothing is written. Syncs do nothing. Files created by hard link or moved
// by a rename keep reading their data from the base, so a dry run does not
// copy what it only links.
type Overlay struct {
	base FS
	mu   sync.Mutex
	// nodes holds every path the overlay changed; a path not in it is as
	// the base has it, unless a parent was changed (see resolve).
	nodes map[string]*onode
	// kids lists, for each directory path, the names of its children in
	// nodes, so a listing need not scan every node.
	kids map[string]map[string]bool
}

type onode struct {
	kind   byte // 'f' file, 'd' directory, 'l' link, 'x' removed
	perm   fs.FileMode
	data   []byte // a file's content, unless src is set
	src    string // a file's or directory's content in the base, at src
	target string // a link's target
	mtime  time.Time
}

// NewOverlay returns an empty overlay on base.
func NewOverlay(base FS) *Overlay {
	return &Overlay{base: base, nodes: map[string]*onode{}, kids: map[string]map[string]bool{}}
}

// Host returns the base's host path of p.
func (o *Overlay) Host(p string) string { return o.base.Host(p) }

// Changed lists the paths the overlay changed, sorted: what the real run
// would have written or removed.
func (o *Overlay) Changed() []string {
	o.mu.Lock()
	defer o.mu.Unlock()
	var out []string
	for p := range o.nodes {
		out = append(out, p)
	}
	slices.Sort(out)
	return out
}

// set puts n at p. kids records p under each of its parents, whether the
// parent has a node or not, so that everything the overlay holds below a
// path can be found from it.
func (o *Overlay) set(p string, n *onode) {
	n.mtime = time.Now()
	o.nodes[p] = n
	for q := p; q != "/"; q = path.Dir(q) {
		dir, name := path.Dir(q), path.Base(q)
		if o.kids[dir] == nil {
			o.kids[dir] = map[string]bool{}
		}
		if o.kids[dir][name] {
			break
		}
		o.kids[dir][name] = true
	}
}

// drop forgets p's node and everything below it.
func (o *Overlay) drop(p string) {
	for k := range o.kids[p] {
		o.drop(path.Join(p, k))
	}
	delete(o.kids, p)
	delete(o.nodes, p)
	dir, name := path.Split(p)
	if m := o.kids[path.Clean(dir)]; m != nil {
		delete(m, name)
	}
}

// resolved is what p is in the overlay: a node, or a path in the base
// (src), or nothing.
type resolved struct {
	node *onode
	src  string // base path holding p, if no node
}

// resolve finds p. A changed directory on the way hides the base below it
// (a new one: nothing there) or redirects to where it came from (renamed).
func (o *Overlay) resolve(op, p string) (resolved, error) {
	p, err := Clean(p)
	if err != nil {
		return resolved{}, err
	}
	src := "/"
	cur := "/"
	parts := strings.Split(strings.TrimPrefix(p, "/"), "/")
	if p == "/" {
		parts = nil
	}
	for i, c := range parts {
		cur = path.Join(cur, c)
		if src != "" {
			src = path.Join(src, c)
		}
		n := o.nodes[cur]
		last := i == len(parts)-1
		if n == nil {
			continue
		}
		if last {
			return resolved{node: n}, nil
		}
		switch n.kind {
		case 'd':
			src = n.src // "" for a directory the overlay made
		case 'x':
			return resolved{}, pathError(op, o.Host(p), fs.ErrNotExist)
		default:
			return resolved{}, pathError(op, o.Host(p), errNotDir)
		}
	}
	if src == "" {
		return resolved{}, nil
	}
	return resolved{src: src}, nil
}

var errNotDir = errors.New("not a directory")

// kind returns what p is: 'f', 'd', 'l', or 0 when nothing is there.
func (o *Overlay) kind(op, p string) (byte, error) {
	r, err := o.resolve(op, p)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return 0, nil
		}
		return 0, err
	}
	if r.node != nil {
		if r.node.kind == 'x' {
			return 0, nil
		}
		return r.node.kind, nil
	}
	if r.src == "" {
		return 0, nil
	}
	if r.src == "/" {
		return 'd', nil // the root, which no FS can Lstat: it is its anchor
	}
	fi, err := o.base.Lstat(r.src)
	if errors.Is(err, fs.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	switch {
	case fi.IsDir():
		return 'd', nil
	case fi.Mode()&fs.ModeSymlink != 0:
		return 'l', nil
	}
	return 'f', nil
}

// Lstat describes p.
func (o *Overlay) Lstat(p string) (fs.FileInfo, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	r, err := o.resolve("lstat", p)
	if err != nil {
		return nil, err
	}
	if n := r.node; n != nil {
		switch {
		case n.kind == 'x':
			return nil, pathError("lstat", o.Host(p), fs.ErrNotExist)
		case n.kind == 'f' && n.src != "":
			fi, err := o.base.Lstat(n.src)
			if err != nil {
				return nil, err
			}
			return &oinfo{name: path.Base(p), size: fi.Size(), mode: n.perm, mtime: fi.ModTime()}, nil
		}
		return n.info(path.Base(p)), nil
	}
	if r.src == "" {
		return nil, pathError("lstat", o.Host(p), fs.ErrNotExist)
	}
	return o.base.Lstat(r.src)
}

func (n *onode) info(name string) fs.FileInfo {
	i := &oinfo{name: name, size: int64(len(n.data)), mode: n.perm, mtime: n.mtime}
	switch n.kind {
	case 'd':
		i.mode |= fs.ModeDir
	case 'l':
		i.mode = fs.ModeSymlink | 0o777
		i.size = int64(len(n.target))
	}
	return i
}

// oinfo describes a node; its owner is the process's user.
type oinfo struct {
	name  string
	size  int64
	mode  fs.FileMode
	mtime time.Time
}

func (i *oinfo) Name() string       { return i.name }
func (i *oinfo) Size() int64        { return i.size }
func (i *oinfo) Mode() fs.FileMode  { return i.mode }
func (i *oinfo) ModTime() time.Time { return i.mtime }
func (i *oinfo) IsDir() bool        { return i.mode.IsDir() }
func (i *oinfo) Sys() any           { return self{} }

type self struct{}

func (self) UID() int { return os.Getuid() }

// ReadFile reads the regular file p.
func (o *Overlay) ReadFile(p string, max int64) ([]byte, error) {
	o.mu.Lock()
	r, err := o.resolve("open", p)
	o.mu.Unlock()
	if err != nil {
		return nil, err
	}
	if n := r.node; n != nil {
		switch n.kind {
		case 'x':
			return nil, pathError("open", o.Host(p), fs.ErrNotExist)
		case 'l':
			return nil, pathError("open", o.Host(p), ErrSymlink)
		case 'd':
			return nil, pathError("open", o.Host(p), ErrNotRegular)
		}
		if n.src != "" {
			return o.base.ReadFile(n.src, max)
		}
		if max > 0 && int64(len(n.data)) > max {
			return nil, pathError("open", o.Host(p), &TooLargeError{Size: int64(len(n.data)), Max: max})
		}
		return bytes.Clone(n.data), nil
	}
	if r.src == "" {
		return nil, pathError("open", o.Host(p), fs.ErrNotExist)
	}
	return o.base.ReadFile(r.src, max)
}

// ReadDir lists p: the base's entries, less those removed, plus those made.
func (o *Overlay) ReadDir(p string) ([]fs.DirEntry, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	r, err := o.resolve("open", p)
	if err != nil {
		return nil, err
	}
	src := r.src
	if n := r.node; n != nil {
		switch n.kind {
		case 'd':
			src = n.src
		case 'x':
			return nil, pathError("open", o.Host(p), fs.ErrNotExist)
		default:
			return nil, pathError("open", o.Host(p), errNotDir)
		}
	} else if src == "" {
		return nil, pathError("open", o.Host(p), fs.ErrNotExist)
	}
	byName := map[string]fs.DirEntry{}
	if src != "" {
		entries, err := o.base.ReadDir(src)
		if err != nil && !(r.node != nil && errors.Is(err, fs.ErrNotExist)) {
			return nil, err
		}
		for _, e := range entries {
			byName[e.Name()] = e
		}
	}
	for name := range o.kids[p] {
		n := o.nodes[path.Join(p, name)]
		if n == nil {
			continue // a parent of nodes, itself as the base has it
		}
		if n.kind == 'x' {
			delete(byName, name)
			continue
		}
		byName[name] = fs.FileInfoToDirEntry(n.info(name))
	}
	out := make([]fs.DirEntry, 0, len(byName))
	for _, e := range byName {
		out = append(out, e)
	}
	slices.SortFunc(out, func(a, b fs.DirEntry) int { return strings.Compare(a.Name(), b.Name()) })
	return out, nil
}

// Readlink returns the target of link p.
func (o *Overlay) Readlink(p string) (string, error) {
	o.mu.Lock()
	r, err := o.resolve("readlink", p)
	o.mu.Unlock()
	if err != nil {
		return "", err
	}
	if n := r.node; n != nil {
		if n.kind != 'l' {
			if n.kind == 'x' {
				return "", pathError("readlink", o.Host(p), fs.ErrNotExist)
			}
			return "", pathError("readlink", o.Host(p), errors.New("not a symbolic link"))
		}
		return n.target, nil
	}
	if r.src == "" {
		return "", pathError("readlink", o.Host(p), fs.ErrNotExist)
	}
	return o.base.Readlink(r.src)
}

// fresh checks that p's parent is a directory and p does not exist, as a
// call creating p requires.
func (o *Overlay) fresh(op, p string) error {
	k, err := o.kind(op, path.Dir(p))
	if err != nil {
		return err
	}
	if k != 'd' {
		return pathError(op, o.Host(p), fs.ErrNotExist)
	}
	if k, err := o.kind(op, p); err != nil {
		return err
	} else if k != 0 {
		return pathError(op, o.Host(p), fs.ErrExist)
	}
	return nil
}

// Mkdir records a new directory.
func (o *Overlay) Mkdir(p string, perm fs.FileMode) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	if err := o.fresh("mkdir", p); err != nil {
		return err
	}
	o.drop(p)
	o.set(p, &onode{kind: 'd', perm: perm.Perm()})
	return nil
}

// Create records a new file.
func (o *Overlay) Create(p string, data []byte, perm fs.FileMode) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	if err := o.fresh("create", p); err != nil {
		return err
	}
	o.set(p, &onode{kind: 'f', perm: perm.Perm(), data: bytes.Clone(data)})
	return nil
}

// Symlink records a new link.
func (o *Overlay) Symlink(target, p string) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	if err := o.fresh("symlink", p); err != nil {
		return err
	}
	o.set(p, &onode{kind: 'l', target: target})
	return nil
}

// Link records p as another name of old's content.
func (o *Overlay) Link(old, p string) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	if err := o.fresh("link", p); err != nil {
		return err
	}
	// linkat(2) links what is there, a symbolic link included, and
	// refuses a directory.
	n, err := o.take("link", old)
	if err != nil {
		return err
	}
	if n.kind == 'd' {
		return pathError("link", o.Host(old), errors.New("operation not permitted"))
	}
	o.set(p, n)
	return nil
}

// take returns what is at p as a node that can be placed elsewhere.
func (o *Overlay) take(op, p string) (*onode, error) {
	r, err := o.resolve(op, p)
	if err != nil {
		return nil, err
	}
	if n := r.node; n != nil {
		if n.kind == 'x' {
			return nil, pathError(op, o.Host(p), fs.ErrNotExist)
		}
		c := *n
		return &c, nil
	}
	if r.src == "" {
		return nil, pathError(op, o.Host(p), fs.ErrNotExist)
	}
	fi, err := o.base.Lstat(r.src)
	if err != nil {
		return nil, err
	}
	switch {
	case fi.IsDir():
		return &onode{kind: 'd', perm: fi.Mode().Perm(), src: r.src}, nil
	case fi.Mode()&fs.ModeSymlink != 0:
		t, err := o.base.Readlink(r.src)
		if err != nil {
			return nil, err
		}
		return &onode{kind: 'l', target: t}, nil
	}
	return &onode{kind: 'f', perm: fi.Mode().Perm(), src: r.src}, nil
}

// remove marks p as gone.
func (o *Overlay) remove(p string) {
	o.drop(p)
	o.set(p, &onode{kind: 'x'})
}

// Rename moves old to p, with its children.
func (o *Overlay) Rename(old, p string) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	n, err := o.take("rename", old)
	if err != nil {
		return err
	}
	if old == p {
		return nil
	}
	if Under(p, old) {
		return pathError("rename", o.Host(p), errors.New("invalid argument"))
	}
	if k, err := o.kind("rename", path.Dir(p)); err != nil {
		return err
	} else if k != 'd' {
		return pathError("rename", o.Host(p), fs.ErrNotExist)
	}
	switch k, err := o.kind("rename", p); {
	case err != nil:
		return err
	case k == 'd' && n.kind != 'd':
		return pathError("rename", o.Host(p), errors.New("is a directory"))
	case k != 0 && k != 'd' && n.kind == 'd':
		return pathError("rename", o.Host(p), errNotDir)
	case k == 'd':
		o.mu.Unlock()
		entries, err := o.ReadDir(p)
		o.mu.Lock()
		if err != nil {
			return err
		}
		if len(entries) > 0 {
			return pathError("rename", o.Host(p), errors.New("directory not empty"))
		}
	}
	// The children the overlay holds under old move with it.
	moved := map[string]*onode{}
	var collect func(from, to string)
	collect = func(from, to string) {
		for k := range o.kids[from] {
			collect(path.Join(from, k), path.Join(to, k))
		}
		if from != old {
			if c := o.nodes[from]; c != nil {
				moved[to] = c
			}
		}
	}
	collect(old, p)
	o.remove(old)
	o.drop(p)
	o.set(p, n)
	for q, c := range moved {
		o.set(q, c)
	}
	return nil
}

// Remove marks a file, link or empty directory gone.
func (o *Overlay) Remove(p string) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	k, err := o.kind("remove", p)
	if err != nil {
		return err
	}
	if k == 0 {
		return pathError("remove", o.Host(p), fs.ErrNotExist)
	}
	if k == 'd' {
		o.mu.Unlock()
		entries, err := o.ReadDir(p)
		o.mu.Lock()
		if err != nil {
			return err
		}
		if len(entries) > 0 {
			return pathError("remove", o.Host(p), errors.New("directory not empty"))
		}
	}
	o.remove(p)
	return nil
}

// RemoveAll marks p and everything below it gone.
func (o *Overlay) RemoveAll(p string) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	if k, err := o.kind("remove", p); err != nil || k == 0 {
		return err
	}
	o.remove(p)
	return nil
}

// Chown is recorded as nothing: an overlay's entries belong to the process.
func (o *Overlay) Chown(p string, uid, gid int) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	if k, err := o.kind("chown", p); err != nil {
		return err
	} else if k == 0 {
		return pathError("chown", o.Host(p), fs.ErrNotExist)
	}
	return nil
}

// Chmod records p's new mode.
func (o *Overlay) Chmod(p string, perm fs.FileMode) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	n, err := o.take("chmod", p)
	if err != nil {
		return err
	}
	if n.kind == 'l' {
		return pathError("chmod", o.Host(p), ErrSymlink)
	}
	n.perm = perm.Perm()
	o.set(p, n) // children, if any, stay where they are
	return nil
}

// replace puts n at p, as an atomic replacement does.
func (o *Overlay) replace(op, p string, n *onode) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	if k, err := o.kind(op, path.Dir(p)); err != nil {
		return err
	} else if k != 'd' {
		return pathError(op, o.Host(p), fs.ErrNotExist)
	}
	if k, err := o.kind(op, p); err != nil {
		return err
	} else if k == 'd' {
		return pathError(op, o.Host(p), errors.New("is a directory"))
	}
	o.drop(p)
	o.set(p, n)
	return nil
}

// WriteFile records p's new content.
func (o *Overlay) WriteFile(p string, data []byte, perm fs.FileMode) error {
	return o.replace("write", p, &onode{kind: 'f', perm: perm.Perm(), data: bytes.Clone(data)})
}

// WriteStream records what write writes as p's new content.
func (o *Overlay) WriteStream(p string, perm fs.FileMode, write func(w io.Writer) error) error {
	var b bytes.Buffer
	if err := write(&b); err != nil {
		return pathError("write", o.Host(p), err)
	}
	return o.replace("write", p, &onode{kind: 'f', perm: perm.Perm(), data: b.Bytes()})
}

// SwapSymlink records p's new target.
func (o *Overlay) SwapSymlink(target, p string) error {
	return o.replace("symlink", p, &onode{kind: 'l', target: target})
}

// exists checks p is there, for the syncs.
func (o *Overlay) exists(op, p string) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	if k, err := o.kind(op, p); err != nil {
		return err
	} else if k == 0 {
		return pathError(op, o.Host(p), fs.ErrNotExist)
	}
	return nil
}

// Fsync does nothing: nothing is written.
func (o *Overlay) Fsync(p string) error { return o.exists("fsync", p) }

// SyncDir does nothing.
func (o *Overlay) SyncDir(p string) error { return o.exists("sync directory", p) }

// SyncFS does nothing.
func (o *Overlay) SyncFS(p string) error { return o.exists("sync filesystem of", p) }

// OpenLock opens the base's lock file read-only, never creating it: a dry
// run locks out writers while it reads, and writes nothing.
func (o *Overlay) OpenLock(p string, create bool) (LockFile, error) {
	return o.base.OpenLock(p, false)
}

// SameFS asks the base about the nearest paths it holds: what the overlay
// makes lands where the base's directory above it is.
func (o *Overlay) SameFS(a, b string) (bool, error) {
	return o.base.SameFS(o.baseAncestor(a), o.baseAncestor(b))
}

// baseAncestor is p or the nearest of its parents that the base has.
func (o *Overlay) baseAncestor(p string) string {
	for p != "/" {
		if _, err := o.base.Lstat(p); err == nil {
			return p
		}
		p = path.Dir(p)
	}
	return p
}

// CreateStream records what write writes as the new file p.
func (o *Overlay) CreateStream(p string, perm fs.FileMode, write func(w io.Writer) error) error {
	var b bytes.Buffer
	if err := write(&b); err != nil {
		return pathError("create", o.Host(p), err)
	}
	return o.Create(p, b.Bytes(), perm)
}

// Build records the directory and its entries one by one; links keep
// reading their data from the base.
func (o *Overlay) Build(dir string, perm fs.FileMode, entries []Entry) error {
	return BuildEach(o, dir, perm, entries)
}

// CloneTree records a clone made of links: nothing is copied.
func (o *Overlay) CloneTree(src, dst string) error { return CloneEach(o, src, dst) }
