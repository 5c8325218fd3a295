package migrate_test

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/treeshift/treeshift/internal/faulttest"
	"github.com/treeshift/treeshift/migrate"
)

// applyConfig is the configuration of stageRoot's system (reverse --json)
// changed in every way apply reconciles: a tree left out (idle, destroyed),
// a tree added with services up and one unmonitored (web), a tree made not
// live with its service stopped and no longer enabled (boot), a service
// stopped (sshd of net), and the current tree and start order changed.
func applyConfig(t *testing.T, bin, root string) string {
	t.Helper()
	out, code := run(t, bin, nil, "--root", root, "reverse", "--json")
	if code != 0 {
		t.Fatalf("reverse --json: exit %d\n%s", code, out)
	}
	var c map[string]any
	if err := json.Unmarshal([]byte(out), &c); err != nil {
		t.Fatalf("reverse --json: %v\n%s", err, out)
	}
	byName := map[string]map[string]any{}
	for _, x := range c["trees"].([]any) {
		tr := x.(map[string]any)
		byName[tr["name"].(string)] = tr
	}
	boot, net := byName["boot"], byName["net"]
	boot["initialized"], boot["enabled"], boot["current"] = false, false, false
	for _, s := range boot["services"].([]any) {
		s.(map[string]any)["up"] = false
	}
	for _, s := range net["services"].([]any) {
		if s := s.(map[string]any); s["name"] == "sshd" || s["name"] == "net" {
			s["up"] = false
		}
	}
	net["current"] = true
	web := map[string]any{"name": "web", "format": 3, "enabled": true, "current": false, "allow": []string{"root"},
		"initialized": true, "services": []map[string]any{
			{"name": "mount-run", "up": true}, {"name": "syslogd", "up": true}, {"name": "sshd", "up": true, "unmonitored": true}}}
	c["trees"] = []any{web, net, boot}
	b, _ := json.MarshalIndent(c, "", "  ")
	p := filepath.Join(t.TempDir(), "config.json")
	os.WriteFile(p, b, 0o644)
	return p
}

// TestApplyReconciles applies a changed configuration and checks that the
// system then is what it says (reverse --json gives it back), that the dry
// run listed exactly the changes the real run made and changed nothing,
// and that applying again changes nothing.
func TestApplyReconciles(t *testing.T) {
	bin := faultBinary(t)
	staged := stageRoot(t)
	cfg := applyConfig(t, bin, staged)

	root := copyRoot(t, staged)
	before := hostSnapshot(t, root)
	dout, code := run(t, bin, nil, "--root", root, "apply", "-d", "--json", cfg)
	if code != 0 {
		t.Fatalf("apply -d: exit %d\n%s", code, dout)
	}
	if after := hostSnapshot(t, root); after != before {
		t.Fatalf("apply -d changed the root")
	}
	out, code := run(t, bin, nil, "--root", root, "apply", "--json", cfg)
	if code != 0 {
		t.Fatalf("apply: exit %d\n%s", code, out)
	}
	dry, real := changes(t, dout), changes(t, out)
	if !slices.Equal(dry, real) || len(real) < 10 {
		t.Fatalf("dry run listed:\n%s\nthe real run made:\n%s", strings.Join(dry, "\n"), strings.Join(real, "\n"))
	}
	for _, want := range []string{
		"stop services of tree boot: syslogd mount-run", "uninit tree boot", "disable tree boot", "destroy tree idle",
		"create tree web in format 3, used by root", "pause supervision of services of tree web: sshd",
		"stop services of tree net: sshd", "set the start order of trees: web net", "make tree net current",
	} {
		if !slices.Contains(real, want) {
			t.Errorf("no change %q in:\n%s", want, strings.Join(real, "\n"))
		}
	}
	got, code := run(t, bin, nil, "--root", root, "reverse", "--json")
	if code != 0 {
		t.Fatal(got)
	}
	if g, w := canonical(t, got), canonical(t, readFile(t, cfg)); g != w {
		t.Fatalf("after apply, reverse --json gives:\n%s\nwant:\n%s", g, w)
	}
	snap := hostSnapshot(t, root)
	if out, code := run(t, bin, nil, "--root", root, "apply", "--json", cfg); code != 0 || len(changes(t, out)) != 0 {
		t.Fatalf("second apply: exit %d\n%s", code, out)
	}
	if hostSnapshot(t, root) != snap {
		t.Fatalf("applying the configuration the system has changed the root")
	}
}

// TestApplyKilledAtEveryStep kills an apply after each durable step. A
// crash before the journal is written leaves the system as it was; after
// it, other commands are refused until apply --resume, which finishes the
// apply: the system is then exactly what the configuration says, no live
// link dangles, and nothing is left behind.
func TestApplyKilledAtEveryStep(t *testing.T) {
	bin := faultBinary(t)
	staged := stageRoot(t)
	cfg := applyConfig(t, bin, staged)
	original := normalizedStatus(t, bin, staged, 0)

	probe := copyRoot(t, staged)
	out, code := run(t, bin, []string{"TREESHIFT_TRACE_STEPS=1"}, "--root", probe, "apply", cfg)
	if code != 0 {
		t.Fatalf("apply: exit %d\n%s", code, out)
	}
	want := normalizedStatus(t, bin, probe, 0)
	steps := len(regexp.MustCompile(`(?m)^step \d+: `).FindAllString(out, -1))
	stride := faulttest.Stride(3)
	resumed := 0
	for n := 1; n <= steps; n += stride {
		root := copyRoot(t, staged)
		out, code := run(t, bin, []string{fmt.Sprintf("TREESHIFT_CRASH_AFTER=%d", n)}, "--root", root, "apply", cfg)
		if code != -int(syscall.SIGKILL) {
			t.Fatalf("crash after step %d: exit %d, want killed\n%s", n, code, out)
		}
		when := fmt.Sprintf("after a crash at step %d", n)
		liveLinksResolve(t, root, when)
		if _, err := os.Stat(filepath.Join(root, "var/lib/treeshift/journal/apply")); err != nil {
			// A crash after the last step (the journal's removal) finds
			// the apply done.
			if got := normalizedStatus(t, bin, root, 0); got != original && got != want {
				t.Fatalf("%s: no apply journal, yet the system is neither as it was nor as applied:\n%s", when, got)
			}
			continue
		}
		resumed++
		out, code = run(t, bin, nil, "--root", root, "enable", "-t", "net", "ntpd")
		if code != 111 || !strings.Contains(out, "the apply of "+cfg+" was interrupted: run treeshift --root "+root+" apply --resume first") {
			t.Fatalf("%s: enable during an interrupted apply: exit %d\n%s", when, code, out)
		}
		out, code = run(t, bin, nil, "--root", root, "-v", "2", "apply", "--resume")
		if code != 0 || !strings.Contains(out, "finishing the interrupted apply of "+cfg) {
			t.Fatalf("%s: apply --resume: exit %d\n%s", when, code, out)
		}
		liveLinksResolve(t, root, when+" and --resume")
		if got := normalizedStatus(t, bin, root, 0); got != want {
			t.Fatalf("%s: after --resume the system is:\n%s\nwant:\n%s", when, got, want)
		}
		journals, _ := filepath.Glob(filepath.Join(root, "var/lib/treeshift/journal/*"))
		hidden, _ := filepath.Glob(filepath.Join(root, "var/lib/treeshift/.*"))
		gens, _ := filepath.Glob(filepath.Join(root, "var/lib/treeshift/tree/.*"))
		if len(journals) > 0 || len(hidden) > 0 || len(gens) != 3 {
			t.Fatalf("%s: left behind journals %v, temporary files %v, generations %v", when, journals, hidden, gens)
		}
	}
	if resumed == 0 {
		t.Fatalf("no crash left an apply to resume in %d steps", steps)
	}
}

// liveLinksResolve asserts that every live link under root resolves.
func liveLinksResolve(t *testing.T, root, when string) {
	t.Helper()
	links, _ := filepath.Glob(filepath.Join(root, "run/treeshift/tree/0/*/compiled"))
	for _, l := range links {
		if _, err := os.Stat(filepath.Join(l, ".")); err != nil {
			target, _ := os.Readlink(l)
			t.Fatalf("%s: live link %s -> %s dangles", when, l, target)
		}
	}
}

func changes(t *testing.T, out string) []string {
	t.Helper()
	i := strings.Index(out, "{")
	if i < 0 {
		t.Fatalf("no JSON document in:\n%s", out)
	}
	var r struct{ Changes []string }
	if err := json.NewDecoder(strings.NewReader(out[i:])).Decode(&r); err != nil {
		t.Fatalf("%v in:\n%s", err, out)
	}
	return r.Changes
}

// canonical is a configuration document with each tree's services sorted
// by name: the order they are listed in is not configuration.
func canonical(t *testing.T, doc string) string {
	t.Helper()
	var c migrate.Config
	if err := json.Unmarshal([]byte(doc), &c); err != nil {
		t.Fatalf("%v in:\n%s", err, doc)
	}
	for _, tr := range c.Trees {
		slices.SortFunc(tr.Services, func(a, b migrate.ConfigService) int { return strings.Compare(a.Name, b.Name) })
	}
	b, _ := json.MarshalIndent(c, "", "  ")
	return string(b)
}

func readFile(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
