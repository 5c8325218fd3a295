package durable

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// newOS returns an OS on a fresh root with the anchor /a, which exists.
func newOS(t *testing.T) (*OS, string) {
	t.Helper()
	root := t.TempDir()
	if err := os.Mkdir(filepath.Join(root, "a"), 0o755); err != nil {
		t.Fatal(err)
	}
	o, err := NewOS(root, "/a")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { o.Close() })
	return o, root
}

func TestWriteFileReplacesAtomically(t *testing.T) {
	o, root := newOS(t)
	for _, content := range []string{"one\n", "two\n"} {
		if err := WriteFileSynced(o, "/a/state", []byte(content), 0o640); err != nil {
			t.Fatal(err)
		}
		b, _ := os.ReadFile(filepath.Join(root, "a/state"))
		if string(b) != content {
			t.Errorf("content %q, want %q", b, content)
		}
	}
	fi, _ := os.Stat(filepath.Join(root, "a/state"))
	if fi.Mode().Perm() != 0o640 {
		t.Errorf("mode %v, want 0640 whatever the umask", fi.Mode().Perm())
	}
	entries, _ := os.ReadDir(filepath.Join(root, "a"))
	if len(entries) != 1 {
		t.Errorf("directory holds %d entries, want only the file (no temporary left)", len(entries))
	}
}

func TestSwapSymlinkReplaces(t *testing.T) {
	o, root := newOS(t)
	for _, target := range []string{"x", "y"} {
		if err := SymlinkSynced(o, target, "/a/link"); err != nil {
			t.Fatal(err)
		}
		if got, _ := os.Readlink(filepath.Join(root, "a/link")); got != target {
			t.Errorf("link -> %s, want %s", got, target)
		}
	}
	entries, _ := os.ReadDir(filepath.Join(root, "a"))
	if len(entries) != 1 {
		t.Errorf("directory holds %d entries, want 1", len(entries))
	}
}

// No link below an anchor is followed: not on the way to an entry, not as
// the entry read, and not as the anchor itself. Each refusal names the link.
func TestLinksBelowAnAnchorAreRefused(t *testing.T) {
	o, root := newOS(t)
	outside := t.TempDir()
	os.WriteFile(filepath.Join(outside, "secret"), []byte("s"), 0o644)
	os.Symlink(outside, filepath.Join(root, "a/dir"))
	os.Symlink(filepath.Join(outside, "secret"), filepath.Join(root, "a/file"))
	want := func(what string, err error, link string) {
		t.Helper()
		if !errors.Is(err, ErrSymlink) || !strings.Contains(err.Error(), filepath.Join(root, link)+": a symbolic link where none belongs") {
			t.Errorf("%s: %v, want a refusal naming %s", what, err, link)
		}
	}
	_, err := o.ReadFile("/a/dir/secret", 0)
	want("read through a linked directory", err, "a/dir")
	err = o.Create("/a/dir/new", nil, 0o644)
	want("create through a linked directory", err, "a/dir")
	err = o.WriteFile("/a/dir/new", nil, 0o644)
	want("atomic write through a linked directory", err, "a/dir")
	_, err = o.ReadFile("/a/file", 0)
	want("read a linked file", err, "a/file")
	_, err = o.OpenLock("/a/file", true)
	want("lock a linked file", err, "a/file")
	err = o.Mkdir("/a/dir/sub", 0o755)
	want("mkdir through a linked directory", err, "a/dir")
	if left, _ := os.ReadDir(outside); len(left) != 1 {
		t.Errorf("something was written outside: %d entries", len(left))
	}
	// Replacing a link with a file replaces the link, never writes through.
	if err := o.WriteFile("/a/file", []byte("mine"), 0o644); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(outside, "secret")); string(b) != "s" {
		t.Errorf("wrote through a link: %q", b)
	}
	// RemoveAll of a linked directory removes the link, not its target.
	if err := o.RemoveAll("/a/dir"); err != nil {
		t.Fatal(err)
	}
	if left, _ := os.ReadDir(outside); len(left) != 1 {
		t.Error("RemoveAll followed the link")
	}
	// The anchor itself as a link is refused.
	os.RemoveAll(filepath.Join(root, "a"))
	os.Symlink(outside, filepath.Join(root, "a"))
	o2, _ := NewOS(root, "/a")
	defer o2.Close()
	err = o2.Create("/a/x", nil, 0o644)
	want("create in a linked anchor", err, "a")
}

// Links among an anchor's parents resolve inside the root, as for a system
// booted from it: an absolute link is taken relative to the root.
func TestAnchorParentsResolveInsideTheRoot(t *testing.T) {
	root := t.TempDir()
	os.MkdirAll(filepath.Join(root, "real/a"), 0o755)
	os.Symlink("/real", filepath.Join(root, "var"))
	o, err := NewOS(root, "/var/a")
	if err != nil {
		t.Fatal(err)
	}
	defer o.Close()
	if err := o.Create("/var/a/f", []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(root, "real/a/f")); string(b) != "x" {
		t.Errorf("file not inside the root: %q", b)
	}
}

func TestReadFileLimitsAndKinds(t *testing.T) {
	o, root := newOS(t)
	os.WriteFile(filepath.Join(root, "a/big"), make([]byte, 100), 0o644)
	_, err := o.ReadFile("/a/big", 99)
	var tl *TooLargeError
	if !errors.As(err, &tl) || tl.Size != 100 || tl.Max != 99 {
		t.Errorf("over the limit: %v", err)
	}
	if b, err := o.ReadFile("/a/big", 100); err != nil || len(b) != 100 {
		t.Errorf("at the limit: %d %v", len(b), err)
	}
	os.Mkdir(filepath.Join(root, "a/d"), 0o755)
	if _, err := o.ReadFile("/a/d", 0); !errors.Is(err, ErrNotRegular) {
		t.Errorf("a directory read as a file: %v", err)
	}
	if _, err := o.ReadFile("/a/none", 0); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing file: %v", err)
	}
}

// An overlay shows exactly what the real FS would after the same
// operations, and leaves the disk alone: random sequences of operations
// are applied to a real root and to an overlay of an identical one, and the
// two views compared.
func TestOverlayBehavesAsTheRealFS(t *testing.T) {
	for seed := uint64(1); seed <= 80; seed++ {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			real, _ := newOS(t)
			base, baseRoot := newOS(t)
			for _, fsys := range []FS{real, base} {
				stageRandom(t, fsys, rand.New(rand.NewPCG(seed, 0)))
			}
			before := snapshotHost(t, baseRoot)
			ov := NewOverlay(base)
			rng1, rng2 := rand.New(rand.NewPCG(seed, 1)), rand.New(rand.NewPCG(seed, 1))
			for i := 0; i < 40; i++ {
				op1, err1 := randomOp(real, rng1)
				op2, err2 := randomOp(ov, rng2)
				if op1 != op2 {
					t.Fatalf("step %d: ops diverged: %s / %s", i, op1, op2)
				}
				if (err1 == nil) != (err2 == nil) {
					t.Fatalf("step %d: %s: real %v, overlay %v", i, op1, err1, err2)
				}
				if got, want := view(t, ov), view(t, real); got != want {
					t.Fatalf("step %d: after %s the overlay shows\n%s\nthe real FS\n%s", i, op1, got, want)
				}
			}
			if after := snapshotHost(t, baseRoot); after != before {
				t.Fatal("the overlay wrote to the disk")
			}
		})
	}
}

var names = []string{"x", "y", "z"}

func randomPath(rng *rand.Rand) string {
	p := "/a"
	for d := rng.IntN(3) + 1; d > 0; d-- {
		p = path.Join(p, names[rng.IntN(len(names))])
	}
	return p
}

func stageRandom(t *testing.T, fsys FS, rng *rand.Rand) {
	for i := 0; i < 15; i++ {
		p := randomPath(rng)
		if rng.IntN(2) == 0 {
			MkdirAll(fsys, p, 0o755, false)
		} else {
			MkdirAll(fsys, path.Dir(p), 0o755, false)
			fsys.Create(p, []byte(p), 0o644)
		}
	}
}

// randomOp applies one random operation and says which.
func randomOp(fsys FS, rng *rand.Rand) (string, error) {
	p, q := randomPath(rng), randomPath(rng)
	data := []byte(fmt.Sprint(rng.IntN(1000)))
	switch rng.IntN(14) {
	case 0:
		return "mkdir " + p, fsys.Mkdir(p, 0o755)
	case 1:
		return "create " + p, fsys.Create(p, data, 0o644)
	case 2:
		return "symlink " + p, fsys.Symlink(q, p)
	case 3:
		return "link " + q + " " + p, fsys.Link(q, p)
	case 4:
		return "rename " + q + " " + p, fsys.Rename(q, p)
	case 5:
		return "remove " + p, fsys.Remove(p)
	case 6:
		return "removeall " + p, fsys.RemoveAll(p)
	case 7:
		return "write " + p, fsys.WriteFile(p, data, 0o600)
	case 8:
		return "swap " + p, fsys.SwapSymlink(q, p)
	case 9:
		return "stream " + p, fsys.WriteStream(p, 0o644, func(w io.Writer) error { _, err := w.Write(data); return err })
	case 10:
		return "createstream " + p, fsys.CreateStream(p, 0o640, func(w io.Writer) error { _, err := w.Write(data); return err })
	case 11:
		// A tree with a subdirectory, a file in each and a link to q.
		return "build " + p + " linking " + q, fsys.Build(p, 0o750, []Entry{
			{Name: "f", Data: data, Mode: 0o600},
			{Name: "d", Mode: fs.ModeDir | 0o700},
			{Name: "d/g", Data: data, Mode: 0o644},
			{Name: "d/l", Link: q},
		})
	case 12:
		return "clone " + q + " " + p, fsys.CloneTree(q, p)
	}
	return "mkdirall " + p, MkdirAll(fsys, p, 0o755, false)
}

// view lists everything below /a as the FS shows it.
func view(t *testing.T, fsys FS) string {
	var lines []string
	var walk func(p string)
	walk = func(p string) {
		entries, err := fsys.ReadDir(p)
		if err != nil {
			lines = append(lines, p+": "+err.Error())
			return
		}
		for _, e := range entries {
			q := path.Join(p, e.Name())
			fi, err := fsys.Lstat(q)
			if err != nil {
				t.Fatalf("lstat %s: %v", q, err)
			}
			switch {
			case fi.IsDir():
				lines = append(lines, q+"/")
				walk(q)
			case fi.Mode()&fs.ModeSymlink != 0:
				target, _ := fsys.Readlink(q)
				lines = append(lines, q+" -> "+target)
			default:
				b, err := fsys.ReadFile(q, 0)
				lines = append(lines, fmt.Sprintf("%s %q %v %v", q, b, err, fi.Mode().Perm()))
			}
		}
	}
	walk("/a")
	slices.Sort(lines)
	return strings.Join(lines, "\n")
}

func snapshotHost(t *testing.T, root string) string {
	var lines []string
	filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, _ := os.Lstat(p)
		line := fmt.Sprintf("%s %v %d %d", p, fi.Mode(), fi.Size(), fi.ModTime().UnixNano())
		if fi.Mode().IsRegular() {
			b, _ := os.ReadFile(p)
			line += " " + string(b)
		}
		lines = append(lines, line)
		return nil
	})
	return strings.Join(lines, "\n")
}

// An anchor that does not exist yet (a live directory on a fresh system)
// is created by a dry run's overlay as by the real FS, from the root down.
func TestOverlayCreatesMissingAnchor(t *testing.T) {
	for _, dry := range []bool{false, true} {
		root := t.TempDir()
		o, err := NewOS(root, "/run/x")
		if err != nil {
			t.Fatal(err)
		}
		var fsys FS = o
		if dry {
			fsys = NewOverlay(o)
		}
		if err := MkdirAll(fsys, "/run/x/y", 0o755, true); err != nil {
			t.Fatalf("dry run %v: %v", dry, err)
		}
		if fi, err := fsys.Lstat("/run/x/y"); err != nil || !fi.IsDir() {
			t.Fatalf("dry run %v: %v %v", dry, fi, err)
		}
		if _, err := os.Stat(filepath.Join(root, "run")); dry != errors.Is(err, fs.ErrNotExist) {
			t.Fatalf("dry run %v: /run on disk: %v", dry, err)
		}
		o.Close()
	}
}
