package migrate

import (
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/treeshift/treeshift/format"
	"github.com/treeshift/treeshift/internal/owner"
	"github.com/treeshift/treeshift/internal/treetest"
)

// newEngine stages a root holding the testscripts' service definitions and
// opens root's engine on it, with opts.
func newEngine(t *testing.T, opts ...func(*Options)) *Engine {
	t.Helper()
	root := t.TempDir()
	dst := filepath.Join(root, "etc/treeshift/service")
	os.MkdirAll(dst, 0o755)
	src := "../testscripts/testdata/services"
	entries, err := os.ReadDir(src)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		b, _ := os.ReadFile(filepath.Join(src, e.Name()))
		os.WriteFile(filepath.Join(dst, e.Name()), b, 0o644)
	}
	return reopen(t, root, opts...)
}

// reopen opens root's engine of root with opts, as another run would.
func reopen(t *testing.T, root string, opts ...func(*Options)) *Engine {
	t.Helper()
	o, err := owner.ForUID(0, root, func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	var op Options
	for _, f := range opts {
		f(&op)
	}
	e, err := Open(o, op)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// stage builds a live tree "t" in format v with services up, next to an
// enabled neighbour so start positions matter.
func stage(t *testing.T, s *Engine, v int) {
	must(t, s.CreateTree("first", CreateOptions{Format: v, Enable: true}))
	must(t, s.CreateTree("t", CreateOptions{Format: v, Enable: true, Current: true, Allow: []string{"root", "alice"}}))
	must(t, s.EnableServices("t", []string{"net", "mount-run"}))
	must(t, s.Init("t"))
	must(t, s.Start("t", []string{"sshd"}))
}

// statusAt is status --json of the owner after checking that the stamp and
// every tree are in format v; the formats are then set to 0, the one
// difference a transition makes, so the rest can be compared whole.
func statusAt(t *testing.T, s *Engine, v int) string {
	t.Helper()
	st, err := s.Status(nil)
	must(t, err)
	if st.Stamp != v {
		t.Errorf("stamp %d, want %d", st.Stamp, v)
	}
	st.Stamp = 0
	for i := range st.Trees {
		if st.Trees[i].Format != v {
			t.Errorf("tree %s in format %d, want %d", st.Trees[i].Name, st.Trees[i].Format, v)
		}
		st.Trees[i].Format = 0
	}
	b, _ := json.MarshalIndent(st, "", " ")
	return string(b)
}

// settle brings the tree into a condition every hop of p allows, the way an
// administrator would follow the advice.
func settle(t *testing.T, s *Engine, p *Plan) {
	for _, h := range p.Hops {
		if h.Satisfied {
			continue
		}
		if h.Tunability == WhenUnmonitored {
			must(t, s.Unmonitor(p.Tree, []string{"mount-run", "syslogd", "sshd", "ntpd"}))
			continue
		}
		// Each level above asks for what the one below does, and more.
		tr, err := s.Load(p.Tree)
		must(t, err)
		c, err := s.ConditionOf(tr)
		must(t, err)
		if len(c.Up) > 0 {
			must(t, s.Stop(p.Tree, []string{"mount-run"}))
		}
		if h.Tunability >= WhenUnmanaged && c.Live {
			must(t, s.Uninit(p.Tree))
		}
		if h.Tunability >= WhenDisabled {
			must(t, s.SetTree(p.Tree, DisableTree(p.Tree)))
		}
	}
}

func TestEveryPairOfVersions(t *testing.T) {
	for _, a := range format.All() {
		for _, b := range format.All() {
			t.Run(fmt.Sprintf("%d-to-%d", a.Version(), b.Version()), func(t *testing.T) {
				s := newEngine(t)
				stage(t, s, a.Version())
				plans, err := s.Plans(nil, b.Version())
				must(t, err)
				for _, p := range plans {
					settle(t, s, p)
				}
				before := statusAt(t, s, a.Version())
				if _, err := s.Update(nil, b.Version()); err != nil {
					t.Fatal(err)
				}
				if after := statusAt(t, s, b.Version()); after != before {
					t.Errorf("status changed beyond the format:\nbefore %s\nafter  %s", before, after)
				}
				tr, err := s.Load("t")
				must(t, err)
				gens, _ := s.Store.Generations("t")
				if len(gens) != 1 || gens[0] != tr.Gen {
					t.Errorf("generations left: %v (current %d)", gens, tr.Gen)
				}
				// Re-running is a no-op.
				r, err := s.Update(nil, b.Version())
				if err != nil || r.Trees[1].Outcome != Unchanged {
					t.Errorf("second update: %+v %v", r, err)
				}
			})
		}
	}
}

func TestRefusedBeforeAnyChange(t *testing.T) {
	s := newEngine(t)
	stage(t, s, 3)
	unlock, err := s.LockTrees()
	must(t, err)
	unlock()
	root := s.Owner.Root
	before := snapshot(t, root)
	r, err := s.Update([]string{"t"}, 1)
	if err == nil || r.Trees[0].Outcome != Refused {
		t.Fatalf("got %+v, %v, want a refusal", r, err)
	}
	// The command suggested acts on the same root.
	want := "tree t: format 3 to 1 is WHEN_OFFLINE: stop services mount-run syslogd sshd of tree t: treeshift --root " + root + " stop -t t mount-run syslogd sshd"
	if r.Trees[0].Error != want {
		t.Errorf("refusal %q\nwant     %q", r.Trees[0].Error, want)
	}
	if after := snapshot(t, root); after != before {
		t.Errorf("a refused migration changed files:\n%s", diff(before, after))
	}
}

func TestAtCreationPrintsRecreateCommands(t *testing.T) {
	s := newEngine(t)
	stage(t, s, 1)
	s.Registry, _ = ParseRegistry("version 1\nversion 2\nupgrade_from 1 AT_CREATION\nversion 3\n")
	p, err := s.Plan("t", 2)
	must(t, err)
	want := []string{
		"treeshift stop -t t mount-run syslogd sshd",
		"treeshift uninit t",
		"treeshift tree destroy t",
		"treeshift tree create --format 2 -S first -c -a alice,root t",
		"treeshift enable -t t mount-run net ntpd sshd syslogd",
		"treeshift init t",
		"treeshift start -t t mount-run syslogd sshd",
	}
	for i := range want {
		want[i] = strings.Replace(want[i], "treeshift", "treeshift --root "+s.Owner.Root, 1)
	}
	if p.OK() || !reflect.DeepEqual(p.Recreate, want) {
		t.Errorf("plan ok=%v recreate:\n%s\nwant:\n%s", p.OK(), strings.Join(p.Recreate, "\n"), strings.Join(want, "\n"))
	}
}

// Random trees, random version pairs, not live: every migration reads back
// as the same tree.
func TestRandomTreesSurviveEveryPath(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 7))
	for i := 0; i < 60; i++ {
		s := newEngine(t)
		tr := treetest.Random(rng, 15)
		from := 1 + rng.IntN(3)
		to := 1 + rng.IntN(3)
		nt, err := s.Store.Stage(tr, from, 0)
		must(t, err)
		must(t, s.Store.Commit(nt.Name, nt.Gen, true))
		if _, err := s.Update(nil, to); err != nil {
			t.Fatalf("tree %d: %d -> %d: %v", i, from, to, err)
		}
		got, err := s.Load(tr.Name)
		must(t, err)
		if got.Format != to || !reflect.DeepEqual(got.Tree, tr) {
			t.Fatalf("tree %d: %d -> %d changed the tree", i, from, to)
		}
	}
}

// snapshot lists every path below root with its mode, content hash and link
// target: the bytes on disk, not the timestamps.
func snapshot(t *testing.T, root string) string {
	t.Helper()
	var b strings.Builder
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := os.Lstat(p)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		fmt.Fprintf(&b, "%s %v", rel, fi.Mode())
		switch {
		case fi.Mode()&fs.ModeSymlink != 0:
			target, _ := os.Readlink(p)
			fmt.Fprintf(&b, " -> %s", target)
		case fi.Mode().IsRegular():
			data, _ := os.ReadFile(p)
			fmt.Fprintf(&b, " %x", sha256.Sum256(data))
		}
		b.WriteByte('\n')
		return nil
	})
	must(t, err)
	return b.String()
}

func diff(a, b string) string {
	al, bl := strings.Split(a, "\n"), strings.Split(b, "\n")
	in := func(l []string, x string) bool {
		for _, y := range l {
			if x == y {
				return true
			}
		}
		return false
	}
	var out []string
	for _, x := range al {
		if !in(bl, x) {
			out = append(out, "- "+x)
		}
	}
	for _, x := range bl {
		if !in(al, x) {
			out = append(out, "+ "+x)
		}
	}
	return strings.Join(out, "\n")
}
