package migrate_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/treeshift/treeshift/internal/faulttest"
	"github.com/treeshift/treeshift/internal/owner"
	"github.com/treeshift/treeshift/migrate"
)

// The crash tests run a treeshift built with the faultinject tag: it
// SIGKILLs itself right after durable step N (every write, rename, symlink
// swap, sync), which is what a power loss or an OOM kill leaves behind.

func faultBinary(t *testing.T) string { return faulttest.Binary(t) }

// stageRoot builds a root with three live v1/v2 trees, services up, plus a
// tree that is not live.
func stageRoot(t *testing.T) string {
	t.Helper()
	root := t.TempDir()
	dst := filepath.Join(root, "etc/treeshift/service")
	os.MkdirAll(dst, 0o755)
	entries, _ := os.ReadDir("../testscripts/testdata/services")
	for _, e := range entries {
		b, _ := os.ReadFile(filepath.Join("../testscripts/testdata/services", e.Name()))
		os.WriteFile(filepath.Join(dst, e.Name()), b, 0o644)
	}
	o, _ := owner.ForUID(0, root, os.Getenv)
	s, err := migrate.Open(o, migrate.Options{})
	if err != nil {
		t.Fatal(err)
	}
	for _, step := range []func() error{
		func() error {
			return s.CreateTree("boot", migrate.CreateOptions{Format: 1, Enable: true, Current: true})
		},
		func() error { return s.EnableServices("boot", []string{"syslogd"}) },
		func() error { return s.Init("boot") },
		func() error { return s.Start("boot", []string{"syslogd"}) },
		func() error { return s.CreateTree("net", migrate.CreateOptions{Format: 2, Enable: true}) },
		func() error { return s.EnableServices("net", []string{"net"}) },
		func() error { return s.Init("net") },
		func() error { return s.Start("net", []string{"sshd"}) },
		func() error { return s.CreateTree("idle", migrate.CreateOptions{Format: 1}) },
		func() error { return s.EnableServices("idle", []string{"ntpd"}) },
	} {
		if err := step(); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

func run(t *testing.T, bin string, env []string, args ...string) (string, int) {
	t.Helper()
	return faulttest.Run(t, bin, env, args...)
}

// normalizedStatus is status --json with formats and the stamp set to N,
// having checked that they are all v (unless v is 0): the one difference a
// transition makes.
func normalizedStatus(t *testing.T, bin, root string, v int) string {
	t.Helper()
	out, code := run(t, bin, nil, "--root", root, "status", "--json")
	if code != 0 {
		t.Fatalf("status: exit %d\n%s", code, out)
	}
	re := regexp.MustCompile(`"(format|stamp)": (\d+)`)
	if v != 0 {
		for _, m := range re.FindAllStringSubmatch(out, -1) {
			if m[2] != strconv.Itoa(v) {
				t.Fatalf("status says %s %s, want %d:\n%s", m[1], m[2], v, out)
			}
		}
	}
	return re.ReplaceAllString(out, `"$1": N`)
}

// journalStep is the durable step at which an update of root has written
// its journal: a crash after it leaves an update to recover.
func journalStep(t *testing.T, bin, root string) int {
	t.Helper()
	out, _ := run(t, bin, []string{"TREESHIFT_TRACE_STEPS=1"}, "--root", copyRoot(t, root), "update")
	m := regexp.MustCompile(`(?m)^step (\d+): (?:write|create) \S+/journal/update$`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no journal write traced:\n%s", out)
	}
	n, _ := strconv.Atoi(m[1])
	return n
}

// checkLinks asserts that every live link under root resolves.
func checkLinks(t *testing.T, root, when string) {
	t.Helper()
	all, _ := filepath.Glob(filepath.Join(root, "run/treeshift/tree/0/*/compiled"))
	var links []string
	for _, l := range all {
		if !strings.HasPrefix(filepath.Base(filepath.Dir(l)), ".") { // not a temporary copy
			links = append(links, l)
		}
	}
	if len(links) != 2 {
		t.Fatalf("%s: %d live links, want 2", when, len(links))
	}
	for _, l := range links {
		if _, err := os.Stat(filepath.Join(l, ".")); err != nil {
			target, _ := os.Readlink(l)
			t.Fatalf("%s: live link %s -> %s dangles", when, l, target)
		}
	}
}

func copyRoot(t *testing.T, src string) string {
	t.Helper()
	dst := filepath.Join(t.TempDir(), "root")
	if out, err := exec.Command("cp", "-a", src, dst).CombinedOutput(); err != nil {
		t.Fatalf("cp -a: %v\n%s", err, out)
	}
	return dst
}

func TestCrashAtEveryDurableStep(t *testing.T) {
	bin := faultBinary(t)
	staged := stageRoot(t)
	want := normalizedStatus(t, bin, staged, 0)

	// Learn how many durable steps a full update takes.
	probe := copyRoot(t, staged)
	out, code := run(t, bin, []string{"TREESHIFT_TRACE_STEPS=1"}, "--root", probe, "update")
	if code != 0 {
		t.Fatalf("update: exit %d\n%s", code, out)
	}
	steps := len(regexp.MustCompile(`(?m)^step \d+: `).FindAllString(out, -1))
	if steps < 20 {
		t.Fatalf("only %d durable steps traced:\n%s", steps, out)
	}
	t.Logf("a full update takes %d durable steps", steps)

	var rolledBack, completed int
	for n := 1; n <= steps; n += faulttest.Stride(4) {
		root := copyRoot(t, staged)
		out, code := run(t, bin, []string{fmt.Sprintf("TREESHIFT_CRASH_AFTER=%d", n)}, "--root", root, "update")
		if code != -int(syscall.SIGKILL) {
			t.Fatalf("crash after step %d: exit %d, want killed\n%s", n, code, out)
		}
		when := fmt.Sprintf("after a crash at step %d", n)
		checkLinks(t, root, when)

		// Other commands notice an open journal.
		journals, _ := filepath.Glob(filepath.Join(root, "var/lib/treeshift/journal/*"))
		if len(journals) > 0 {
			out, code := run(t, bin, nil, "--root", root, "enable", "-t", "idle", "sshd")
			if code != 111 || !strings.Contains(out, "was interrupted: run treeshift --root "+root+" update first") {
				t.Fatalf("%s: enable with an open journal: exit %d\n%s", when, code, out)
			}
			out, _ = run(t, bin, nil, "--root", root, "tree", "list")
			if !strings.Contains(out, "treeshift: warning: the update of tree(s) ") {
				t.Fatalf("%s: tree list did not warn of the open journal:\n%s", when, out)
			}
		}

		out, code = run(t, bin, nil, "--root", root, "-v", "2", "update")
		if code != 0 {
			t.Fatalf("%s: re-run: exit %d\n%s", when, code, out)
		}
		rolledBack += strings.Count(out, "rolled back the interrupted transition")
		completed += strings.Count(out, "completed the interrupted transition")
		checkLinks(t, root, when+" and a re-run")
		if got := normalizedStatus(t, bin, root, 3); got != want {
			t.Fatalf("%s: state after the re-run differs from before:\n%s\nwant:\n%s", when, got, want)
		}
		out, _ = run(t, bin, nil, "--root", root, "tree", "list", "--json")
		var list struct {
			Trees []struct{ Format int }
		}
		json.Unmarshal([]byte(out), &list)
		for _, tr := range list.Trees {
			if tr.Format != 3 {
				t.Fatalf("%s: a tree is in format %d after the re-run", when, tr.Format)
			}
		}
		leftovers, _ := filepath.Glob(filepath.Join(root, "run/treeshift/tree/0/.*"))
		hidden, _ := filepath.Glob(filepath.Join(root, "var/lib/treeshift/.*"))
		hiddenJournal, _ := filepath.Glob(filepath.Join(root, "var/lib/treeshift/journal/.*"))
		leftovers = append(append(leftovers, hidden...), hiddenJournal...)
		journals, _ = filepath.Glob(filepath.Join(root, "var/lib/treeshift/journal/*"))
		gens, _ := filepath.Glob(filepath.Join(root, "var/lib/treeshift/tree/.*"))
		if len(leftovers) > 0 || len(journals) > 0 || len(gens) != 3 {
			t.Fatalf("%s: left behind temp %v, journals %v, generations %v", when, leftovers, journals, gens)
		}
	}
	t.Logf("recoveries: %d rolled back, %d completed", rolledBack, completed)
	if rolledBack == 0 || completed == 0 {
		t.Errorf("crashes exercised %d rollbacks and %d completions; want both kinds", rolledBack, completed)
	}
}

func TestOutsideWriterAbortsTransition(t *testing.T) {
	bin := faultBinary(t)
	staged := stageRoot(t)
	want := normalizedStatus(t, bin, staged, 0)

	// Find the step that moves boot's live link to the temporary copy.
	probe := copyRoot(t, staged)
	out, _ := run(t, bin, []string{"TREESHIFT_TRACE_STEPS=1"}, "--root", probe, "update", "boot")
	m := regexp.MustCompile(`(?m)^step (\d+): symlink \S+/run/treeshift/tree/0/boot/compiled$`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no live link step traced:\n%s", out)
	}

	root := copyRoot(t, staged)
	pauseFile := filepath.Join(t.TempDir(), "pause")
	cmd := exec.Command(bin, "--root", root, "update", "boot")
	cmd.Env = append(os.Environ(), "TREESHIFT_PAUSE_AFTER="+m[1], "TREESHIFT_PAUSE_FILE="+pauseFile)
	var buf bytes.Buffer
	cmd.Stdout, cmd.Stderr = &buf, &buf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		if _, err := os.Stat(pauseFile + ".paused"); err == nil {
			break
		}
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			t.Fatalf("update never paused:\n%s", buf.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	// Someone edits a record of the tree being transitioned.
	meta := filepath.Join(root, "var/lib/treeshift/tree/boot/meta")
	b, _ := os.ReadFile(meta)
	os.WriteFile(meta, b, 0o644)
	os.WriteFile(pauseFile+".resume", nil, 0o644)
	err := cmd.Wait()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 111 {
		t.Fatalf("update with an outside writer: %v\n%s", err, buf.String())
	}
	if !regexp.MustCompile(`treeshift: fatal: \S+/tree/\.boot\.\d+/meta was changed by another process during the transition of tree boot: rolled back`).MatchString(buf.String()) {
		t.Errorf("message does not name the path:\n%s", buf.String())
	}
	checkLinks(t, root, "after the aborted transition")
	if got := normalizedStatus(t, bin, root, 0); got != want {
		t.Errorf("state after the rollback differs:\n%s\nwant:\n%s", got, want)
	}
	out, _ = run(t, bin, nil, "--root", root, "tree", "list")
	if !regexp.MustCompile(`(?m)^boot\s+1\s`).MatchString(out) {
		t.Errorf("boot is not back in format 1:\n%s", out)
	}
}

// An interrupted update is not recovered through another live directory:
// that run could not see the tree's real live link and would collect the
// generation it points at.
func TestRecoveryRefusesAnotherLiveDir(t *testing.T) {
	bin := faultBinary(t)
	root := copyRoot(t, stageRoot(t))
	crash := fmt.Sprintf("TREESHIFT_CRASH_AFTER=%d", journalStep(t, bin, root)+1)
	if out, code := run(t, bin, []string{crash}, "--root", root, "update"); code != -int(syscall.SIGKILL) {
		t.Fatalf("crash: exit %d\n%s", code, out)
	}
	out, code := run(t, bin, nil, "--root", root, "-l", "/run/other", "update")
	if code != 111 || !strings.Contains(out, "was live in /run/treeshift when its update was interrupted: recover with: treeshift --root "+root+" update") {
		t.Fatalf("recovery through another -l: exit %d\n%s", code, out)
	}
	checkLinks(t, root, "after the refused recovery")
	if _, err := os.Stat(filepath.Join(root, "run/other/tree")); err == nil {
		t.Error("the refused recovery created links in the other live directory")
	}
	if out, code := run(t, bin, nil, "--root", root, "update"); code != 0 {
		t.Fatalf("recovery: exit %d\n%s", code, out)
	}
	checkLinks(t, root, "after recovery")
}

// A command that waited for the owner lock while an update was interrupted
// sees the open journal once it has the lock, and refuses to change trees.
func TestWaitingCommandSeesInterruptedUpdate(t *testing.T) {
	bin := faultBinary(t)
	root := copyRoot(t, stageRoot(t))
	pause := filepath.Join(t.TempDir(), "pause")
	upd := exec.Command(bin, "--root", root, "update")
	upd.Env = append(os.Environ(), "TREESHIFT_PAUSE_AFTER=1", "TREESHIFT_PAUSE_FILE="+pause,
		fmt.Sprintf("TREESHIFT_CRASH_AFTER=%d", journalStep(t, bin, root)+1))
	if err := upd.Start(); err != nil {
		t.Fatal(err)
	}
	for i := 0; ; i++ {
		if _, err := os.Stat(pause + ".paused"); err == nil {
			break
		}
		if i > 3000 {
			upd.Process.Kill()
			t.Fatal("update never paused")
		}
		time.Sleep(10 * time.Millisecond)
	}
	// No journal yet: init sees nothing amiss and waits for the lock.
	init := exec.Command(bin, "--root", root, "init", "idle")
	var out bytes.Buffer
	init.Stdout, init.Stderr = &out, &out
	if err := init.Start(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond)
	os.WriteFile(pause+".resume", nil, 0o644)
	upd.Wait() // killed at step 8, journal open
	err := init.Wait()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 111 || !strings.Contains(out.String(), "was interrupted: run treeshift --root "+root+" update first") {
		t.Fatalf("init after the interrupted update: %v\n%s", err, out.String())
	}
	if out, code := run(t, bin, nil, "--root", root, "update"); code != 0 {
		t.Fatalf("recovery: exit %d\n%s", code, out)
	}
	checkLinks(t, root, "after recovery")
}

// A tree whose interrupted transition can neither be finished nor rolled
// back (the generation it was at was damaged after the crash) wedges no
// other tree: recovery deals with the others, update moves them and fails
// naming the tree and the ways out, commands on the other trees work, and
// either way out frees it: abandon keeps the newest generation that reads
// (here the one the interrupted run had staged), destroy removes the tree.
func TestStuckTreeWedgesNoOther(t *testing.T) {
	bin := faultBinary(t)
	staged := stageRoot(t)
	// Crash at the first barrier: every new generation is staged, none is
	// committed, so recovery rolls back — and cannot, for the damaged one.
	out, _ := run(t, bin, []string{"TREESHIFT_TRACE_STEPS=1"}, "--root", copyRoot(t, staged), "update")
	j := journalStep(t, bin, staged)
	barrier := 0
	for _, m := range regexp.MustCompile(`(?m)^step (\d+): syncfs `).FindAllStringSubmatch(out, -1) {
		if n, _ := strconv.Atoi(m[1]); n > j {
			barrier = n
			break
		}
	}
	interrupted := copyRoot(t, staged)
	if out, code := run(t, bin, []string{fmt.Sprintf("TREESHIFT_CRASH_AFTER=%d", barrier)}, "--root", interrupted, "update"); code != -int(syscall.SIGKILL) {
		t.Fatalf("crash: exit %d\n%s", code, out)
	}
	for _, tr := range []string{"boot", "idle"} {
		gen, _ := os.Readlink(filepath.Join(interrupted, "var/lib/treeshift/tree", tr))
		if err := os.Remove(filepath.Join(interrupted, "var/lib/treeshift/tree", gen, "meta")); err != nil {
			t.Fatal(err)
		}
	}
	root := interrupted
	out, code := run(t, bin, nil, "--root", root, "update")
	for _, tr := range []string{"boot", "idle"} {
		if code != 111 || !strings.Contains(out, "recover tree "+tr+": the generation it was at before the interrupted transition is unusable") ||
			!strings.Contains(out, "treeshift --root "+root+" update --abandon "+tr) || !strings.Contains(out, "treeshift --root "+root+" tree destroy "+tr) {
			t.Fatalf("update with %s stuck: exit %d\n%s", tr, code, out)
		}
	}
	out, _ = run(t, bin, nil, "--root", root, "tree", "list")
	if !regexp.MustCompile(`(?m)^net\s+3\s`).MatchString(out) {
		t.Fatalf("the other tree was not moved:\n%s", out)
	}
	// Commands on the other trees work; on the stuck ones they are refused.
	if out, code := run(t, bin, nil, "--root", root, "stop", "-t", "net", "sshd"); code != 0 {
		t.Fatalf("stop in another tree: exit %d\n%s", code, out)
	}
	if out, code := run(t, bin, nil, "--root", root, "enable", "-t", "boot", "sshd"); code != 111 || !strings.Contains(out, "the update of tree(s) boot was interrupted") {
		t.Fatalf("enable in a stuck tree: exit %d\n%s", code, out)
	}
	// The ways out.
	mustRun(t, bin, "--root", root, "update", "--abandon", "boot")
	mustRun(t, bin, "--root", root, "tree", "destroy", "idle")
	mustRun(t, bin, "--root", root, "update")
	out, _ = run(t, bin, nil, "--root", root, "tree", "list")
	if !regexp.MustCompile(`(?m)^boot\s+3\s`).MatchString(out) || strings.Contains(out, "idle") {
		t.Fatalf("after abandon and destroy:\n%s", out)
	}
	checkLinks(t, root, "after the ways out")
	if j, _ := filepath.Glob(filepath.Join(root, "var/lib/treeshift/journal/*")); len(j) > 0 {
		t.Fatalf("journal left: %v", j)
	}
	if tmp, _ := filepath.Glob(filepath.Join(root, "run/treeshift/tree/0/.*")); len(tmp) > 0 {
		t.Fatalf("private copies left: %v", tmp)
	}
	// boot kept its live state through it all.
	out, _ = run(t, bin, nil, "--root", root, "status", "boot")
	if !regexp.MustCompile(`(?m)^  syslogd\s+longrun\s+yes\s+up\s`).MatchString(out) {
		t.Fatalf("boot's service is not up:\n%s", out)
	}
}
