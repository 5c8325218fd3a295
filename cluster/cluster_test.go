package cluster_test

import (
	"bytes"
	"encoding/json"
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

func run(t testing.TB, bin string, env []string, args ...string) (string, int) {
	t.Helper()
	return faulttest.Run(t, bin, env, args...)
}

// A roll killed mid-way is visible in the cluster's status, and running the
// roll again finishes it: the member ends in the new format with its state.
func TestRollKilledMidwayResumes(t *testing.T) {
	t.Parallel()
	bin := faulttest.Binary(t)
	dir := t.TempDir()
	must := func(args ...string) string {
		t.Helper()
		out, code := run(t, bin, nil, args...)
		if code != 0 {
			t.Fatalf("%v: exit %d\n%s", args, code, out)
		}
		return out
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
	c := func(args ...string) []string { return append([]string{"cluster", "--store", store}, args...) }
	must(c(append([]string{"init"}, members...)...)...)
	for _, stage := range [][]string{{"setup", "m1"}, {"preinstall"}, {"install"}, {"postinstall"}} {
		must(c(stage...)...)
	}
	before := must("--root", filepath.Join(dir, "m2"), "status", "--json")

	// Count the durable steps of a roll, then kill one half-way through.
	probe := filepath.Join(t.TempDir(), "probe")
	exec.Command("cp", "-a", dir, probe).Run()
	pstore := filepath.Join(probe, "store")
	fixStore(t, pstore, dir, probe)
	out, _ := run(t, bin, []string{"TREESHIFT_TRACE_STEPS=1"}, "cluster", "--store", pstore, "roll", "m2")
	steps := len(regexp.MustCompile(`(?m)^step \d+: `).FindAllString(out, -1))
	if steps < 6 {
		t.Fatalf("roll traced %d steps:\n%s", steps, out)
	}
	out, code := run(t, bin, []string{fmt.Sprintf("TREESHIFT_CRASH_AFTER=%d", steps/2)}, c("roll", "m2")...)
	if code != -int(syscall.SIGKILL) {
		t.Fatalf("roll with a crash: exit %d\n%s", code, out)
	}
	status := must(c("status")...)
	if !strings.Contains(status, "interrupted: roll of member m2 started") || !strings.Contains(status, "run treeshift cluster --store "+store+" roll m2") {
		t.Fatalf("status does not show the interrupted roll:\n%s", status)
	}
	must(c("roll", "m2")...)
	var st struct {
		Members []struct {
			ID     string
			Rolled bool
		}
		Interrupted []string
	}
	json.Unmarshal([]byte(must(c("status", "--json")...)), &st)
	if !st.Members[1].Rolled || len(st.Interrupted) != 0 {
		t.Fatalf("after the resumed roll: %+v", st)
	}
	after := must("--root", filepath.Join(dir, "m2"), "status", "--json")
	norm := regexp.MustCompile(`"(format|stamp)": \d+`)
	if norm.ReplaceAllString(after, "") != norm.ReplaceAllString(before, "") {
		t.Fatalf("m2's state changed:\n%s\nwas:\n%s", after, before)
	}
	if !strings.Contains(after, `"format": 3`) {
		t.Fatalf("m2 not in format 3:\n%s", after)
	}
}

// fixStore points a copied cluster record at the copied member roots.
func fixStore(t *testing.T, store, from, to string) {
	p := filepath.Join(store, "cluster.json")
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(p, bytes.ReplaceAll(b, []byte(from+"/"), []byte(to+"/")), 0o644)
}
