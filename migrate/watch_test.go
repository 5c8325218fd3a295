package migrate

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

	w := &watch{dirs: map[string]string{}, first: map[string]string{}, watched: map[string][]string{}, snap: map[string][]dirStamps{}}
	w.Add("t", gen, filepath.Join(gen, "compiled"), state)
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
	w := &watch{dirs: map[string]string{}, first: map[string]string{}, watched: map[string][]string{}, snap: map[string][]dirStamps{}}
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

// A write that leaves a file's size and modification time as they were (a
// tool that restores mtimes, or one within the filesystem's timestamp
// granularity) is invisible to the stamps: only inotify sees it.
func TestWatchSeesWritesTheStampsMiss(t *testing.T) {
	gen := t.TempDir()
	meta := filepath.Join(gen, "meta")
	os.WriteFile(meta, []byte("aaaa"), 0o644)
	old := time.Now().Add(-time.Hour).Truncate(time.Second)
	os.Chtimes(meta, old, old)
	w := newWatch()
	defer w.Close()
	if w.w == nil {
		t.Skip("inotify is not available here")
	}
	w.Add("t", gen)
	os.WriteFile(meta, []byte("bbbb"), 0o644)
	os.Chtimes(meta, old, old)
	deadline := time.Now().Add(5 * time.Second)
	for w.Tripped("t") == "" {
		if time.Now().After(deadline) {
			t.Fatal("a write keeping size and mtime went unnoticed")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if p := w.Tripped("t"); p != meta {
		t.Fatalf("Tripped = %q, want %s", p, meta)
	}
}

// The stamps name the entry that was changed, added or removed.
func TestDirStampsNameWhatDiffers(t *testing.T) {
	d := dirStamps{dir: "/d", names: []string{"a", "b", "c"}, stamps: []stamp{{1, 1}, {2, 2}, {3, 3}}}
	for _, c := range []struct {
		now  dirStamps
		want string
	}{
		{dirStamps{names: []string{"a", "b", "c"}, stamps: []stamp{{1, 1}, {2, 2}, {3, 3}}}, ""},
		{dirStamps{names: []string{"a", "b", "c"}, stamps: []stamp{{1, 1}, {2, 5}, {3, 3}}}, "/d/b"},
		{dirStamps{names: []string{"a", "c"}, stamps: []stamp{{1, 1}, {3, 3}}}, "/d/b"},
		{dirStamps{names: []string{"a", "b", "bb", "c"}, stamps: []stamp{{1, 1}, {2, 2}, {0, 0}, {3, 3}}}, "/d/bb"},
		{dirStamps{names: []string{"a", "b", "c", "d"}, stamps: []stamp{{1, 1}, {2, 2}, {3, 3}, {4, 4}}}, "/d/d"},
		{dirStamps{}, "/d/a"},
	} {
		if got := d.differs(c.now); got != c.want {
			t.Errorf("%v: %q, want %q", c.now.names, got, c.want)
		}
	}
}
