package update

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

// A write is noticed at the check even if no inotify event has arrived (or
// inotify is unavailable); reading and hard-linking are not writes.
func TestWatchSeesWritesWithoutEvents(t *testing.T) {
	gen, state := t.TempDir(), t.TempDir()
	os.MkdirAll(filepath.Join(gen, "compiled"), 0o755)
	meta := filepath.Join(gen, "meta")
	index := filepath.Join(gen, "compiled", "index")
	os.WriteFile(meta, []byte("x"), 0o644)
	os.WriteFile(index, []byte("i"), 0o644)
	old := time.Now().Add(-time.Hour)
	os.Chtimes(meta, old, old)

	w := &watch{dirs: map[string]string{}, first: map[string]string{}, watched: map[string][]string{}, snap: map[string]map[string]stamp{}}
	w.Add("t", gen, state)
	os.ReadFile(meta)
	if err := os.Link(index, filepath.Join(t.TempDir(), "copy")); err != nil {
		t.Fatal(err)
	}
	if p := w.Tripped("t"); p != "" {
		t.Fatalf("reading and linking tripped the watch at %s", p)
	}
	os.WriteFile(meta, []byte("x"), 0o644) // same bytes, new mtime
	if p := w.Tripped("t"); p != meta {
		t.Fatalf("Tripped = %q, want %s", p, meta)
	}
}

// A service state written from outside, a new entry, is noticed too.
func TestWatchSeesNewStateFile(t *testing.T) {
	gen, state := t.TempDir(), t.TempDir()
	w := &watch{dirs: map[string]string{}, first: map[string]string{}, watched: map[string][]string{}, snap: map[string]map[string]stamp{}}
	w.Add("t", gen, state)
	sshd := filepath.Join(state, "sshd")
	os.WriteFile(sshd, []byte("up\n"), 0o644)
	if p := w.Tripped("t"); p != sshd {
		t.Fatalf("Tripped = %q, want %s", p, sshd)
	}
	if p := w.Tripped("other"); p != "" {
		t.Fatalf("a tree not watched tripped at %s", p)
	}
}
