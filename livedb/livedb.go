// Package livedb owns the live directory: for each owner and initialized tree,
// the compiled link that tells the supervisor which database is in use, and
// the embedded backend's record of which services are up.
//
// The link is relative, so a system staged under --root is consistent both
// from outside and from inside the root. It is replaced in one rename and
// never removed while the tree is live, so it never dangles.
package livedb

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"github.com/treeshift/treeshift/internal/durable"
	"github.com/treeshift/treeshift/internal/fserr"
	"github.com/treeshift/treeshift/internal/model"
)

// Dir is one owner's part of a live directory.
type Dir struct {
	// Path is the live directory as the process opens it.
	Path string
	UID  int
	// Trusted lists who besides root may own the shared directories (see
	// Check): the owner of the --root directory.
	Trusted []int
	// AreaHint is the command that makes the owner's area when the owner
	// cannot (scandir create --owner), for messages.
	AreaHint string
}

// Tree is the live part of one tree.
type Tree struct {
	Name string
	// Dir is LIVE/tree/UID/NAME.
	Dir  string
	live Dir
}

// Tree returns the live part of tree name; nothing is read or created.
func (d Dir) Tree(name string) *Tree {
	return &Tree{Name: name, Dir: filepath.Join(d.Area(), name), live: d}
}

// LinkPath is the path of the compiled link.
func (t *Tree) LinkPath() string { return filepath.Join(t.Dir, "compiled") }

func (t *Tree) stateDir() string { return filepath.Join(t.Dir, "state") }

// Initialized reports whether the tree is live: its compiled link exists. A
// compiled entry that is not a link is an error: treeshift never makes one.
func (t *Tree) Initialized() (bool, error) {
	fi, err := os.Lstat(t.LinkPath())
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("%s: %w", t.LinkPath(), unwrap(err))
	}
	if fi.Mode()&fs.ModeSymlink == 0 {
		return false, fmt.Errorf("%s: expected a link to a compiled database, found something else", t.LinkPath())
	}
	return true, nil
}

// DanglingError reports a compiled link whose target is missing.
type DanglingError struct{ Link, Target string }

func (e *DanglingError) Error() string {
	return fmt.Sprintf("%s points to %s, which does not exist", e.Link, e.Target)
}

// Target returns the compiled database the link points to, as a cleaned host
// path. It fails with a *DanglingError if the target is missing.
func (t *Tree) Target() (string, error) {
	raw, err := os.Readlink(t.LinkPath())
	if err != nil {
		return "", fmt.Errorf("%s: %w", t.LinkPath(), unwrap(err))
	}
	target := raw
	if !filepath.IsAbs(target) {
		target = filepath.Join(t.Dir, target)
	}
	target = filepath.Clean(target)
	fi, err := os.Stat(target)
	if errors.Is(err, fs.ErrNotExist) {
		return "", &DanglingError{Link: t.LinkPath(), Target: target}
	}
	if err != nil {
		return "", fmt.Errorf("%s: %w", target, unwrap(err))
	}
	if !fi.IsDir() {
		return "", fmt.Errorf("%s points to %s, which is not a directory", t.LinkPath(), target)
	}
	return target, nil
}

// Link points the compiled link at the database in directory compiled (a
// host path), creating the live tree directory if needed. The previous link,
// if any, is replaced in one durable rename.
func (t *Tree) Link(compiled string) error {
	if err := t.live.Prepare(); err != nil {
		return err
	}
	if err := durable.MkdirAll(t.Dir, 0o755); err != nil {
		return err
	}
	rel, err := filepath.Rel(t.Dir, compiled)
	if err != nil {
		return fmt.Errorf("link %s to %s: %w", t.LinkPath(), compiled, err)
	}
	return durable.Symlink(rel, t.LinkPath())
}

// TempDir is the private directory that holds a copy of the database in use
// while a transition runs: beside the live tree directory, so on the same
// filesystem, and hidden.
func (t *Tree) TempDir() string {
	return filepath.Join(filepath.Dir(t.Dir), "."+t.Name+".update")
}

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
	if err := os.RemoveAll(tmp); err != nil {
		return "", fmt.Errorf("remove %s: %w", tmp, unwrap(err))
	}
	if err := os.Mkdir(tmp, 0o700); err != nil {
		return "", fmt.Errorf("create %s: %w", tmp, unwrap(err))
	}
	dst := filepath.Join(tmp, "compiled")
	if err := durable.CloneTree(src, dst); err != nil {
		os.RemoveAll(tmp)
		return "", err
	}
	return dst, nil
}

// RemoveTemp deletes TempDir, if present, once no link points at it. The
// removal is not synced: a copy that reappears after a crash is unused, and
// the next transition replaces it.
func (t *Tree) RemoveTemp() error {
	if _, err := os.Lstat(t.TempDir()); errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	return durable.Discard(t.TempDir())
}

// StateDir is where the embedded backend keeps service states: a transition
// watches it for writers other than itself.
func (t *Tree) StateDir() string { return t.stateDir() }

// LinkUnsynced is Link without the directory sync, for a caller that swaps
// several links and then syncs the filesystem once (Dir.Sync). The live tree
// directory must exist: the tree is live.
func (t *Tree) LinkUnsynced(compiled string) error {
	rel, err := filepath.Rel(t.Dir, compiled)
	if err != nil {
		return fmt.Errorf("link %s to %s: %w", t.LinkPath(), compiled, err)
	}
	return durable.SwapSymlink(rel, t.LinkPath())
}

// Sync makes every write and rename under the live directory durable.
func (d Dir) Sync() error {
	if _, err := os.Stat(d.Path); errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	return durable.SyncFS(d.Path)
}

// Remove deletes the live part of the tree. The caller has made sure none of
// its services is up.
func (t *Tree) Remove() error {
	if _, err := os.Lstat(t.Dir); errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	return durable.RemoveAll(t.Dir)
}

// States returns which services the embedded backend records as up. A
// service without a record is down.
func (t *Tree) States() (map[string]bool, error) {
	entries, err := os.ReadDir(t.stateDir())
	if errors.Is(err, fs.ErrNotExist) {
		return map[string]bool{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", t.stateDir(), unwrap(err))
	}
	up := map[string]bool{}
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), ".") {
			continue // a writer's temporary file
		}
		p := filepath.Join(t.stateDir(), e.Name())
		if !e.Type().IsRegular() {
			return nil, fmt.Errorf("%s: expected a state file, found something else", p)
		}
		if err := model.CheckName(e.Name()); err != nil {
			return nil, fmt.Errorf("%s: %v", p, err)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", p, unwrap(err))
		}
		switch string(b) {
		case "up\n":
			up[e.Name()] = true
		case "down\n":
			up[e.Name()] = false
		default:
			return nil, fmt.Errorf("%s: expected \"up\" or \"down\", found %q", p, clip(string(b)))
		}
	}
	return up, nil
}

// SetState records service svc as up or down.
func (t *Tree) SetState(svc string, up bool) error {
	if err := t.live.Prepare(); err != nil {
		return err
	}
	if err := durable.MkdirAll(t.stateDir(), 0o755); err != nil {
		return err
	}
	v := "down\n"
	if up {
		v = "up\n"
	}
	return durable.WriteFile(filepath.Join(t.stateDir(), svc), []byte(v), 0o644)
}

func clip(s string) string {
	if len(s) > 40 {
		return s[:40] + "..."
	}
	return s
}

func unwrap(err error) error { return fserr.Cause(err) }

// ServiceDir is where a supervised service runs from while the tree is live:
// beside the compiled link, never inside the database it points at, so a
// switch of databases leaves running services alone.
func (t *Tree) ServiceDir(svc string) string { return filepath.Join(t.Dir, "servicedirs", svc) }

// PlaceServiceDir copies a compiled service directory to ServiceDir(svc),
// with a "down" file so the supervisor leaves the service down until it is
// started. An existing directory is left as it is: a supervisor may be
// running from it.
func (t *Tree) PlaceServiceDir(svc, compiled string) (string, error) {
	if err := t.live.Prepare(); err != nil {
		return "", err
	}
	dst := t.ServiceDir(svc)
	if _, err := os.Lstat(dst); err == nil {
		return dst, nil
	}
	tmp := dst + ".new"
	os.RemoveAll(tmp)
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return "", fmt.Errorf("create %s: %w", filepath.Dir(dst), unwrap(err))
	}
	err := filepath.WalkDir(compiled, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(compiled, p)
		to := filepath.Join(tmp, rel)
		if d.IsDir() {
			return os.Mkdir(to, 0o755)
		}
		if !d.Type().IsRegular() {
			return fmt.Errorf("%s: a %v in a compiled service directory", p, d.Type())
		}
		return durable.CopyFile(p, to)
	})
	if err == nil {
		err = os.WriteFile(filepath.Join(tmp, "down"), nil, 0o644)
	}
	if err == nil {
		err = durable.SyncFS(tmp)
	}
	if err == nil {
		err = durable.Replace(tmp, dst)
	}
	if err != nil {
		os.RemoveAll(tmp)
		return "", fmt.Errorf("place service directory %s: %w", dst, unwrap(err))
	}
	return dst, nil
}

// ScanDir is the owner's s6 scan directory.
func (d Dir) ScanDir() string { return filepath.Join(d.Path, "scandir", strconv.Itoa(d.UID)) }

// SupervisorFile records the owner's supervisor backend, in the owner's
// area (a tree cannot be named with a leading dot).
func (d Dir) SupervisorFile() string { return filepath.Join(d.Area(), ".supervisor") }

// legacyBackendPath is where treeshift 0.4 kept the record, in a directory
// every owner had to be able to write: read if the new one is missing, so
// that an s6 supervisor started before an upgrade is still known.
func (d Dir) legacyBackendPath() string {
	return filepath.Join(d.Path, "supervisor", strconv.Itoa(d.UID))
}

// Backend returns the supervisor backend recorded for the owner: "files"
// when none is.
func (d Dir) Backend() (string, error) {
	p := d.SupervisorFile()
	b, err := readRegular(p)
	if errors.Is(err, fs.ErrNotExist) {
		p = d.legacyBackendPath()
		b, err = readRegular(p)
	}
	if errors.Is(err, fs.ErrNotExist) {
		return "files", nil
	}
	if err != nil {
		return "", fmt.Errorf("read %s: %w", p, unwrap(err))
	}
	v := strings.TrimSuffix(string(b), "\n")
	if v != "files" && v != "s6" {
		return "", fmt.Errorf("%s: unknown supervisor %q (expected files or s6)", p, clip(v))
	}
	return v, nil
}

// readRegular reads a small regular file without following a link.
func readRegular(p string) ([]byte, error) {
	f, err := os.OpenFile(p, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0)
	if err != nil {
		if errors.Is(err, syscall.ELOOP) {
			return nil, &UnsafeError{p, "a symbolic link where a file belongs"}
		}
		return nil, err
	}
	defer f.Close()
	if fi, err := f.Stat(); err != nil {
		return nil, err
	} else if !fi.Mode().IsRegular() {
		return nil, &UnsafeError{p, "not a regular file"}
	}
	return io.ReadAll(io.LimitReader(f, 4096))
}

// SetBackend records the owner's supervisor backend.
func (d Dir) SetBackend(name string) error {
	if err := d.Prepare(); err != nil {
		return err
	}
	if err := durable.WriteFile(d.SupervisorFile(), []byte(name+"\n"), 0o644); err != nil {
		return err
	}
	// The old record, if any, is stale now.
	if _, err := os.Lstat(d.legacyBackendPath()); err == nil {
		os.Remove(d.legacyBackendPath())
	}
	return nil
}
