package tree

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

	"github.com/treeshift/treeshift/format"
	"github.com/treeshift/treeshift/internal/durable"
	"github.com/treeshift/treeshift/internal/treetest"
)

func TestStageCommitLoadEveryFormat(t *testing.T) {
	for _, c := range format.All() {
		s := testStore(t)
		want := treetest.Sample()
		nt, err := s.Stage(want, c.Version(), 0)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.Load(want.Name); !errors.As(err, new(*NotFoundError)) {
			t.Fatalf("v%d: staged tree visible before commit: %v", c.Version(), err)
		}
		if err := s.Commit(nt.Name, nt.Gen, true); err != nil {
			t.Fatal(err)
		}
		got, err := s.Load(want.Name)
		if err != nil {
			t.Fatal(err)
		}
		if got.Format != c.Version() || got.Gen != 1 || !reflect.DeepEqual(got.Tree, want) {
			t.Errorf("v%d: loaded gen %d format %d, tree differs: %v", c.Version(), got.Gen, got.Format, !reflect.DeepEqual(got.Tree, want))
		}
		run, err := os.ReadFile(s.Host(filepath.Join(got.CompiledDir(), "servicedirs/syslogd/run")))
		if err != nil || !strings.HasPrefix(string(run), "#!/bin/sh\n") {
			t.Errorf("v%d: service dir run script %q %v", c.Version(), run, err)
		}
		fi, _ := os.Stat(s.Host(filepath.Join(got.CompiledDir(), "servicedirs/syslogd/run")))
		if fi.Mode().Perm() != 0o755 {
			t.Errorf("run script mode %v", fi.Mode().Perm())
		}
	}
}

func TestGenerations(t *testing.T) {
	s := testStore(t)
	tr := treetest.Sample()
	for i := 1; i <= 3; i++ {
		nt, err := s.Stage(tr, 1, 0)
		if err != nil {
			t.Fatal(err)
		}
		if nt.Gen != i {
			t.Errorf("stage %d got generation %d", i, nt.Gen)
		}
		s.Commit(nt.Name, nt.Gen, true)
	}
	if gens, _ := s.Generations(tr.Name); !reflect.DeepEqual(gens, []int{1, 2, 3}) {
		t.Errorf("generations %v", gens)
	}
	if got, _ := s.Load(tr.Name); got.Gen != 3 {
		t.Errorf("current generation %d, want 3", got.Gen)
	}
	if names, _ := s.Names(); !reflect.DeepEqual(names, []string{"boot"}) {
		t.Errorf("names %v", names)
	}
	if err := s.Destroy(tr.Name); err != nil {
		t.Fatal(err)
	}
	entries, _ := os.ReadDir(s.Host(filepath.Join(s.Dir, "tree")))
	if len(entries) != 0 {
		t.Errorf("destroy left %d entries", len(entries))
	}
}

func TestLoadRefusesForeignName(t *testing.T) {
	s := testStore(t)
	nt, _ := s.Stage(treetest.Sample(), 2, 0)
	s.Commit(nt.Name, nt.Gen, true)
	// A generation moved under another tree's name is not that tree.
	os.Rename(s.Host(s.GenDir("boot", 1)), s.Host(s.GenDir("other", 1)))
	os.Symlink(".other.1", s.Host(s.Pointer("other")))
	_, err := s.Load("other")
	if err == nil || !strings.Contains(err.Error(), `records tree "boot", but is tree other`) {
		t.Errorf("got %v", err)
	}
}

func TestStateRoundTripAndErrors(t *testing.T) {
	s := testStore(t)
	if st, err := s.ReadState(); err != nil || st.Stamp != 0 {
		t.Fatalf("missing state: %+v %v", st, err)
	}
	want := State{Stamp: 2, Current: "boot", Order: []string{"boot", "net"}}
	if err := s.WriteState(want); err != nil {
		t.Fatal(err)
	}
	got, err := s.ReadState()
	if err != nil || !got.Equal(want) {
		t.Fatalf("read back %+v %v", got, err)
	}
	for content, msg := range map[string]string{
		"":                                          "truncated",
		"system=1\nstamp=2\ncurrent=\n":             "has 3 lines, expected 4",
		"system=2\nstamp=2\ncurrent=\norder=\n":     `unknown system state version "2"`,
		"system=1\nstamp=x\ncurrent=\norder=\n":     `stamp "x" is not a format version`,
		"system=1\nstamp=1\ncurrent=\norder=a,a\n":  "names a twice",
		"system=1\nstamp=1\norder=\ncurrent=\n":     "expected current=",
		"system=1\nstamp=1\ncurrent=../x\norder=\n": "starts with a dot",
	} {
		os.WriteFile(s.Host(s.StatePath()), []byte(content), 0o644)
		_, err := s.ReadState()
		if err == nil || !strings.Contains(err.Error(), msg) || !strings.HasPrefix(err.Error(), s.Host(s.StatePath())+": ") {
			t.Errorf("state %q: got %v, want %q naming the file", content, err, msg)
		}
	}
}

func TestLockBusyNamesHolder(t *testing.T) {
	s := testStore(t)
	l, err := s.Lock(time.Second, true, nil)
	if err != nil {
		t.Fatal(err)
	}
	var told []Holder
	_, err = s.Lock(50*time.Millisecond, true, func(h Holder) { told = append(told, h) })
	var be *BusyError
	if !errors.As(err, &be) || be.Holder.PID != os.Getpid() || !strings.Contains(be.Holder.Command, "tree.test") {
		t.Fatalf("second lock: %v, want busy held by pid %d (tree.test ...)", err, os.Getpid())
	}
	if len(told) != 1 || told[0] != be.Holder {
		t.Fatalf("waiting told %v, want once, of %v", told, be.Holder)
	}
	l.Unlock()
	l2, err := s.Lock(50*time.Millisecond, true, func(Holder) { t.Error("told of a wait that did not happen") })
	if err != nil {
		t.Fatalf("lock after unlock: %v", err)
	}
	l2.Unlock()
	if b, _ := os.ReadFile(s.Host(filepath.Join(s.Dir, "lock"))); len(b) != 0 {
		t.Errorf("lock file holds %q, want nothing written", b)
	}
}

// The holder is the process locking the same file: the same inode number on
// another filesystem is someone else's lock.
func TestFindHolderMatchesDeviceAndInode(t *testing.T) {
	self := os.Getpid()
	locks := fmt.Sprintf(`1: FLOCK  ADVISORY  WRITE 1 08:01:4242 0 EOF
1: -> FLOCK  ADVISORY  WRITE 2 fd:00:4242 0 EOF
2: FLOCK  ADVISORY  WRITE %d fd:00:4242 0 EOF
3: POSIX  ADVISORY  WRITE 3 fd:01:4242 0 EOF
`, self)
	if h := findHolder(locks, 0xfd, 0, 4242); h.PID != self {
		t.Errorf("fd:00:4242: holder %v, want pid %d", h, self)
	}
	if h := findHolder(locks, 0x103, 2, 4242); h.PID != 0 || h.String() != "an unknown process" {
		t.Errorf("103:02:4242: holder %v, want none", h)
	}
	if h := findHolder(locks, 8, 1, 4242); h.PID != 1 {
		t.Errorf("08:01:4242: holder %v, want pid 1", h)
	}
	if h := findHolder(locks, 0xfd, 1, 4242); h.PID != 0 {
		t.Errorf("a POSIX lock is not an flock: holder %v", h)
	}
}

// testStore is a store in a fresh directory.
func testStore(t *testing.T) *Store {
	t.Helper()
	root := t.TempDir()
	fsys, err := durable.NewOS(root, "/sys")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { fsys.Close() })
	return Open(fsys, "/sys")
}

// A symbolic link planted where the system directory has a directory or a
// file is refused, naming it, and nothing is written where it points.
func TestPlantedLinksAreNotFollowed(t *testing.T) {
	for _, name := range []string{"tree", "journal", "lock", "state", "live"} {
		t.Run(name, func(t *testing.T) {
			s := testStore(t)
			if err := s.WriteState(State{Stamp: 1}); err != nil {
				t.Fatal(err)
			}
			outside := t.TempDir()
			planted := s.Host(filepath.Join(s.Dir, name))
			os.RemoveAll(planted)
			if err := os.Symlink(outside, planted); err != nil {
				t.Fatal(err)
			}
			var err error
			switch name {
			case "tree":
				_, err = s.Stage(treetest.Sample(), 1, 0)
			case "journal":
				err = s.WriteJournal("update", func(w io.Writer) error { _, err := io.WriteString(w, "{}"); return err })
			case "lock":
				_, err = s.Lock(time.Second, true, nil)
			case "state":
				_, err = s.ReadState()
			case "live":
				err = s.SetLiveRecord("boot", "/run/treeshift")
			}
			if err == nil || !strings.Contains(err.Error(), planted+": a symbolic link where none belongs") {
				t.Errorf("through a link at %s: %v", name, err)
			}
			if left, _ := os.ReadDir(outside); len(left) > 0 {
				t.Errorf("wrote %s through the link", left[0].Name())
			}
		})
	}
}
