package tree

import (
	"bytes"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

func TestGenFSReadsOnlyRegularFiles(t *testing.T) {
	dir := t.TempDir()
	big := bytes.Repeat([]byte("key=value\n"), 10000)
	os.WriteFile(filepath.Join(dir, "meta"), big, 0o644)
	os.WriteFile(filepath.Join(dir, "empty"), nil, 0o644)
	os.Symlink("meta", filepath.Join(dir, "link"))
	if err := syscall.Mkfifo(filepath.Join(dir, "fifo"), 0o644); err != nil {
		t.Fatal(err)
	}
	g := newGenFS(dir)
	if b, err := fs.ReadFile(g, "meta"); err != nil || !bytes.Equal(b, big) {
		t.Errorf("meta: read %d bytes, %v; want all %d", len(b), err, len(big))
	}
	if b, err := fs.ReadFile(g, "empty"); err != nil || len(b) != 0 {
		t.Errorf("empty: %q, %v", b, err)
	}
	// A FIFO must be refused, not waited on: the test would hang.
	for _, name := range []string{"link", "fifo"} {
		_, err := fs.ReadFile(g, name)
		if err == nil || !strings.Contains(err.Error(), filepath.Join(dir, name)+": not a regular file") {
			t.Errorf("%s: %v, want an error naming it as not a regular file", name, err)
		}
	}
	if _, err := fs.ReadFile(g, "missing"); !os.IsNotExist(err) {
		t.Errorf("missing: %v, want not-exist", err)
	}
	if _, err := fs.ReadFile(g, "../escape"); err == nil {
		t.Error("read a path outside the generation")
	}
}
