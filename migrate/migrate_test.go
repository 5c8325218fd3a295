package migrate

import (
	"crypto/sha256"
	"encoding/json"
	"errors"
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
	"github.com/treeshift/treeshift/system"
)

// newSystem stages a root holding the testscripts' service definitions.
func newSystem(t *testing.T) *system.System {
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
	o, err := owner.ForUID(0, root, func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	s, err := system.New(o, owner.DefaultLive)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// stage builds a live tree "t" in format v with services up, next to an
// enabled neighbour so start positions matter.
func stage(t *testing.T, s *system.System, v int) {
	must(t, s.CreateTree("first", system.CreateOptions{Format: 3, Enable: true}))
	must(t, s.CreateTree("t", system.CreateOptions{Format: v, Enable: true, Current: true, Allow: []string{"root", "alice"}}))
	must(t, s.EnableServices("t", []string{"net", "mount-run"}))
	must(t, s.Init("t"))
	must(t, s.Start("t", []string{"sshd"}))
}

// statusWithoutFormat is status --json of the owner, the tree formats and
// the format stamp blanked: what a migration must leave identical.
func statusWithoutFormat(t *testing.T, s *system.System) string {
	t.Helper()
	st, err := s.Status(nil)
	must(t, err)
	st.Stamp = 0
	for i := range st.Trees {
		st.Trees[i].Format = 0
	}
	b, _ := json.MarshalIndent(st, "", " ")
	return string(b)
}

// settle brings the tree into a condition every hop of p allows, the way an
// administrator would follow the advice.
func settle(t *testing.T, s *system.System, p *Plan) {
	for _, h := range p.Hops {
		switch h.Tunability {
		case WhenUnmonitored, WhenOffline:
			must(t, s.Stop(p.Tree, []string{"mount-run"}))
		case WhenDisabled:
			must(t, s.SetTree(p.Tree, system.DisableTree(p.Tree)))
		case WhenUnmanaged:
			must(t, s.Stop(p.Tree, []string{"mount-run"}))
			must(t, s.Uninit(p.Tree))
		}
	}
}

func TestEveryPairOfVersions(t *testing.T) {
	for _, a := range format.All() {
		for _, b := range format.All() {
			t.Run(fmt.Sprintf("%d-to-%d", a.Version(), b.Version()), func(t *testing.T) {
				s := newSystem(t)
				stage(t, s, a.Version())
				m := &Migrator{Sys: s, Registry: Default()}
				p, err := m.Plan("t", b.Version())
				must(t, err)
				settle(t, s, p)
				before := statusWithoutFormat(t, s)
				if _, err := m.Migrate("t", b.Version()); err != nil {
					t.Fatal(err)
				}
				tr, err := s.Load("t")
				must(t, err)
				if tr.Format != b.Version() {
					t.Fatalf("tree in format %d after migrating to %d", tr.Format, b.Version())
				}
				if after := statusWithoutFormat(t, s); after != before {
					t.Errorf("status changed beyond the format:\nbefore %s\nafter  %s", before, after)
				}
				gens, _ := s.Store.Generations("t")
				if len(gens) != 1 || gens[0] != tr.Gen {
					t.Errorf("generations left: %v (current %d)", gens, tr.Gen)
				}
				// Re-running is a no-op.
				p2, err := m.Migrate("t", b.Version())
				if err != nil || len(p2.Hops) != 0 {
					t.Errorf("second migrate: %+v %v", p2, err)
				}
			})
		}
	}
}

func TestRefusedBeforeAnyChange(t *testing.T) {
	s := newSystem(t)
	stage(t, s, 3)
	root := s.Owner.Root
	before := snapshot(t, root)
	m := &Migrator{Sys: s, Registry: Default()}
	_, err := m.Migrate("t", 1)
	var re *RefusedError
	if !errors.As(err, &re) {
		t.Fatalf("got %v, want a refusal", err)
	}
	// The command suggested acts on the same root.
	want := "tree t: format 3 to 1 is WHEN_OFFLINE: stop services mount-run syslogd sshd of tree t: treeshift --root " + root + " stop -t t mount-run syslogd sshd"
	if err.Error() != want {
		t.Errorf("refusal %q\nwant     %q", err, want)
	}
	if after := snapshot(t, root); after != before {
		t.Errorf("a refused migration changed files:\n%s", diff(before, after))
	}
}

func TestAtCreationPrintsRecreateCommands(t *testing.T) {
	s := newSystem(t)
	stage(t, s, 1)
	r, _ := ParseRegistry("version 1\nversion 2\nupgrade_from 1 AT_CREATION\nversion 3\n")
	m := &Migrator{Sys: s, Registry: r}
	p, err := m.Plan("t", 2)
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
		s := newSystem(t)
		tr := treetest.Random(rng, 15)
		from := 1 + rng.IntN(3)
		to := 1 + rng.IntN(3)
		nt, err := s.Store.Stage(tr, from)
		must(t, err)
		must(t, s.Store.Commit(nt))
		m := &Migrator{Sys: s, Registry: Default()}
		if _, err := m.Migrate(tr.Name, to); err != nil {
			t.Fatalf("tree %d: %d -> %d: %v", i, from, to, err)
		}
		got, err := s.Load(tr.Name)
		must(t, err)
		if got.Format != to || !reflect.DeepEqual(got.Tree, tr) {
			t.Fatalf("tree %d: %d -> %d changed the tree", i, from, to)
		}
	}
}

// failing wraps a step; it does the step's work (or not) and then fails, as
// a full disk or a killed helper would.
type failing struct {
	Step
	doFirst bool
}

func (f *failing) Apply() error {
	if f.doFirst {
		if err := f.Step.Apply(); err != nil {
			return err
		}
	}
	return errors.New("injected fault")
}

func TestFaultAtEveryStepLeavesTreeAsItWas(t *testing.T) {
	for k := 0; k < 4; k++ {
		for _, doFirst := range []bool{false, true} {
			t.Run(fmt.Sprintf("step%d-after-work-%v", k, doFirst), func(t *testing.T) {
				s := newSystem(t)
				stage(t, s, 1)
				m := &Migrator{Sys: s, Registry: Default()}
				p, err := m.Plan("t", 3)
				must(t, err)
				steps, err := m.Steps(p)
				must(t, err)
				if len(steps) != 4 {
					t.Fatalf("plan 1 -> 3 has %d steps, want two hops, the commit and the live switch", len(steps))
				}
				before := snapshot(t, s.Owner.Root)
				steps[k] = &failing{Step: steps[k], doFirst: doFirst}
				err = Run(steps, nil)
				if err == nil || !strings.Contains(err.Error(), "injected fault") {
					t.Fatalf("Run = %v", err)
				}
				if after := snapshot(t, s.Owner.Root); after != before {
					t.Errorf("tree not restored:\n%s", diff(before, after))
				}
			})
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
