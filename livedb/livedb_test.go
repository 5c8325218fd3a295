package livedb

import (
	"errors"
	"os"
	"path"
	"path/filepath"
	"strings"
	"testing"

	"github.com/treeshift/treeshift/internal/durable"
)

// testDir is the live directory /run/treeshift of a fresh root, for the
// process's own uid, and the root's host path.
func testDir(t *testing.T) (Dir, string) {
	t.Helper()
	root := t.TempDir()
	fsys, err := durable.NewOS(root, "/run/treeshift", "/var/lib/treeshift")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { fsys.Close() })
	return Dir{FS: fsys, Path: "/run/treeshift", UID: os.Getuid()}, root
}

func TestLinkIsRelativeAndReplaced(t *testing.T) {
	d, root := testDir(t)
	lt := d.Tree("boot")
	if ok, err := lt.Initialized(); ok || err != nil {
		t.Fatalf("fresh tree initialized=%v err=%v", ok, err)
	}
	for _, gen := range []string{".boot.1", ".boot.2"} {
		db := path.Join("/var/lib/treeshift/tree", gen, "compiled")
		os.MkdirAll(filepath.Join(root, db), 0o755)
		if err := lt.Link(db, true); err != nil {
			t.Fatal(err)
		}
		raw, _ := os.Readlink(filepath.Join(root, lt.LinkPath()))
		if filepath.IsAbs(raw) || !strings.HasSuffix(raw, gen+"/compiled") {
			t.Errorf("link text %q, want a relative path to %s", raw, gen)
		}
		// The link resolves on the host too, as a supervisor follows it.
		if _, err := os.Stat(filepath.Join(root, lt.LinkPath(), ".")); err != nil {
			t.Errorf("link does not resolve on the host: %v", err)
		}
		if got, err := lt.Target(); err != nil || got != db {
			t.Errorf("Target = %s, %v; want %s", got, err, db)
		}
	}
	if ok, _ := lt.Initialized(); !ok {
		t.Error("linked tree not initialized")
	}
}

func TestDanglingAndWrongKind(t *testing.T) {
	d, root := testDir(t)
	lt := d.Tree("t")
	if err := d.Prepare(); err != nil {
		t.Fatal(err)
	}
	os.MkdirAll(filepath.Join(root, lt.Dir), 0o755)
	os.Symlink("gone", filepath.Join(root, lt.LinkPath()))
	_, err := lt.Target()
	var de *DanglingError
	if !errors.As(err, &de) {
		t.Errorf("got %v, want a dangling link error", err)
	}
	os.Remove(filepath.Join(root, lt.LinkPath()))
	os.Mkdir(filepath.Join(root, lt.LinkPath()), 0o755)
	if _, err := lt.Initialized(); err == nil || !strings.Contains(err.Error(), "expected a link") {
		t.Errorf("compiled directory instead of link: %v", err)
	}
}

func TestStates(t *testing.T) {
	d, root := testDir(t)
	lt := d.Tree("t")
	if up, err := lt.States(); err != nil || len(up) != 0 {
		t.Fatalf("no state dir: %v %v", up, err)
	}
	if err := lt.SetState("a", true); err != nil {
		t.Fatal(err)
	}
	lt.SetState("b", false)
	up, err := lt.States()
	if err != nil || !up["a"] || up["b"] || len(up) != 2 {
		t.Errorf("states %v %v", up, err)
	}
	os.WriteFile(filepath.Join(root, lt.Dir, "state/c"), []byte("maybe\n"), 0o644)
	if _, err := lt.States(); err == nil || !strings.Contains(err.Error(), `state/c: expected "up" or "down", found "maybe\n"`) {
		t.Errorf("bad state file: %v", err)
	}
}

// The live directory's parts are refused when they are not what the rules
// say, naming the path; a user's area is created only where the user may.
func TestAreaRules(t *testing.T) {
	d, root := testDir(t)
	host := func(p string) string { return filepath.Join(root, p) }
	if err := d.Prepare(); err != nil {
		t.Fatal(err)
	}
	if err := d.Check(); err != nil {
		t.Fatalf("fresh area: %v", err)
	}
	os.Chmod(host(d.Path), 0o777)
	if err := d.Check(); err == nil || !strings.Contains(err.Error(), "writable by others (mode 0777) and not sticky") {
		t.Errorf("world-writable live directory: %v", err)
	}
	os.Chmod(host(d.Path), 0o777|os.ModeSticky)
	if err := d.Check(); err != nil {
		t.Errorf("sticky live directory: %v", err)
	}
	os.Chmod(host(d.Area()), 0o775)
	if err := d.Check(); err == nil || !strings.Contains(err.Error(), "writable by group or others (mode 0775)") {
		t.Errorf("group-writable area: %v", err)
	}
	os.Chmod(host(d.Area()), 0o755)
	os.RemoveAll(host(d.Area()))
	os.Symlink(t.TempDir(), host(d.Area()))
	if err := d.Check(); err == nil || !strings.Contains(err.Error(), "a symbolic link where the owner's live area must be a directory") {
		t.Errorf("area as a link: %v", err)
	}
	if err := d.Tree("x").SetState("s", true); err == nil {
		t.Error("wrote a state through a linked area")
	}
	// Another uid's area, in a directory only root may write: not created.
	if os.Getuid() != 0 {
		return
	}
	os.Remove(host(d.Area()))
	u := d
	u.UID = 4242
	u.AreaHint = "treeshift scandir create --owner 4242"
	err := u.Prepare()
	var ae *AreaError
	if !errors.As(err, &ae) || !strings.Contains(err.Error(), "root creates it with: treeshift scandir create --owner 4242") {
		t.Errorf("area of another uid: %v", err)
	}
	if err := d.CreateArea(4242, 4242); err != nil {
		t.Fatal(err)
	}
	if err := u.Check(); err != nil {
		t.Errorf("area made by root for uid 4242: %v", err)
	}
}
