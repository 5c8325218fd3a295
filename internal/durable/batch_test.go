package durable

import (
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

// Build makes the whole tree with the modes asked, whatever the umask, and
// refuses to build through a link, or outside its directory.
func TestBuildMakesATreeOfFiles(t *testing.T) {
	o, root := newOS(t)
	os.WriteFile(filepath.Join(root, "a/src"), []byte("linked"), 0o640)
	err := o.Build("/a/t", 0o751, []Entry{
		{Name: "d", Mode: fs.ModeDir | 0o700},
		{Name: "d/e", Mode: fs.ModeDir | 0o755},
		{Name: "d/e/f", Data: []byte("f"), Mode: 0o755},
		{Name: "g", Data: nil, Mode: 0o600},
		{Name: "d/l", Link: "/a/src"},
	})
	if err != nil {
		t.Fatal(err)
	}
	for p, want := range map[string]fs.FileMode{"t": fs.ModeDir | 0o751, "t/d": fs.ModeDir | 0o700, "t/d/e": fs.ModeDir | 0o755,
		"t/d/e/f": 0o755, "t/g": 0o600, "t/d/l": 0o640} {
		fi, err := os.Lstat(filepath.Join(root, "a", p))
		if err != nil || fi.Mode() != want {
			t.Errorf("%s: %v %v, want %v", p, fi.Mode(), err, want)
		}
	}
	a, _ := os.Stat(filepath.Join(root, "a/src"))
	b, _ := os.Stat(filepath.Join(root, "a/t/d/l"))
	if !os.SameFile(a, b) {
		t.Error("a link entry is not a hard link")
	}
	// Through a planted link, and out of the directory.
	outside := t.TempDir()
	os.Symlink(outside, filepath.Join(root, "a/planted"))
	if err := o.Build("/a/planted/t", 0o755, nil); !errors.Is(err, ErrSymlink) {
		t.Errorf("build through a link: %v", err)
	}
	if err := o.Build("/a/u", 0o755, []Entry{{Name: "../escape", Data: []byte("x"), Mode: 0o644}}); err == nil {
		t.Error("an entry outside the directory was made")
	}
	if _, err := os.Lstat(filepath.Join(root, "a/escape")); err == nil {
		t.Error("escaped the directory built")
	}
	if err := o.Build("/a/v", 0o755, []Entry{{Name: "x/y", Data: nil, Mode: 0o644}}); err == nil {
		t.Error("an entry whose directory was not listed first was made")
	}
	if left, _ := os.ReadDir(outside); len(left) != 0 {
		t.Error("wrote outside")
	}
}

// A clone is made of hard links and fresh directories with their modes;
// a link inside the source stops it, and so does cloning into itself.
func TestCloneTreeLinksFiles(t *testing.T) {
	o, root := newOS(t)
	os.MkdirAll(filepath.Join(root, "a/s/d/e"), 0o755)
	os.Chmod(filepath.Join(root, "a/s/d"), 0o710)
	os.WriteFile(filepath.Join(root, "a/s/d/e/f"), []byte("f"), 0o755)
	os.WriteFile(filepath.Join(root, "a/s/g"), []byte("g"), 0o644)
	if err := o.CloneTree("/a/s", "/a/c"); err != nil {
		t.Fatal(err)
	}
	a, _ := os.Stat(filepath.Join(root, "a/s/d/e/f"))
	b, err := os.Stat(filepath.Join(root, "a/c/d/e/f"))
	if err != nil || !os.SameFile(a, b) {
		t.Errorf("file not linked: %v", err)
	}
	if fi, _ := os.Stat(filepath.Join(root, "a/c/d")); fi.Mode().Perm() != 0o710 {
		t.Errorf("directory mode %v, want 0710", fi.Mode().Perm())
	}
	if err := o.CloneTree("/a/s", "/a/s/in"); err == nil {
		t.Error("cloned a directory into itself")
	}
	os.Symlink("/etc", filepath.Join(root, "a/s/d/planted"))
	if err := o.CloneTree("/a/s", "/a/c2"); err == nil || !strings.Contains(err.Error(), "symbolic link where only files and directories belong") {
		t.Errorf("clone of a tree holding a link: %v", err)
	}
}

// RemoveAll empties deep and wide trees, and removes a link, not what it
// points at.
func TestRemoveAllDeepAndWide(t *testing.T) {
	o, root := newOS(t)
	deep := filepath.Join(root, "a/t")
	for i := 0; i < 30; i++ {
		deep = filepath.Join(deep, "d")
	}
	os.MkdirAll(deep, 0o755)
	for i := 0; i < 3000; i++ {
		os.WriteFile(filepath.Join(root, "a/t", "f"+strings.Repeat("x", i%50)+string(rune('a'+i%26))+strconv.Itoa(i)), nil, 0o644)
	}
	os.Symlink(t.TempDir(), filepath.Join(root, "a/t/l"))
	if err := o.RemoveAll("/a/t"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(filepath.Join(root, "a/t")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("still there: %v", err)
	}
}

// CreateStream makes a new file only, and leaves nothing when its writer
// fails.
func TestCreateStream(t *testing.T) {
	o, root := newOS(t)
	w := func(s string) func(io.Writer) error {
		return func(w io.Writer) error { _, err := io.WriteString(w, s); return err }
	}
	if err := o.CreateStream("/a/f", 0o600, w("one")); err != nil {
		t.Fatal(err)
	}
	if err := o.CreateStream("/a/f", 0o600, w("two")); !errors.Is(err, fs.ErrExist) {
		t.Errorf("over an existing file: %v", err)
	}
	if b, _ := os.ReadFile(filepath.Join(root, "a/f")); string(b) != "one" {
		t.Errorf("content %q", b)
	}
	if err := o.CreateStream("/a/g", 0o600, func(io.Writer) error { return syscall.EIO }); err == nil {
		t.Error("a failed write succeeded")
	}
	if _, err := os.Lstat(filepath.Join(root, "a/g")); !errors.Is(err, fs.ErrNotExist) {
		t.Error("a failed write left its file")
	}
}

// Flushes counts what the real FS syncs, the atomic writes' fsync
// included; SameFS tells filesystems apart.
func TestFlushesAreCounted(t *testing.T) {
	o, _ := newOS(t)
	before := Flushes()
	WriteFileSynced(o, "/a/x", []byte("x"), 0o644)
	o.SyncFS("/a")
	got := Flushes().Sub(before)
	if got.Fsync < 1 || got.SyncDir < 1 || got.SyncFS < 1 {
		t.Errorf("counted %v, want at least one of each", got)
	}
	if same, err := o.SameFS("/a", "/a/x"); !same || err != nil {
		t.Errorf("SameFS of a directory and its file: %v %v", same, err)
	}
}
