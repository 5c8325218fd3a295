package livedb

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestLinkIsRelativeAndReplaced(t *testing.T) {
	root := t.TempDir()
	d := Dir{Path: filepath.Join(root, "run/treeshift"), UID: 0}
	lt := d.Tree("boot")
	if ok, err := lt.Initialized(); ok || err != nil {
		t.Fatalf("fresh tree initialized=%v err=%v", ok, err)
	}
	for _, gen := range []string{".boot.1", ".boot.2"} {
		db := filepath.Join(root, "var/lib/treeshift/tree", gen, "compiled")
		os.MkdirAll(db, 0o755)
		if err := lt.Link(db); err != nil {
			t.Fatal(err)
		}
		raw, _ := os.Readlink(lt.LinkPath())
		if filepath.IsAbs(raw) || !strings.HasSuffix(raw, gen+"/compiled") {
			t.Errorf("link text %q, want a relative path to %s", raw, gen)
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
	root := t.TempDir()
	lt := Dir{Path: root, UID: 1000}.Tree("t")
	os.MkdirAll(lt.Dir, 0o755)
	os.Symlink("gone", lt.LinkPath())
	_, err := lt.Target()
	var de *DanglingError
	if !errors.As(err, &de) {
		t.Errorf("got %v, want a dangling link error", err)
	}
	os.Remove(lt.LinkPath())
	os.Mkdir(lt.LinkPath(), 0o755)
	if _, err := lt.Initialized(); err == nil || !strings.Contains(err.Error(), "expected a link") {
		t.Errorf("compiled directory instead of link: %v", err)
	}
}

func TestStates(t *testing.T) {
	lt := Dir{Path: t.TempDir()}.Tree("t")
	if up, err := lt.States(); err != nil || len(up) != 0 {
		t.Fatalf("no state dir: %v %v", up, err)
	}
	lt.SetState("a", true)
	lt.SetState("b", false)
	up, err := lt.States()
	if err != nil || !up["a"] || up["b"] || len(up) != 2 {
		t.Errorf("states %v %v", up, err)
	}
	os.WriteFile(filepath.Join(lt.Dir, "state/c"), []byte("maybe\n"), 0o644)
	if _, err := lt.States(); err == nil || !strings.Contains(err.Error(), `state/c: expected "up" or "down", found "maybe\n"`) {
		t.Errorf("bad state file: %v", err)
	}
}
