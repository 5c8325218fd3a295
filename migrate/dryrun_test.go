package migrate_test

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"syscall"
	"testing"

	"github.com/treeshift/treeshift/internal/faulttest"
)

// The dry run is the real run on an overlay, so it predicts the real run
// in every state: for a set of states, one copy of the root gets `update
// -d` and another `update -v 3`, and the actions the dry run prints must be
// those the real run traces, in the same order, with the same fatal
// messages and exit code — and the dry run must change nothing.
func TestDryRunPredictsTheRealRun(t *testing.T) {
	bin := faultBinary(t)
	staged := stageRoot(t)
	states := map[string]string{"fresh": staged}

	current := copyRoot(t, staged)
	mustRun(t, bin, "--root", current, "update")
	states["current"] = current

	corrupt := copyRoot(t, staged)
	meta := filepath.Join(corrupt, "var/lib/treeshift/tree/idle/resolve/ntpd")
	b, _ := os.ReadFile(meta)
	os.WriteFile(meta, []byte(strings.Replace(string(b), "type=classic", "type=daemon", 1)), 0o644)
	states["corrupt"] = corrupt

	badJournal := copyRoot(t, staged)
	os.MkdirAll(filepath.Join(badJournal, "var/lib/treeshift/journal"), 0o700)
	os.WriteFile(filepath.Join(badJournal, "var/lib/treeshift/journal/update"),
		[]byte(`{"schema":2,"started":"2026-11-22T04:00:00Z","trees":[{"tree":"../../x","from":1,"to":3,"gen":2}]}`+"\n"), 0o600)
	states["bad journal"] = badJournal

	// Interrupted at durable steps spread over a whole run: before the
	// journal, with the live link on the private copy, committed, during
	// cleanup.
	out, _ := run(t, bin, []string{"TREESHIFT_TRACE_STEPS=1"}, "--root", copyRoot(t, staged), "update")
	steps := len(regexp.MustCompile(`(?m)^step \d+: `).FindAllString(out, -1))
	stride := faulttest.Stride(9)
	for k := 1; k <= steps; k += stride {
		root := copyRoot(t, staged)
		if _, code := run(t, bin, []string{fmt.Sprintf("TREESHIFT_CRASH_AFTER=%d", k)}, "--root", root, "update"); code != -int(syscall.SIGKILL) {
			t.Fatalf("crash after step %d: exit %d", k, code)
		}
		states[fmt.Sprintf("interrupted at step %d", k)] = root
	}

	// Interrupted with a staged state file, then its journal changed by
	// hand: refused, by the dry run and the real run alike, and the real
	// run's refusal changes nothing either (the staged state stays).
	for k := 1; k <= steps; k++ {
		root := copyRoot(t, staged)
		run(t, bin, []string{fmt.Sprintf("TREESHIFT_CRASH_AFTER=%d", k)}, "--root", root, "update")
		sys := filepath.Join(root, "var/lib/treeshift")
		j, err := os.ReadFile(filepath.Join(sys, "journal/update"))
		if _, serr := os.Stat(filepath.Join(sys, ".state.new")); err != nil || serr != nil || !strings.Contains(string(j), `"tree":"net"`) {
			continue
		}
		os.WriteFile(filepath.Join(sys, "journal/update"), []byte(strings.Replace(string(j), `"tree":"net"`, `"tree":"../x"`, 1)), 0o600)
		states["bad journal, tampered after an interruption"] = root
		break
	}
	if _, ok := states["bad journal, tampered after an interruption"]; !ok {
		t.Fatal("no step leaves a journal and a staged state")
	}

	for name, state := range states {
		for _, args := range [][]string{{"update"}, {"update", "--to", "1"}, {"update", "net"}} {
			dry, real := copyRoot(t, state), copyRoot(t, state)
			for _, r := range []string{dry, real} {
				// As on a system treeshift ran on: the lock exists
				// (taking it is no change).
				if lock := filepath.Join(r, "var/lib/treeshift/lock"); !exists(lock) {
					os.WriteFile(lock, nil, 0o600)
				}
			}
			before := hostSnapshot(t, dry)
			realBefore := hostSnapshot(t, real)
			dout, dcode := run(t, bin, nil, append([]string{"--root", dry}, append(args, "-d")...)...)
			rout, rcode := run(t, bin, nil, append([]string{"--root", real, "-v", "3"}, args...)...)
			what := fmt.Sprintf("%s, %v", name, args)
			if dcode != rcode {
				t.Errorf("%s: dry run exits %d, the real run %d\ndry run:\n%s\nreal run:\n%s", what, dcode, rcode, dout, rout)
			}
			// The dry run's actions, and its fatal messages; not its info
			// lines, which the real run prints at -v 2 too.
			predicted := lines(dout, dry, `^dry run do: (?:(treeshift: fatal: .*)|treeshift: \w+: .*|(.*))$`)
			done := lines(rout, real, `^(?:treeshift: tracing: (.*)|(treeshift: fatal: .*))$`)
			if predicted != done {
				t.Errorf("%s: the dry run predicted\n%s\nthe real run did\n%s", what, predicted, done)
			}
			if after := hostSnapshot(t, dry); after != before {
				t.Errorf("%s: the dry run changed the disk", what)
			}
			if after := hostSnapshot(t, real); strings.HasPrefix(name, "bad journal") && after != realBefore {
				t.Errorf("%s: the real run, refused, changed the disk:\n%s", what, snapshotDiff(realBefore, after))
			}
		}
	}
	t.Logf("%d states compared", len(states))
}

// lines picks from out the lines matching re (the first non-empty group of
// each), with the root's path made ROOT so two roots compare.
func lines(out, root, re string) string {
	r := regexp.MustCompile(re)
	var got []string
	for _, l := range strings.Split(strings.ReplaceAll(out, root, "ROOT"), "\n") {
		m := r.FindStringSubmatch(l)
		if m == nil {
			continue
		}
		for _, g := range m[1:] {
			if g != "" {
				got = append(got, g)
				break
			}
		}
	}
	return strings.Join(got, "\n")
}

func mustRun(t *testing.T, bin string, args ...string) string {
	t.Helper()
	out, code := run(t, bin, nil, args...)
	if code != 0 {
		t.Fatalf("%v: exit %d\n%s", args, code, out)
	}
	return out
}

// hostSnapshot lists every path below root with its type, mode, size,
// modification time and link target: a dry run must leave all of it.
func hostSnapshot(t *testing.T, root string) string {
	t.Helper()
	var b strings.Builder
	filepath.Walk(root, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		fmt.Fprintf(&b, "%s %v %d %d", p, fi.Mode(), fi.Size(), fi.ModTime().UnixNano())
		if fi.Mode()&os.ModeSymlink != 0 {
			target, _ := os.Readlink(p)
			b.WriteString(" -> " + target)
		}
		b.WriteByte('\n')
		return nil
	})
	return b.String()
}

// snapshotDiff lists the lines of two snapshots that differ.
func snapshotDiff(a, b string) string {
	in := func(s string) map[string]bool {
		m := map[string]bool{}
		for _, l := range strings.Split(s, "\n") {
			m[l] = true
		}
		return m
	}
	am, bm := in(a), in(b)
	var out []string
	for l := range am {
		if !bm[l] {
			out = append(out, "- "+l)
		}
	}
	for l := range bm {
		if !am[l] {
			out = append(out, "+ "+l)
		}
	}
	sort.Strings(out)
	return strings.Join(out, "\n")
}

func exists(p string) bool {
	_, err := os.Lstat(p)
	return err == nil
}
