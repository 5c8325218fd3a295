package migrate

import (
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"unsafe"

	"github.com/treeshift/treeshift/internal/model"
	"github.com/treeshift/treeshift/internal/owner"
	"github.com/treeshift/treeshift/internal/supervisor"
	"github.com/treeshift/treeshift/livedb"
)

const svcA = "[main]\n@type = longrun\n@version = 1.0.0\n@description = \"a\"\n@user = ( root )\n@depends = ( b )\n\n[start]\n@execute = ( a )\n"
const svcB = "[main]\n@type = oneshot\n@version = 1.0.0\n@description = \"b\"\n@user = ( root )\n\n[start]\n@execute = ( b )\n"

func newSmall(t *testing.T) *Engine {
	t.Helper()
	root := t.TempDir()
	dir := filepath.Join(root, "etc/treeshift/service")
	os.MkdirAll(dir, 0o755)
	os.WriteFile(filepath.Join(dir, "a"), []byte(svcA), 0o644)
	os.WriteFile(filepath.Join(dir, "b"), []byte(svcB), 0o644)
	o, err := owner.ForUID(0, root, func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	s, err := Open(o, Options{})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestEnablePullsDependenciesAndKeepsFormat(t *testing.T) {
	s := newSmall(t)
	if err := s.CreateTree("t", CreateOptions{Format: 2}); err != nil {
		t.Fatal(err)
	}
	if err := s.EnableServices("t", []string{"a"}); err != nil {
		t.Fatal(err)
	}
	tr, err := s.Load("t")
	if err != nil {
		t.Fatal(err)
	}
	if tr.Format != 2 {
		t.Errorf("tree format %d after enable, want 2", tr.Format)
	}
	var order []string
	for _, e := range tr.Index.Entries {
		order = append(order, e.Name)
	}
	if !reflect.DeepEqual(order, []string{"b", "a"}) {
		t.Errorf("index order %v", order)
	}
	if src := tr.Service("a").Source; src != "/etc/treeshift/service/a" {
		t.Errorf("source recorded as %s, want the path inside the root", src)
	}
}

// Every change leaves exactly one generation when the tree is not live, and
// the live one besides while a live link still points elsewhere; leftovers
// of an interrupted change are collected by the next one.
func TestGenerationsCollected(t *testing.T) {
	s := newSmall(t)
	s.CreateTree("t", CreateOptions{Format: 1})
	s.EnableServices("t", []string{"b"})
	if err := s.Init("t"); err != nil {
		t.Fatal(err)
	}
	// A crash between staging and commit leaves an orphan generation.
	orphan := s.Store.GenDir("t", 99)
	os.MkdirAll(s.Host(orphan), 0o755)
	if err := s.EnableServices("t", []string{"a"}); err != nil {
		t.Fatal(err)
	}
	gens, _ := s.Store.Generations("t")
	cur, _ := s.Load("t")
	if len(gens) != 1 || gens[0] != cur.Gen {
		t.Errorf("generations %v, want only the current %d", gens, cur.Gen)
	}
	target, err := s.Live.Tree("t").Target()
	if err != nil || target != cur.CompiledDir() {
		t.Errorf("live link -> %s (%v), want the current database %s", target, err, cur.CompiledDir())
	}
}

func TestStatusOfLiveTree(t *testing.T) {
	s := newSmall(t)
	s.CreateTree("t", CreateOptions{Format: 3, Enable: true, Current: true})
	s.EnableServices("t", []string{"a"})
	s.Init("t")
	if err := s.Start("t", []string{"a"}); err != nil {
		t.Fatal(err)
	}
	if err := s.Stop("t", []string{"b"}); err != nil {
		t.Fatal(err)
	}
	s.Start("t", []string{"b"})
	st, err := s.Status(nil)
	if err != nil {
		t.Fatal(err)
	}
	ts := st.Trees[0]
	if ts.Format != 3 || !ts.Enabled || ts.Position != 1 || !ts.Current || st.Stamp != 3 {
		t.Errorf("tree status %+v stamp %d", ts, st.Stamp)
	}
	want := []LiveServiceStatus{{Name: "b", Up: true, State: "up"}, {Name: "a", Up: false, State: "down"}}
	if !reflect.DeepEqual(ts.Live.Services, want) {
		t.Errorf("live %+v, want %+v (stopping b stopped a)", ts.Live.Services, want)
	}
	if ts.Live.Compiled != "/var/lib/treeshift/tree/t/compiled" {
		t.Errorf("compiled %s", ts.Live.Compiled)
	}
}

func TestRelativeLiveRefused(t *testing.T) {
	o, _ := owner.ForUID(0, "/", nil)
	_, err := Open(o, Options{Live: "run/x"})
	if _, ok := err.(*UsageError); !ok || !strings.Contains(err.Error(), "not an absolute path") {
		t.Errorf("got %v", err)
	}
}

// A detached status equals the original and shares none of its strings, so
// holding it does not hold the records they were cut from.
func TestDetachedSharesNothing(t *testing.T) {
	record := "name=sshd\ntype=longrun\nversion=1.0\ndigest=sha256:ab\ndepends=net\n"
	cut := func(s string) string { i := strings.Index(record, s); return record[i : i+len(s)] }
	ts := TreeStatus{Name: cut("sshd"), Allow: []string{cut("net")},
		Services: []ServiceStatus{{Name: cut("sshd"), Type: cut("longrun"), Version: cut("1.0"), Digest: cut("sha256:ab"),
			Depends: []string{cut("net")}, Contents: []string{}}},
		Live: LiveStatus{Initialized: true, Compiled: cut("type"), Services: []LiveServiceStatus{{Name: cut("sshd"), Up: true, Pid: 9}}}}
	d := ts.Detached()
	if !reflect.DeepEqual(d, ts) {
		t.Fatalf("detached %+v, want %+v", d, ts)
	}
	start, end := unsafe.StringData(record), unsafe.Add(unsafe.Pointer(unsafe.StringData(record)), len(record))
	for _, s := range []string{d.Name, d.Allow[0], d.Services[0].Name, d.Services[0].Type, d.Services[0].Version,
		d.Services[0].Digest, d.Services[0].Depends[0], d.Live.Compiled, d.Live.Services[0].Name} {
		if p := unsafe.Pointer(unsafe.StringData(s)); uintptr(p) >= uintptr(unsafe.Pointer(start)) && uintptr(p) < uintptr(end) {
			t.Errorf("%q still points into the record", s)
		}
	}
}

// restarting is the files backend, but a service up gets a new pid after
// the given number of state reads: a supervisor restarting it while a
// transition runs.
type restarting struct {
	supervisor.Files
	reads, after int
}

func (r *restarting) States(t *livedb.Tree, x model.Index) (map[string]supervisor.State, error) {
	st, err := r.Files.States(t, x)
	r.reads++
	for n, s := range st {
		if s.Up {
			s.Pid = 100
			if r.reads > r.after {
				s.Pid = 200
			}
			st[n] = s
		}
	}
	return st, err
}

// A service that is up with another process once the new database is in
// place is what verify exists for: the transition is rolled back, naming
// the service, and the tree is as it was.
func TestVerifyCatchesARestartedService(t *testing.T) {
	s := newSmall(t)
	must(t, s.CreateTree("t", CreateOptions{Format: 1, Enable: true}))
	must(t, s.EnableServices("t", []string{"a"}))
	must(t, s.Init("t"))
	must(t, s.Start("t", []string{"a"}))
	// The check phase reads the states twice (condition, saved state);
	// the third read is verify's.
	s.Backend = &restarting{after: 2}
	before, err := s.Status(nil)
	must(t, err)
	s.Backend.(*restarting).reads = 0
	r, err := s.Update(nil, 3)
	if err == nil || !strings.Contains(r.Trees[0].Error, "service b of tree t was up with pid 100 and is now up with pid 200") {
		t.Fatalf("update with a restarted service: %+v, %v", r, err)
	}
	s.Backend = &restarting{after: 1 << 30}
	after, err := s.Status(nil)
	must(t, err)
	if !reflect.DeepEqual(after, before) {
		t.Errorf("tree not rolled back:\nbefore %+v\nafter  %+v", before, after)
	}
}

// A transition moves the generations it no longer needs into the trash,
// and the next change of a tree empties it.
func TestTrashIsEmptiedByTheNextChange(t *testing.T) {
	s := newSmall(t)
	if err := s.CreateTree("t", CreateOptions{Format: 1}); err != nil {
		t.Fatal(err)
	}
	if err := s.EnableServices("t", []string{"a"}); err != nil {
		t.Fatal(err)
	}
	old, err := s.Store.CurrentGen("t")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Update(nil, 3); err != nil {
		t.Fatal(err)
	}
	trash := s.Host(s.Store.TrashDir())
	if _, err := os.Stat(filepath.Join(trash, fmt.Sprintf("t.%d", old), "compiled")); err != nil {
		t.Fatalf("the old generation is not in the trash: %v", err)
	}
	if gens, _ := s.Store.Generations("t"); len(gens) != 1 {
		t.Fatalf("generations left beside the current one: %v", gens)
	}
	if err := s.DisableServices("t", []string{"a"}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(trash); !os.IsNotExist(err) {
		t.Fatalf("the trash is still there after the next change: %v", err)
	}
}
