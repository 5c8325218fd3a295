package migrate_test

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"

	"github.com/treeshift/treeshift/internal/faulttest"
)

// previousRelease is the last commit whose update writes journals of
// schema 2 (one JSON document, synced, committed by a rewrite): the
// format version this one replaces.
const previousRelease = "dd437762de289aeca062af0f7e7f46fac059bb25"

// oldBinary builds the fault-injecting treeshift of previousRelease from
// the repository's history into the test's temporary directory, or skips
// saying why it cannot. Go's build cache makes a second build mostly a
// link; nothing is kept outside the test's own directories.
func oldBinary(t *testing.T) string {
	t.Helper()
	top, err := exec.Command("git", "rev-parse", "--show-toplevel").Output()
	if err != nil {
		t.Skipf("no git repository to build the previous release from: %v", err)
	}
	repo := strings.TrimSpace(string(top))
	if err := exec.Command("git", "-C", repo, "cat-file", "-e", previousRelease+"^{commit}").Run(); err != nil {
		t.Skipf("commit %s (the previous release) is not in this clone (shallow?)", previousRelease[:12])
	}
	src := t.TempDir()
	archive := exec.Command("git", "-C", repo, "archive", "--format=tar", previousRelease)
	var tarball bytes.Buffer
	archive.Stdout = &tarball
	if err := archive.Run(); err != nil {
		t.Fatalf("git archive %s: %v", previousRelease, err)
	}
	untar := exec.Command("tar", "-x", "-C", src)
	untar.Stdin = &tarball
	if out, err := untar.CombinedOutput(); err != nil {
		t.Fatalf("tar -x: %v\n%s", err, out)
	}
	bin := filepath.Join(t.TempDir(), "treeshift-old")
	build := exec.Command("go", "build", "-tags", "faultinject", "-o", bin, "./cmd/treeshift")
	build.Dir = src
	build.Env = append(os.Environ(), "GOFLAGS=-buildvcs=false", "GOWORK=off")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build the previous release: %v\n%s", err, out)
	}
	return bin
}

// An update of the previous release killed at any of its durable steps is
// finished by this one: its schema 2 journal is read, each tree rolled back
// or completed, and the update that follows converts the system, which is
// then as the previous release's own update leaves it.
func TestPreviousReleaseInterruptedRunIsFinished(t *testing.T) {
	old := oldBinary(t)
	bin := faultBinary(t)
	staged := stageRoot(t)
	want := normalizedStatus(t, bin, staged, 0)

	probe := copyRoot(t, staged)
	out, code := run(t, old, []string{"TREESHIFT_TRACE_STEPS=1"}, "--root", probe, "update")
	if code != 0 {
		t.Fatalf("the previous release's update: exit %d\n%s", code, out)
	}
	steps := len(regexp.MustCompile(`(?m)^step \d+: `).FindAllString(out, -1))
	if steps < 20 {
		t.Fatalf("only %d durable steps traced:\n%s", steps, out)
	}
	var schema2, completed, rolledBack int
	for n := 1; n <= steps; n += faulttest.Stride(8) {
		root := copyRoot(t, staged)
		out, code := run(t, old, []string{fmt.Sprintf("TREESHIFT_CRASH_AFTER=%d", n)}, "--root", root, "update")
		if code != -int(syscall.SIGKILL) {
			t.Fatalf("crash of the previous release after step %d: exit %d, want killed\n%s", n, code, out)
		}
		when := fmt.Sprintf("after the previous release's crash at step %d", n)
		if b, err := os.ReadFile(filepath.Join(root, "var/lib/treeshift/journal/update")); err == nil {
			if !bytes.HasPrefix(b, []byte(`{"schema":2,`)) {
				t.Fatalf("%s: the journal is not of schema 2:\n%s", when, b)
			}
			schema2++
		}
		out, code = run(t, bin, nil, "--root", root, "-v", "2", "update")
		if code != 0 {
			t.Fatalf("%s: this release's update: exit %d\n%s", when, code, out)
		}
		rolledBack += strings.Count(out, "rolled back the interrupted transition")
		completed += strings.Count(out, "completed the interrupted transition")
		checkLinks(t, root, when+" and this release's update")
		if got := normalizedStatus(t, bin, root, 3); got != want {
			t.Fatalf("%s: the system after this release's update:\n%s\nwant:\n%s", when, got, want)
		}
		journals, _ := filepath.Glob(filepath.Join(root, "var/lib/treeshift/journal/*"))
		gens, _ := filepath.Glob(filepath.Join(root, "var/lib/treeshift/tree/.*"))
		if len(journals) > 0 || len(gens) != 3 {
			t.Fatalf("%s: left behind journals %v, generations %v", when, journals, gens)
		}
	}
	t.Logf("%d crashes of the previous release (of %d steps), %d with its journal open: %d tree(s) rolled back, %d completed",
		(steps+faulttest.Stride(8)-1)/faulttest.Stride(8), steps, schema2, rolledBack, completed)
	if schema2 == 0 || rolledBack == 0 || completed == 0 {
		t.Fatalf("the crashes left %d schema 2 journal(s), %d rollback(s), %d completion(s): want some of each", schema2, rolledBack, completed)
	}
}
