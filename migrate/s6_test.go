package migrate_test

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"syscall"
	"testing"

	"github.com/treeshift/treeshift/internal/supervisor/s6"
)

// s6Root stages a root whose services are harmless sleepers, three v1
// trees live under a real s6-svscan with some services up.
func s6Root(t *testing.T, bin string) string {
	t.Helper()
	root := t.TempDir()
	defs := filepath.Join(root, "etc/treeshift/service")
	os.MkdirAll(defs, 0o755)
	for i := 1; i <= 6; i++ {
		os.WriteFile(filepath.Join(defs, fmt.Sprintf("w%d", i)), []byte(fmt.Sprintf(
			"[main]\n@type = longrun\n@version = 1.0.0\n@description = \"w%d\"\n@user = ( root )\n\n[start]\n@execute = ( sleep 7302 )\n", i)), 0o644)
	}
	do := func(args ...string) {
		t.Helper()
		if out, code := run(t, bin, nil, append([]string{"--root", root}, args...)...); code != 0 {
			t.Fatalf("%v: exit %d\n%s", args, code, out)
		}
	}
	do("scandir", "start", "--supervisor", "s6")
	t.Cleanup(func() { s6.StopScan(filepath.Join(root, "run/treeshift/scandir/0"), 10e9) })
	for i, tr := range []string{"a", "b", "c"} {
		do("tree", "create", "--format", "1", "-E", tr)
		do("enable", "-t", tr, fmt.Sprintf("w%d", 2*i+1), fmt.Sprintf("w%d", 2*i+2))
		do("init", tr)
		do("start", "-t", tr, fmt.Sprintf("w%d", 2*i+1))
	}
	do("start", "-t", "a", "w2")
	return root
}

// livePids maps each up service to its pid.
func livePids(t *testing.T, bin, root string) map[string]int {
	t.Helper()
	cmd := exec.Command(bin, "--root", root, "status", "--json")
	out, err := cmd.Output() // stdout alone: stderr may carry a warning
	if err != nil {
		t.Fatalf("status: %v", err)
	}
	var st struct {
		Trees []struct {
			Name string
			Live struct {
				Services []struct {
					Name string
					Up   bool
					Pid  int
				}
			}
		}
	}
	if err := json.Unmarshal(out, &st); err != nil {
		t.Fatal(err)
	}
	pids := map[string]int{}
	for _, tr := range st.Trees {
		for _, s := range tr.Live.Services {
			if s.Up {
				pids[tr.Name+"/"+s.Name] = s.Pid
			}
		}
	}
	return pids
}

// An update killed mid-way and re-run leaves every service that was up
// running as the same process.
func TestCrashKeepsS6Processes(t *testing.T) {
	if err := s6.Check(); err != nil {
		t.Skipf("s6 backend not testable here: %v", err)
	}
	bin := faultBinary(t)
	// The durable steps of an update do not depend on the backend: count
	// them on a files-backend root of the same shape.
	probe := stageRoot(t)
	out, _ := run(t, bin, []string{"TREESHIFT_TRACE_STEPS=1"}, "--root", probe, "update")
	steps := len(regexp.MustCompile(`(?m)^step \d+: `).FindAllString(out, -1))
	for _, n := range []int{steps / 4, steps / 2, 3 * steps / 4} {
		t.Run(fmt.Sprint("crash-at-", n), func(t *testing.T) {
			root := s6Root(t, bin)
			before := livePids(t, bin, root)
			if len(before) != 4 {
				t.Fatalf("%d services up, want 4: %v", len(before), before)
			}
			out, code := run(t, bin, []string{fmt.Sprintf("TREESHIFT_CRASH_AFTER=%d", n)}, "--root", root, "update")
			if code != -int(syscall.SIGKILL) {
				t.Fatalf("exit %d, want killed\n%s", code, out)
			}
			if got := livePids(t, bin, root); fmt.Sprint(got) != fmt.Sprint(before) {
				t.Fatalf("after the crash: pids %v, were %v", got, before)
			}
			if out, code := run(t, bin, nil, "--root", root, "update"); code != 0 {
				t.Fatalf("re-run: exit %d\n%s", code, out)
			}
			if got := livePids(t, bin, root); fmt.Sprint(got) != fmt.Sprint(before) {
				t.Fatalf("after the re-run: pids %v, were %v", got, before)
			}
			out, _ = run(t, bin, nil, "--root", root, "tree", "list")
			if !regexp.MustCompile(`(?m)^a\s+3\s`).MatchString(out) {
				t.Fatalf("not updated:\n%s", out)
			}
		})
	}
}
