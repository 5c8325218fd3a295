package durable

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestWriteFileReplacesAtomically(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "state")
	for _, content := range []string{"one\n", "two\n"} {
		if err := WriteFile(p, []byte(content), 0o640); err != nil {
			t.Fatal(err)
		}
		b, _ := os.ReadFile(p)
		if string(b) != content {
			t.Errorf("content %q, want %q", b, content)
		}
	}
	fi, _ := os.Stat(p)
	if fi.Mode().Perm() != 0o640 {
		t.Errorf("mode %v, want 0640 whatever the umask", fi.Mode().Perm())
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("directory holds %d entries, want only the file (no temporary left)", len(entries))
	}
}

func TestSymlinkReplaces(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "link")
	for _, target := range []string{"a", "b"} {
		if err := Symlink(target, p); err != nil {
			t.Fatal(err)
		}
		if got, _ := os.Readlink(p); got != target {
			t.Errorf("link -> %s, want %s", got, target)
		}
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("directory holds %d entries, want 1", len(entries))
	}
}

func TestMkdirAllAndRemoveAll(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "a/b/c")
	if err := MkdirAll(p, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := MkdirAll(p, 0o755); err != nil {
		t.Fatalf("second MkdirAll: %v", err)
	}
	if err := WriteFile(filepath.Join(dir, "file"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := MkdirAll(filepath.Join(dir, "file"), 0o755); err == nil {
		t.Error("MkdirAll over a file succeeded")
	}
	if err := RemoveAll(filepath.Join(dir, "a")); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "a")); !os.IsNotExist(err) {
		t.Errorf("a still exists: %v", err)
	}
}

func TestReplaceRenamesDirectory(t *testing.T) {
	dir := t.TempDir()
	src, dst := filepath.Join(dir, "src"), filepath.Join(dir, "dst")
	os.Mkdir(src, 0o755)
	os.WriteFile(filepath.Join(src, "f"), []byte("x"), 0o644)
	if err := Replace(src, dst); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(filepath.Join(dst, "f")); err != nil || string(b) != "x" {
		t.Errorf("moved file: %q %v", b, err)
	}
}

func TestErrorsNameThePath(t *testing.T) {
	err := WriteFile("/nonexistent-dir/x", nil, 0o644)
	if err == nil || err.Error() != "write /nonexistent-dir/x: no such file or directory" {
		t.Errorf("got %v", err)
	}
}

func TestSweepSymlink(t *testing.T) {
	dir := t.TempDir()
	leftover := filepath.Join(dir, ".boot3388764770")
	os.Mkdir(leftover, 0o755)
	os.Symlink(".boot.3", filepath.Join(leftover, "tmp.symlink"))
	empty := filepath.Join(dir, ".boot42")
	os.Mkdir(empty, 0o755)
	gen := filepath.Join(dir, ".boot.3") // a generation: kept
	os.Mkdir(gen, 0o755)
	other := filepath.Join(dir, ".boot9") // holds more than a link: kept
	os.Mkdir(other, 0o755)
	os.WriteFile(filepath.Join(other, "meta"), nil, 0o644)
	if err := SweepSymlink(dir, "boot"); err != nil {
		t.Fatal(err)
	}
	for p, want := range map[string]bool{leftover: false, empty: false, gen: true, other: true} {
		if _, err := os.Stat(p); (err == nil) != want {
			t.Errorf("%s exists=%v, want %v", p, err == nil, want)
		}
	}
}

func TestCreateFileIsNewWithItsMode(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "run")
	if err := CreateFile(p, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(p)
	fi, _ := os.Stat(p)
	if string(b) != "#!/bin/sh\n" || fi.Mode().Perm() != 0o755 {
		t.Errorf("wrote %q mode %v, want the script with mode 0755", b, fi.Mode().Perm())
	}
	// Staging writes into fresh directories: anything already there, file
	// or link, means something else is writing too.
	if err := CreateFile(p, []byte("x"), 0o644); err == nil || !strings.Contains(err.Error(), p) {
		t.Errorf("over an existing file: %v, want an error naming %s", err, p)
	}
	l := filepath.Join(dir, "link")
	os.Symlink(p, l)
	if err := CreateFile(l, []byte("x"), 0o644); err == nil {
		t.Error("wrote through a symbolic link")
	}
	if b, _ := os.ReadFile(p); string(b) != "#!/bin/sh\n" {
		t.Errorf("file changed to %q", b)
	}
}
