package powerloss

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/treeshift/treeshift/internal/durable"
)

// newTestRecorder returns a recorder on a fresh root holding /a/old ("old") and
// the directory /a/m, with the given mounts.
func newTestRecorder(t *testing.T, mounts ...string) (*recorder, string) {
	t.Helper()
	root := t.TempDir()
	os.MkdirAll(filepath.Join(root, "a/m"), 0o755)
	os.WriteFile(filepath.Join(root, "a/old"), []byte("old"), 0o644)
	o, err := durable.NewOS(root, "/a")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { o.Close() })
	f := &files{mounts: append([]string{"/"}, mounts...)}
	base, err := scan(root, f)
	if err != nil {
		t.Fatal(err)
	}
	return newRecorder(o, f, base), root
}

// at returns what p holds in the state sp chooses at the end of r's
// trace: its content, "<dir>", "-> TARGET", or "<none>" when it is missing.
func at(r *recorder, mode byte, g groupKey, p string) string {
	t := r.trace
	s, _ := t.build(spec{k: len(t.events), mode: mode, g: g})
	n, _, _, err := s.lookup(p)
	if err != nil {
		return "<none>"
	}
	switch in := t.files.inodes[n]; in.kind {
	case kDir:
		return "<dir>"
	case kLink:
		return "-> " + in.target
	}
	return string(s.contentOf(n).b)
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// The model's rules, one by one: each is what the package documentation
// promises, checked on a trace of real calls.
func TestModelRules(t *testing.T) {
	t.Run("an atomic write is not durable until its directory is synced", func(t *testing.T) {
		r, _ := newTestRecorder(t)
		must(t, r.WriteFile("/a/old", []byte("new"), 0o644))
		r.trace.finish()
		if got := at(r, allLost, groupKey{}, "/a/old"); got != "old" {
			t.Errorf("every unsynced change lost: %q, want the old content", got)
		}
		if got := at(r, allKept, groupKey{}, "/a/old"); got != "new" {
			t.Errorf("every unsynced change kept: %q, want the new content", got)
		}
	})
	t.Run("a synced atomic write is durable, its data with it", func(t *testing.T) {
		r, _ := newTestRecorder(t)
		must(t, durable.WriteFileSynced(r, "/a/old", []byte("new"), 0o644))
		r.trace.finish()
		if got := at(r, allLost, groupKey{}, "/a/old"); got != "new" {
			t.Errorf("every unsynced change lost: %q, want new", got)
		}
	})
	t.Run("fsync makes a file's data durable, not its name", func(t *testing.T) {
		r, _ := newTestRecorder(t)
		must(t, r.Create("/a/f", []byte("data"), 0o644))
		must(t, r.Fsync("/a/f"))
		r.trace.finish()
		if got := at(r, allLost, groupKey{}, "/a/f"); got != "<none>" {
			t.Errorf("synced data, unsynced name: %q, want no file", got)
		}
	})
	t.Run("a directory sync makes the name durable, not the data", func(t *testing.T) {
		r, _ := newTestRecorder(t)
		must(t, r.Create("/a/f", []byte("data"), 0o644))
		must(t, r.SyncDir("/a"))
		r.trace.finish()
		s, _ := r.trace.build(spec{k: len(r.trace.events), mode: allLost})
		n, _, _, err := s.lookup("/a/f")
		if err != nil || len(s.contentOf(n).b) != 0 {
			t.Errorf("synced name, unsynced data: %v %q, want an empty file", err, s.contentOf(n).b)
		}
	})
	t.Run("a filesystem sync makes everything on it durable, and nothing elsewhere", func(t *testing.T) {
		r, _ := newTestRecorder(t, "/a/m")
		must(t, r.Create("/a/f", []byte("data"), 0o644))
		must(t, r.Create("/a/m/g", []byte("other"), 0o644))
		must(t, r.SyncFS("/a"))
		r.trace.finish()
		if got := at(r, allLost, groupKey{}, "/a/f"); got != "data" {
			t.Errorf("after syncfs: %q, want data", got)
		}
		if got := at(r, allLost, groupKey{}, "/a/m/g"); got != "<none>" {
			t.Errorf("a file on another filesystem survived its sync: %q", got)
		}
	})
	t.Run("unsynced changes of one directory are lost alone, the others kept", func(t *testing.T) {
		r, _ := newTestRecorder(t)
		must(t, r.Create("/a/f", []byte("f"), 0o644))
		must(t, r.Create("/a/m/g", []byte("g"), 0o644))
		r.trace.finish()
		a, _, _, _ := r.trace.base.lookup("/a")
		if f, g := at(r, groupLost, groupKey{'e', a}, "/a/f"), at(r, groupLost, groupKey{'e', a}, "/a/m/g"); f != "<none>" || g != "g" {
			t.Errorf("/a's entries lost alone: /a/f %q, /a/m/g %q; want gone and kept", f, g)
		}
		if f, g := at(r, groupKept, groupKey{'e', a}, "/a/f"), at(r, groupKept, groupKey{'e', a}, "/a/m/g"); f != "" || g != "<none>" {
			// Kept alone: /a/f's name, but not its data, which is the
			// file's own group.
			t.Errorf("/a's entries kept alone: /a/f %q, /a/m/g %q; want an empty /a/f and no /a/m/g", f, g)
		}
	})
	t.Run("a link swap is a rename of a new link over the old one", func(t *testing.T) {
		r, _ := newTestRecorder(t)
		must(t, r.Symlink("x", "/a/l"))
		must(t, r.SyncDir("/a"))
		must(t, r.SwapSymlink("y", "/a/l"))
		r.trace.finish()
		if got := at(r, allLost, groupKey{}, "/a/l"); got != "-> x" {
			t.Errorf("swap unsynced, all lost: %s, want -> x", got)
		}
		if got := at(r, allKept, groupKey{}, "/a/l"); got != "-> y" {
			t.Errorf("swap unsynced, all kept: %s, want -> y", got)
		}
	})
	t.Run("a hard link cannot cross filesystems", func(t *testing.T) {
		r, _ := newTestRecorder(t, "/a/m")
		if err := r.Link("/a/old", "/a/m/old"); !errors.Is(err, durable.ErrCrossDevice) {
			t.Errorf("link across filesystems: %v, want ErrCrossDevice", err)
		}
		must(t, r.Link("/a/old", "/a/again"))
	})
	t.Run("the model and the disk agree", func(t *testing.T) {
		r, root := newTestRecorder(t)
		must(t, durable.MkdirAll(r, "/a/d/e", 0o755, true))
		must(t, r.Create("/a/d/e/f", []byte("f"), 0o600))
		must(t, r.WriteFile("/a/d/w", []byte("w"), 0o640))
		must(t, r.Link("/a/d/e/f", "/a/d/h"))
		must(t, r.SwapSymlink("t", "/a/d/l"))
		must(t, r.SwapSymlink("u", "/a/d/l"))
		must(t, r.Rename("/a/d/w", "/a/d/e/w"))
		must(t, r.Chmod("/a/d/e", 0o700))
		must(t, r.RemoveAll("/a/m"))
		must(t, r.Remove("/a/old"))
		if err := r.failure(); err != nil {
			t.Fatal(err)
		}
		if got, want := r.vol.describe(r.trace.files), describeHost(root); got != want {
			t.Errorf("model and disk differ:\n%s", lineDiff(want, got))
		}
		// And a crash state keeping everything is the disk.
		r.trace.finish()
		s, _ := r.trace.build(spec{k: len(r.trace.events), mode: allKept})
		dir := t.TempDir()
		must(t, s.materialize(r.trace.files, dir))
		if got, want := describeHost(dir), describeHost(root); got != want {
			t.Errorf("materialized state and disk differ:\n%s", lineDiff(want, got))
		}
	})
}
