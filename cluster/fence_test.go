package cluster

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/treeshift/treeshift/internal/durable"
	"github.com/treeshift/treeshift/internal/faulttest"
)

// A member's engine behind a fence that is down writes nothing: an update
// fails at its first write, saying why, and the member's disk is as it
// was. Renewed, the same engine moves the trees.
func TestFenceStopsTheEngine(t *testing.T) {
	t.Parallel()
	bin := faulttest.Binary(t)
	root := t.TempDir()
	defs := filepath.Join(root, "etc/treeshift/service")
	os.MkdirAll(defs, 0o755)
	os.WriteFile(filepath.Join(defs, "a"), []byte("[main]\n@type = longrun\n@version = 1.0.0\n@description = \"a\"\n@user = ( root )\n\n[start]\n@execute = ( run a )\n"), 0o644)
	for _, args := range [][]string{{"tree", "create", "--format", "1", "-E", "boot"}, {"enable", "-t", "boot", "a"}, {"init", "boot"}} {
		if out, code := faulttest.Run(t, bin, nil, append([]string{"--root", root}, args...)...); code != 0 {
			t.Fatalf("%v: exit %d\n%s", args, code, out)
		}
	}
	before, _ := faulttest.Run(t, bin, nil, "--root", root, "status", "--json")
	now := time.Now()
	f := newFence()
	f.now = func() time.Time { return now }
	f.renewed(now.Add(-2*time.Second), 2*time.Second)
	s := &site{member: "m1", root: root, wrap: f.wrap}
	_, err := s.execute(&Task{Action: ActUpdate, Version: 3}, false)
	if err == nil {
		t.Fatalf("update behind a fence that is down: no error")
	}
	if f.refused.Load() == 0 {
		t.Fatalf("the fence refused nothing")
	}
	after, _ := faulttest.Run(t, bin, nil, "--root", root, "status", "--json")
	if after != before {
		t.Fatalf("the member changed behind its fence:\n%s\nwas:\n%s", after, before)
	}
	f.renewed(now, 2*time.Second)
	if _, err := s.execute(&Task{Action: ActUpdate, Version: 3}, false); err != nil {
		t.Fatalf("update with the lease renewed: %v", err)
	}
	out, _ := faulttest.Run(t, bin, nil, "--root", root, "tree", "list")
	if !strings.Contains(out, fmt.Sprintf("boot  %d ", 3)) {
		t.Fatalf("after the update:\n%s", out)
	}
}

// Every call of durable.FS that changes or syncs anything is refused by a
// fence that is down: a method added to the interface is classified here
// or this fails (the batch calls Build, CloneTree and CreateStream went
// through the fence unchecked when they were added).
func TestFenceRefusesEveryChange(t *testing.T) {
	root := t.TempDir()
	os.MkdirAll(filepath.Join(root, "d"), 0o755)
	os.WriteFile(filepath.Join(root, "d/f"), []byte("x"), 0o644)
	base, err := durable.NewOS(root)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	f := newFence()
	f.now = func() time.Time { return now }
	f.renewed(now.Add(-2*time.Second), 2*time.Second)
	fsys := f.wrap(base)
	noop := func(w io.Writer) error { return nil }
	changes := map[string]func() error{
		"Mkdir":        func() error { return fsys.Mkdir("/n", 0o755) },
		"Create":       func() error { return fsys.Create("/n", nil, 0o644) },
		"CreateStream": func() error { return fsys.CreateStream("/n", 0o644, noop) },
		"Build":        func() error { return fsys.Build("/n", 0o755, nil) },
		"CloneTree":    func() error { return fsys.CloneTree("/d", "/n") },
		"Symlink":      func() error { return fsys.Symlink("d", "/n") },
		"Link":         func() error { return fsys.Link("/d/f", "/n") },
		"Rename":       func() error { return fsys.Rename("/d/f", "/n") },
		"Remove":       func() error { return fsys.Remove("/d/f") },
		"RemoveAll":    func() error { return fsys.RemoveAll("/d") },
		"Chown":        func() error { return fsys.Chown("/d/f", 0, 0) },
		"Chmod":        func() error { return fsys.Chmod("/d/f", 0o600) },
		"WriteFile":    func() error { return fsys.WriteFile("/d/f", nil, 0o644) },
		"WriteStream":  func() error { return fsys.WriteStream("/d/f", 0o644, noop) },
		"SwapSymlink":  func() error { return fsys.SwapSymlink("d", "/n") },
		"Fsync":        func() error { return fsys.Fsync("/d/f") },
		"SyncDir":      func() error { return fsys.SyncDir("/d") },
		"SyncFS":       func() error { return fsys.SyncFS("/d") },
	}
	// Reads go through, and the owner lock is the kernel's, not the disk's.
	reads := map[string]bool{"Host": true, "Lstat": true, "ReadFile": true, "ReadDir": true, "Readlink": true, "SameFS": true, "OpenLock": true}
	it := reflect.TypeOf((*durable.FS)(nil)).Elem()
	for i := 0; i < it.NumMethod(); i++ {
		if m := it.Method(i).Name; changes[m] == nil && !reads[m] {
			t.Errorf("durable.FS.%s: neither a read nor a change this test fences", m)
		}
	}
	for name, call := range changes {
		if err := call(); !errors.Is(err, errFenced) {
			t.Errorf("%s behind a fence that is down: %v", name, err)
		}
	}
	if b, err := os.ReadFile(filepath.Join(root, "d/f")); err != nil || string(b) != "x" {
		t.Errorf("the file changed behind the fence: %q, %v", b, err)
	}
	if entries, _ := os.ReadDir(root); len(entries) != 1 {
		t.Errorf("entries made behind the fence: %v", entries)
	}
}
