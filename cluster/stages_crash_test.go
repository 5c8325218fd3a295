package cluster_test

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"syscall"
	"testing"

	"github.com/treeshift/treeshift/internal/faulttest"
)

// clusterDir stages three members (each a live tree in format 1 with a
// service up) and a store, and brings the cluster through the stages
// given.
func clusterDir(t *testing.T, bin string, stages ...[]string) string {
	t.Helper()
	dir := t.TempDir()
	must := func(args ...string) {
		t.Helper()
		if out, code := run(t, bin, nil, args...); code != 0 {
			t.Fatalf("%v: exit %d\n%s", args, code, out)
		}
	}
	var members []string
	for _, m := range []string{"m1", "m2", "m3"} {
		root := filepath.Join(dir, m)
		defs := filepath.Join(root, "etc/treeshift/service")
		os.MkdirAll(defs, 0o755)
		for _, s := range []string{"a", "b"} {
			os.WriteFile(filepath.Join(defs, s), []byte(fmt.Sprintf("[main]\n@type = longrun\n@version = 1.0.0\n@description = %q\n@user = ( root )\n\n[start]\n@execute = ( run %s )\n", s, s)), 0o644)
		}
		must("--root", root, "tree", "create", "--format", "1", "-E", "t")
		must("--root", root, "enable", "-t", "t", "a", "b")
		must("--root", root, "init", "t")
		must("--root", root, "start", "-t", "t", "a")
		members = append(members, "--member", m+"="+root)
	}
	store := filepath.Join(dir, "store")
	must(append([]string{"cluster", "--store", store, "init"}, members...)...)
	for _, s := range stages {
		must(append([]string{"cluster", "--store", store}, s...)...)
	}
	return dir
}

// copyCluster copies a cluster directory and points its record at the
// copied member roots.
func copyCluster(t *testing.T, dir string) string {
	t.Helper()
	to := filepath.Join(t.TempDir(), "c")
	if out, err := exec.Command("cp", "-a", dir, to).CombinedOutput(); err != nil {
		t.Fatalf("cp: %v\n%s", err, out)
	}
	fixStore(t, filepath.Join(to, "store"), dir, to)
	return to
}

// memberState is a member's status document, its formats and stamp
// checked against v and then set aside, with whether every live link
// resolves.
func memberState(t testing.TB, bin, root string, v int) string {
	t.Helper()
	out, code := run(t, bin, nil, "--root", root, "status", "--json")
	if code != 0 {
		t.Fatalf("status of %s: exit %d\n%s", root, code, out)
	}
	re := regexp.MustCompile(`"(format|stamp)": (\d+)`)
	for _, m := range re.FindAllStringSubmatch(out, -1) {
		if m[2] != fmt.Sprint(v) {
			t.Fatalf("%s: %s %s, want %d:\n%s", root, m[1], m[2], v, out)
		}
	}
	links, _ := filepath.Glob(filepath.Join(root, "run/treeshift/tree/0/*/compiled"))
	for _, l := range links {
		if _, err := os.Stat(filepath.Join(l, ".")); err != nil {
			t.Fatalf("%s dangles", l)
		}
	}
	return re.ReplaceAllString(out, `"$1": N`)
}

// Every stage that changes a member's trees goes through the member's
// journaled engine: killed after any durable step, the stage shows as
// interrupted, and running it again finishes it, with the member in the
// stage's format, stamp included, and its state otherwise as it was.
func TestStagesKilledAtEveryStepResume(t *testing.T) {
	t.Parallel()
	bin := faulttest.Binary(t)
	cases := []struct {
		name   string
		before [][]string // stages run first
		stage  []string
		member string // whose trees the stage changes
		to     int    // and their format after it
		// prep changes the member (treeshift commands on its root) after
		// the stages before: what the stage must then undo.
		prep [][]string
	}{
		{"install", [][]string{{"setup", "m1"}, {"preinstall"}}, []string{"install"}, "m1", 3, nil},
		{"roll", [][]string{{"setup", "m1"}, {"preinstall"}, {"install"}, {"postinstall"}}, []string{"roll", "m2"}, "m2", 3, nil},
		{"switch", [][]string{{"setup", "m1"}, {"preinstall"}, {"install"}, {"postinstall"}, {"roll", "m2"}, {"roll", "m3"}}, []string{"switch"}, "store/shared", 3, nil},
		{"undo roll", [][]string{{"setup", "m1"}, {"preinstall"}, {"install"}, {"postinstall"}, {"roll", "m2"}}, []string{"undo", "roll", "m2"}, "m2", 1, nil},
		{"undo install", [][]string{{"setup", "m1"}, {"preinstall"}, {"install"}}, []string{"undo", "install"}, "m1", 1, nil},
		// A tree made since the roll: the discard destroys it (apply),
		// then restores the others; crashed anywhere, run again, the
		// member is as before its roll.
		{"undo roll --discard", [][]string{{"setup", "m1"}, {"preinstall"}, {"install"}, {"postinstall"}, {"roll", "m2"}},
			[]string{"undo", "roll", "m2", "--discard"}, "m2", 1, [][]string{{"tree", "create", "-E", "extra"}}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			// The cases are processes and disk; the etcd tests mostly
			// wait on leases: run together, they share the CPUs.
			t.Parallel()
			staged := clusterDir(t, bin, c.before...)
			from := 1
			if c.to == 1 {
				from = 3
			}
			want := memberState(t, bin, filepath.Join(staged, c.member), from)
			for _, args := range c.prep {
				if out, code := run(t, bin, nil, append([]string{"--root", filepath.Join(staged, c.member)}, args...)...); code != 0 {
					t.Fatalf("%v: exit %d\n%s", args, code, out)
				}
			}
			probe := copyCluster(t, staged)
			out, code := run(t, bin, []string{"TREESHIFT_TRACE_STEPS=1"}, append([]string{"cluster", "--store", filepath.Join(probe, "store")}, c.stage...)...)
			if code != 0 {
				t.Fatalf("%v: exit %d\n%s", c.stage, code, out)
			}
			steps := len(regexp.MustCompile(`(?m)^step \d+: `).FindAllString(out, -1))
			if steps < 5 {
				t.Fatalf("%v traced %d steps:\n%s", c.stage, steps, out)
			}
			stride := faulttest.Stride(8)
			for k := 1; k <= steps; k += stride {
				dir := copyCluster(t, staged)
				args := append([]string{"cluster", "--store", filepath.Join(dir, "store")}, c.stage...)
				if out, code := run(t, bin, []string{fmt.Sprintf("TREESHIFT_CRASH_AFTER=%d", k)}, args...); code != -int(syscall.SIGKILL) {
					t.Fatalf("crash after step %d of %v: exit %d\n%s", k, c.stage, code, out)
				}
				if out, code := run(t, bin, nil, args...); code != 0 {
					t.Fatalf("%v again after a crash at step %d: exit %d\n%s", c.stage, k, code, out)
				}
				got := memberState(t, bin, filepath.Join(dir, c.member), c.to)
				if got != want {
					t.Fatalf("after a crash at step %d of %v and a re-run, member %s is\n%s\nwas\n%s", k, c.stage, c.member, got, want)
				}
				out, _ := run(t, bin, nil, "cluster", "--store", filepath.Join(dir, "store"), "status", "--json")
				var st struct{ Interrupted []string }
				json.Unmarshal([]byte(out), &st)
				if len(st.Interrupted) != 0 {
					t.Fatalf("after a crash at step %d and a re-run, status still shows %v", k, st.Interrupted)
				}
			}
			t.Logf("%v: %d durable steps, crashed at every %d", c.stage, steps, stride)
		})
	}
}

// An undo is refused while a member's task of a later stage is not over
// (an install cut short): its agent would finish the task after the undo,
// and the member would be in the new format while the record says it is
// not. The refusal names the command that finishes the task, which works.
func TestUndoRefusedWhileATaskIsOpen(t *testing.T) {
	t.Parallel()
	bin := faulttest.Binary(t)
	dir := clusterDir(t, bin, []string{"setup", "m1"}, []string{"preinstall"})
	store := filepath.Join(dir, "store")
	if out, code := run(t, bin, []string{"TREESHIFT_CRASH_AFTER=3"}, "cluster", "--store", store, "install"); code != -int(syscall.SIGKILL) {
		t.Fatalf("install crashed after step 3: exit %d\n%s", code, out)
	}
	record, err := os.ReadFile(filepath.Join(store, "cluster.json"))
	if err != nil {
		t.Fatal(err)
	}
	finish := regexp.MustCompile(`undo preinstall refused: member m1's install to format 3 \(task \d+, running\) is not over: finish it first with treeshift cluster --store \S+ install\n`)
	if out, code := run(t, bin, nil, "cluster", "--store", store, "undo", "preinstall"); code != 111 || !finish.MatchString(out) {
		t.Fatalf("undo preinstall with the install cut short: exit %d, want 111 naming the install:\n%s", code, out)
	}
	if now, _ := os.ReadFile(filepath.Join(store, "cluster.json")); string(now) != string(record) {
		t.Fatalf("a refused undo changed the record:\n%s\nwas\n%s", now, record)
	}
	if out, code := run(t, bin, nil, "cluster", "--store", store, "install"); code != 0 {
		t.Fatalf("install again: exit %d\n%s", code, out)
	}
	memberState(t, bin, filepath.Join(dir, "m1"), 3)
	if out, code := run(t, bin, nil, "cluster", "--store", store, "undo", "install"); code != 0 {
		t.Fatalf("undo install once it finished: exit %d\n%s", code, out)
	}
	memberState(t, bin, filepath.Join(dir, "m1"), 1)
}
