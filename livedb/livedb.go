// Package livedb owns the live directory: for each owner and initialized tree,
// the compiled link that tells the supervisor which database is in use, the
// embedded backend's record of which services are up, the service
// directories supervisors run from, and the owner's supervisor record.
//
// The link is relative, so a system staged under --root is consistent both
// from outside and from inside the root. It is replaced in one rename and
// never removed while the tree is live, so it never dangles. Every path is
// read and written through a durable.FS, so no symbolic link below the live
// directory is followed, and the owner's part of it is checked (see Check)
// before anything there is used.
package livedb

import (
	"errors"
	"fmt"
	"io/fs"
	"path"
	"strconv"
	"strings"

	"github.com/treeshift/treeshift/internal/compile"
	"github.com/treeshift/treeshift/internal/durable"
	"github.com/treeshift/treeshift/internal/model"
)

// On-disk names in the live directory.
const (
	// TreeName is the directory of owners' areas.
	TreeName = "tree"
	// ScanName is the directory of owners' s6 scan directories.
	ScanName = "scandir"
	// LinkName is a live tree's link to its compiled database.
	LinkName = "compiled"
	// StateName is the embedded backend's directory of service states.
	StateName = "state"
	// ServiceDirsName is the directory of a live tree's service directories.
	ServiceDirsName = "servicedirs"
	// SupervisorName is the owner's supervisor record, in its area.
	SupervisorName = ".supervisor"
	// UnmonitoredName is the embedded backend's directory of services
	// whose supervision is paused.
	UnmonitoredName = "unmonitored"
)

// Dir is one owner's part of a live directory.
type Dir struct {
	// FS is where it is read and written; Path the live directory's path
	// inside the root.
	FS   durable.FS
	Path string
	UID  int
	// Trusted lists who besides root may own the shared directories (see
	// Check): the owner of the --root directory.
	Trusted []int
	// AreaHint is the command that makes the owner's area when the owner
	// cannot (scandir create --owner), for messages.
	AreaHint string
}

// Host is p's path on the host.
func (d Dir) Host(p string) string { return d.FS.Host(p) }

// Tree is the live part of one tree.
type Tree struct {
	Name string
	// Dir is LIVE/tree/UID/NAME, inside the root.
	Dir  string
	live Dir
}

// Tree returns the live part of tree name; nothing is read or created.
func (d Dir) Tree(name string) *Tree {
	return &Tree{Name: name, Dir: path.Join(d.Area(), name), live: d}
}

// Host is p's path on the host.
func (t *Tree) Host(p string) string { return t.live.FS.Host(p) }

// LinkPath is the path of the compiled link.
func (t *Tree) LinkPath() string { return path.Join(t.Dir, LinkName) }

// StateDir is where the embedded backend keeps service states: a transition
// watches it for writers other than itself.
func (t *Tree) StateDir() string { return path.Join(t.Dir, StateName) }

// Initialized reports whether the tree is live: its compiled link exists. A
// compiled entry that is not a link is an error: treeshift never makes one.
func (t *Tree) Initialized() (bool, error) {
	fi, err := t.live.FS.Lstat(t.LinkPath())
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	if fi.Mode()&fs.ModeSymlink == 0 {
		return false, fmt.Errorf("%s: expected a link to a compiled database, found a %s", t.Host(t.LinkPath()), durable.Kind(fi.Mode()))
	}
	return true, nil
}

// DanglingError reports a compiled link whose target is missing.
type DanglingError struct{ Link, Target string }

func (e *DanglingError) Error() string {
	return fmt.Sprintf("%s points to %s, which does not exist", e.Link, e.Target)
}

// Target returns the compiled database the link points to, as a clean path
// inside the root. It fails with a *DanglingError if the target is missing.
func (t *Tree) Target() (string, error) {
	raw, err := t.live.FS.Readlink(t.LinkPath())
	if err != nil {
		return "", err
	}
	target := raw
	if !path.IsAbs(target) {
		target = path.Join(t.Dir, target)
	}
	target = path.Clean(target)
	fi, err := t.live.FS.Lstat(target)
	if errors.Is(err, fs.ErrNotExist) {
		return "", &DanglingError{Link: t.Host(t.LinkPath()), Target: t.Host(target)}
	}
	if err != nil {
		return "", err
	}
	if !fi.IsDir() {
		return "", fmt.Errorf("%s points to %s, which is a %s, not a compiled database", t.Host(t.LinkPath()), t.Host(target), durable.Kind(fi.Mode()))
	}
	return target, nil
}

// Link points the compiled link at the database in directory compiled (a
// path inside the root), creating the live tree directory if needed, in
// one rename. With synced the change is durable when Link returns;
// otherwise the caller syncs the live directory (Dir.Sync) before relying
// on it.
func (t *Tree) Link(compiled string, synced bool) error {
	if err := t.live.Prepare(); err != nil {
		return err
	}
	if err := durable.MkdirAll(t.live.FS, t.Dir, 0o755, true); err != nil {
		return err
	}
	rel, err := relPath(t.Dir, compiled)
	if err != nil {
		return err
	}
	if synced {
		return durable.SymlinkSynced(t.live.FS, rel, t.LinkPath())
	}
	return t.live.FS.SwapSymlink(rel, t.LinkPath())
}

// relPath is target relative to dir, both clean absolute paths.
func relPath(dir, target string) (string, error) {
	d := strings.Split(strings.TrimPrefix(dir, "/"), "/")
	g := strings.Split(strings.TrimPrefix(target, "/"), "/")
	i := 0
	for i < len(d) && i < len(g) && d[i] == g[i] {
		i++
	}
	var out []string
	for range d[i:] {
		out = append(out, "..")
	}
	out = append(out, g[i:]...)
	if len(out) == 0 {
		return ".", nil
	}
	return strings.Join(out, "/"), nil
}

// TempDir is the private directory that holds a copy of the database in use
// while a transition runs: beside the live tree directory, so on the same
// filesystem, and hidden.
func (t *Tree) TempDir() string { return path.Join(path.Dir(t.Dir), "."+t.Name+".update") }

// TempCompiled is the copy of the database in TempDir.
func (t *Tree) TempCompiled() string { return path.Join(t.TempDir(), LinkName) }

// PrepareTemp fills a fresh TempDir (mode 0700) with a copy of the compiled
// database src and returns the copy's path. Files are hard links where the
// filesystem allows, since a compiled database is never modified in place,
// and byte copies otherwise. Nothing is synced: the caller syncs the live
// directory's filesystem (Dir.Sync) before pointing a link at the copy.
func (t *Tree) PrepareTemp(src string) (string, error) {
	if err := t.live.Prepare(); err != nil {
		return "", err
	}
	tmp := t.TempDir()
	if err := t.live.FS.RemoveAll(tmp); err != nil {
		return "", err
	}
	if err := t.live.FS.Mkdir(tmp, 0o700); err != nil {
		return "", err
	}
	dst := t.TempCompiled()
	if err := t.live.FS.CloneTree(src, dst); err != nil {
		t.live.FS.RemoveAll(tmp)
		return "", err
	}
	return dst, nil
}

// RemoveTemp deletes TempDir, if present, once no link points at it. The
// removal is not synced: a copy that reappears after a crash is unused, and
// the next transition replaces it.
func (t *Tree) RemoveTemp() error { return t.live.FS.RemoveAll(t.TempDir()) }

// MoveTemp moves TempDir, if there is one, with move (a rename into a
// trash on the same filesystem).
func (t *Tree) MoveTemp(move func(p, name string) error) error {
	if ok, err := durable.Exists(t.live.FS, t.TempDir()); err != nil || !ok {
		return err
	}
	return move(t.TempDir(), t.Name+".update")
}

// Sync makes every write and rename under the live directory durable.
func (d Dir) Sync() error {
	if ok, err := durable.Exists(d.FS, d.Path); err != nil || !ok {
		return err
	}
	return d.FS.SyncFS(d.Path)
}

// Remove deletes the live part of the tree, durably. The caller has made
// sure none of its services is up.
func (t *Tree) Remove() error {
	if ok, err := durable.Exists(t.live.FS, t.Dir); err != nil || !ok {
		return err
	}
	return durable.RemoveAllSynced(t.live.FS, t.Dir)
}

// Sweep removes what interrupted swaps of the compiled link left beside it.
func (t *Tree) Sweep() error { return durable.SweepSymlink(t.live.FS, t.Dir, LinkName) }

// States returns which services the embedded backend records as up. A
// service without a record is down.
func (t *Tree) States() (map[string]bool, error) {
	entries, err := t.live.FS.ReadDir(t.StateDir())
	if errors.Is(err, fs.ErrNotExist) {
		return map[string]bool{}, nil
	}
	if err != nil {
		return nil, err
	}
	up := map[string]bool{}
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), ".") {
			continue // a writer's temporary file
		}
		p := path.Join(t.StateDir(), e.Name())
		if err := model.CheckName(e.Name()); err != nil {
			return nil, fmt.Errorf("%s: %v", t.Host(p), err)
		}
		b, err := t.live.FS.ReadFile(p, 64)
		if err != nil {
			return nil, fmt.Errorf("read %s", durable.Describe(err))
		}
		switch string(b) {
		case "up\n":
			up[e.Name()] = true
		case "down\n":
			up[e.Name()] = false
		default:
			return nil, fmt.Errorf("%s: expected \"up\" or \"down\", found %q", t.Host(p), clip(string(b)))
		}
	}
	return up, nil
}

// Unmonitored returns the services the embedded backend records as
// unmonitored: an empty file each in UnmonitoredName.
func (t *Tree) Unmonitored() (map[string]bool, error) {
	dir := path.Join(t.Dir, UnmonitoredName)
	entries, err := t.live.FS.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return map[string]bool{}, nil
	}
	if err != nil {
		return nil, err
	}
	out := map[string]bool{}
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), ".") {
			continue
		}
		if err := model.CheckName(e.Name()); err != nil || !e.Type().IsRegular() {
			return nil, fmt.Errorf("%s: not a record of an unmonitored service", t.Host(path.Join(dir, e.Name())))
		}
		out[e.Name()] = true
	}
	return out, nil
}

// SetUnmonitored records svc as unmonitored, or not.
func (t *Tree) SetUnmonitored(svc string, unmonitored bool) error {
	if err := model.CheckName(svc); err != nil {
		return err
	}
	if err := t.live.Prepare(); err != nil {
		return err
	}
	dir := path.Join(t.Dir, UnmonitoredName)
	p := path.Join(dir, svc)
	if !unmonitored {
		if ok, err := durable.Exists(t.live.FS, p); err != nil || !ok {
			return err
		}
		return durable.RemoveAllSynced(t.live.FS, p)
	}
	if err := durable.MkdirAll(t.live.FS, dir, 0o755, true); err != nil {
		return err
	}
	return durable.WriteFileSynced(t.live.FS, p, nil, 0o644)
}

// SetState records service svc as up or down.
func (t *Tree) SetState(svc string, up bool) error {
	if err := model.CheckName(svc); err != nil {
		return err
	}
	if err := t.live.Prepare(); err != nil {
		return err
	}
	if err := durable.MkdirAll(t.live.FS, t.StateDir(), 0o755, true); err != nil {
		return err
	}
	v := "down\n"
	if up {
		v = "up\n"
	}
	return durable.WriteFileSynced(t.live.FS, path.Join(t.StateDir(), svc), []byte(v), 0o644)
}

func clip(s string) string {
	if len(s) > 40 {
		return s[:40] + "..."
	}
	return s
}

// ServiceDir is where a supervised service runs from while the tree is live:
// beside the compiled link, never inside the database it points at, so a
// switch of databases leaves running services alone.
func (t *Tree) ServiceDir(svc string) string { return path.Join(t.Dir, ServiceDirsName, svc) }

// PlaceServiceDir copies the compiled service directory of svc from the
// database compiled to ServiceDir(svc), with a "down" file so the
// supervisor leaves the service down until it is started. An existing
// directory is left as it is: a supervisor may be running from it.
func (t *Tree) PlaceServiceDir(svc, compiled string) (string, error) {
	if err := model.CheckName(svc); err != nil {
		return "", err
	}
	if err := t.live.Prepare(); err != nil {
		return "", err
	}
	fsys := t.live.FS
	dst := t.ServiceDir(svc)
	if ok, err := durable.Exists(fsys, dst); err != nil || ok {
		return dst, err
	}
	tmp := dst + ".new"
	if err := fsys.RemoveAll(tmp); err != nil {
		return "", err
	}
	if err := durable.MkdirAll(fsys, path.Dir(dst), 0o755, true); err != nil {
		return "", err
	}
	src := path.Join(compiled, compile.ServiceDirsName, svc)
	err := copyTree(fsys, src, tmp)
	if err == nil {
		err = fsys.Create(path.Join(tmp, "down"), nil, 0o644)
	}
	if err == nil {
		err = fsys.SyncFS(tmp)
	}
	if err == nil {
		err = fsys.Rename(tmp, dst)
	}
	if err == nil {
		err = fsys.SyncDir(path.Dir(dst))
	}
	if err != nil {
		fsys.RemoveAll(tmp)
		return "", fmt.Errorf("place service directory %s: %w", t.Host(dst), err)
	}
	return dst, nil
}

// copyTree copies with byte copies, not links: a supervisor writes into the
// service directory it runs from (supervise/, event/), which must never be
// the database's files.
func copyTree(fsys durable.FS, src, dst string) error {
	fi, err := fsys.Lstat(src)
	if err != nil {
		return err
	}
	if !fi.IsDir() {
		return fmt.Errorf("%s: a %s in a compiled service directory", fsys.Host(src), durable.Kind(fi.Mode()))
	}
	if err := fsys.Mkdir(dst, 0o755); err != nil {
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
			err = copyTree(fsys, s, d)
		case e.Type().IsRegular():
			err = durable.CopyFile(fsys, s, d)
		default:
			err = fmt.Errorf("%s: a %s in a compiled service directory", fsys.Host(s), durable.Kind(e.Type()))
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// ScanDir is the owner's s6 scan directory.
func (d Dir) ScanDir() string { return path.Join(d.Path, ScanName, strconv.Itoa(d.UID)) }

// SupervisorFile records the owner's supervisor backend, in the owner's
// area (a tree cannot be named with a leading dot).
func (d Dir) SupervisorFile() string { return path.Join(d.Area(), SupervisorName) }

// legacyBackendPath is where treeshift 0.4 kept the record, in a directory
// every owner had to be able to write: read if the new one is missing, so
// that an s6 supervisor started before an upgrade is still known.
func (d Dir) legacyBackendPath() string {
	return path.Join(d.Path, "supervisor", strconv.Itoa(d.UID))
}

// Backend returns the supervisor backend recorded for the owner: "files"
// when none is.
func (d Dir) Backend() (string, error) {
	p := d.SupervisorFile()
	b, err := d.FS.ReadFile(p, 64)
	if errors.Is(err, fs.ErrNotExist) {
		p = d.legacyBackendPath()
		b, err = d.FS.ReadFile(p, 64)
	}
	if errors.Is(err, fs.ErrNotExist) {
		return "files", nil
	}
	if err != nil {
		return "", fmt.Errorf("read %s", durable.Describe(err))
	}
	v := strings.TrimSuffix(string(b), "\n")
	if v != "files" && v != "s6" {
		return "", fmt.Errorf("%s: unknown supervisor %q (expected files or s6)", d.Host(p), clip(v))
	}
	return v, nil
}

// SetBackend records the owner's supervisor backend.
func (d Dir) SetBackend(name string) error {
	if err := d.Prepare(); err != nil {
		return err
	}
	if err := durable.WriteFileSynced(d.FS, d.SupervisorFile(), []byte(name+"\n"), 0o644); err != nil {
		return err
	}
	// The old record, if any, is stale now; only root can remove it.
	if ok, _ := durable.Exists(d.FS, d.legacyBackendPath()); ok {
		d.FS.Remove(d.legacyBackendPath())
	}
	return nil
}
