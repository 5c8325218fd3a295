// Command mutants checks that the tests notice when a safety of the
// transition is taken out. Each mutant below removes one — verify, a sync
// barrier, the journal's sync, the directory syncs of the durable writes,
// the outside-writer watch, the owner lock — from a copy of the module; the
// tests that should notice are run on the copy, and the mutant is killed
// if one fails, survived if all pass. A mutation is an exact text
// replacement that must match once, so a mutant that no longer applies to
// the code is an error, not a silent pass.
//
// Before the mutants, the same tests run on the unmutated copy and must
// pass: a test that fails anyway kills nothing.
//
//	go run ./internal/mutants [-run REGEXP]
//
// The exit status is 0 when every mutant is killed, 1 otherwise.
package main

import (
	"bytes"
	"flag"
	"fmt"
	"github.com/treeshift/treeshift/internal/scratch"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"time"
)

// mutant is one safety taken out.
type mutant struct {
	name string
	// file is relative to the module; old must occur in it exactly once.
	file, old, new string
	// pkgs and run select the tests that should notice.
	pkgs []string
	run  string
}

const (
	powerloss = "./internal/powerloss"
	explorer  = "^TestPowerLossAtEveryPoint$"
	// devices adds the power losses on real block devices, which notice a
	// barrier missing its filesystem (they skip where they cannot run).
	devices = "^(TestPowerLossAtEveryPoint|TestPowerLossOnABlockDevice)$"
)

var mutants = []mutant{
	{
		name: "verify does nothing",
		file: "migrate/steps.go",
		old:  "func (v *verify) Apply() error {\n",
		new:  "func (v *verify) Apply() error {\n\tif v != nil {\n\t\treturn nil\n\t}\n",
		pkgs: []string{"./migrate"}, run: "^TestVerifyCatchesARestartedService$",
	},
	{
		name: "barrier without the system directory's sync (Store.Sync)",
		file: "migrate/transition.go",
		old:  "\tif err := e.Store.Sync(); err != nil {\n\t\treturn err\n\t}\n\t// A live directory",
		new:  "\tif err := error(nil); err != nil {\n\t\treturn err\n\t}\n\t// A live directory",
		pkgs: []string{powerloss, "./migrate"}, run: devices,
	},
	{
		name: "barrier without the live directory's sync (Live.Sync)",
		file: "migrate/transition.go",
		old:  "\tif err := e.Live.Sync(); err != nil {",
		new:  "\tif err := error(nil); err != nil {",
		pkgs: []string{powerloss, "./migrate"}, run: devices,
	},
	{
		// Was "journal written without its directory sync": the journal is
		// written unsynced now, and made durable, with the copies and the
		// new generations, by the first barrier alone.
		name: "first barrier left out (journal, copies, generations not durable before a link moves)",
		file: "migrate/transition.go",
		old:  "\t// generations are durable before any link moves.\n\tif err := e.barrier(); err != nil {",
		new:  "\t// generations are durable before any link moves.\n\tif err := error(nil); err != nil {",
		pkgs: []string{powerloss}, run: explorer,
	},
	{
		name: "WriteFileSynced without its directory sync",
		file: "internal/durable/ops.go",
		old:  "\tif err := fsys.WriteFile(p, data, perm); err != nil {\n\t\treturn err\n\t}\n\treturn fsys.SyncDir(path.Dir(p))\n",
		new:  "\tif err := fsys.WriteFile(p, data, perm); err != nil {\n\t\treturn err\n\t}\n\treturn nil\n",
		pkgs: []string{powerloss}, run: explorer,
	},
	{
		// Was "SymlinkSynced without its directory sync", which recovery's
		// link moves were made with: they are made unsynced now, and
		// durable by one barrier before recovery removes anything.
		name: "recovery removes generations before its link moves are durable",
		file: "migrate/recover.go",
		old:  "\tif moved {\n",
		new:  "\tif moved && false {\n",
		pkgs: []string{powerloss}, run: explorer,
	},
	{
		name: "outside-writer watch without inotify (times and sizes only)",
		file: "migrate/watch.go",
		old:  "\tfw, err := fsnotify.NewWatcher()\n",
		new:  "\tfw, err := (*fsnotify.Watcher)(nil), os.ErrClosed\n",
		pkgs: []string{"./migrate"}, run: "^TestOutsideWriter",
	},
	{
		name: "outside-writer guard ignores the watch",
		file: "migrate/steps.go",
		old:  "\tif p := g.w.Tripped(g.name); p != \"\" {\n",
		new:  "\tif p := g.w.Tripped(g.name); p == \"\\x00\" {\n",
		pkgs: []string{"./migrate"}, run: "^TestOutsideWriter",
	},
	{
		name: "an interrupted apply is not finished",
		file: "migrate/apply.go",
		old:  "\tj, c, err := e.readApplyJournal()\n\tif err != nil || j == nil {\n",
		new:  "\tj, c, err := e.readApplyJournal()\n\tif err != nil || j != nil || c == nil {\n",
		pkgs: []string{"./migrate"}, run: "^TestApplyKilledAtEveryStep$",
	},
	{
		name: "a dry run's supervisor changes reach the supervisor",
		file: "migrate/engine.go",
		old:  "\t\te.Backend = &supervisor.Dry{Backend: e.Backend}\n",
		new:  "\t\t_ = &supervisor.Dry{Backend: e.Backend}\n",
		pkgs: []string{"./testscripts"}, run: "^TestScripts$/^s6_apply$",
	},
	{
		name: "definitions changed under their records go unnoticed",
		file: "migrate/drift.go",
		old:  "\t\tif same {\n",
		new:  "\t\tif _ = same; true {\n",
		pkgs: []string{"./testscripts"}, run: "^TestScripts$/^drift$",
	},
	{
		name: "owner lock never taken",
		file: "tree/lock.go",
		old:  "\t\terr := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)\n",
		new:  "\t\terr := error(nil)\n",
		pkgs: []string{"./testscripts"}, run: "^TestScripts$/^(lock|update_lock)$",
	},
}

func main() {
	only := flag.String("run", "", "run only the mutants whose name matches `REGEXP`")
	flag.Parse()
	var sel *regexp.Regexp
	if *only != "" {
		var err error
		if sel, err = regexp.Compile(*only); err != nil {
			fail(err)
		}
	}
	start := time.Now()
	mod, err := moduleRoot()
	if err != nil {
		fail(err)
	}
	dir, err := scratch.Dir("treeshift-mutants")
	if err != nil {
		fail(err)
	}
	workDir = dir
	// Interrupted, the copy goes too (killed, the next run sweeps it).
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	go func() { <-sig; exit(130) }()
	if err := copyModule(mod, dir); err != nil {
		fail(err)
	}

	var todo []mutant
	for _, m := range mutants {
		if sel == nil || sel.MatchString(m.name) {
			todo = append(todo, m)
		}
	}
	// The baseline: every selection of tests passes on the code as it is.
	seen := map[string]bool{}
	for _, m := range todo {
		key := strings.Join(m.pkgs, " ") + " " + m.run
		if seen[key] {
			continue
		}
		seen[key] = true
		if out, ok := goTest(dir, m); !ok {
			fmt.Printf("baseline: %s -run '%s' fails without any mutation:\n%s\n", strings.Join(m.pkgs, " "), m.run, out)
			exit(1)
		}
	}
	fmt.Printf("baseline: the tests pass on the unmutated code (%s)\n", time.Since(start).Round(time.Second))

	survived, broken := 0, 0
	for _, m := range todo {
		t := time.Now()
		p := filepath.Join(dir, m.file)
		orig, err := os.ReadFile(p)
		if err != nil {
			fail(err)
		}
		if n := bytes.Count(orig, []byte(m.old)); n != 1 {
			fmt.Printf("BROKEN    %s: the text to replace occurs %d times in %s (want once): update the mutant\n", m.name, n, m.file)
			broken++
			continue
		}
		if err := os.WriteFile(p, bytes.Replace(orig, []byte(m.old), []byte(m.new), 1), 0o644); err != nil {
			fail(err)
		}
		out, ok := goTest(dir, m)
		if err := os.WriteFile(p, orig, 0o644); err != nil {
			fail(err)
		}
		d := time.Since(t).Round(time.Second)
		switch failed := failedTests(out); {
		case ok:
			fmt.Printf("SURVIVED  %s: %s -run '%s' passes (%s)\n", m.name, strings.Join(m.pkgs, " "), m.run, d)
			survived++
		case len(failed) == 0:
			fmt.Printf("BROKEN    %s: the mutated code does not build or the tests did not run (%s):\n%s\n", m.name, d, out)
			broken++
		default:
			fmt.Printf("killed    %s: by %s (%s)\n%s", m.name, strings.Join(failed, ", "), d, firstComplaint(out))
		}
	}
	fmt.Printf("%d mutants: %d killed, %d survived, %d broken (%s)\n", len(todo), len(todo)-survived-broken, survived, broken,
		time.Since(start).Round(time.Second))
	if survived+broken > 0 {
		exit(1)
	}
	exit(0)
}

// goTest runs m's tests in the module copy dir.
func goTest(dir string, m mutant) (string, bool) {
	args := append([]string{"test", "-count=1", "-run", m.run}, m.pkgs...)
	cmd := exec.Command("go", args...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	return string(out), err == nil
}

// failedTests lists the tests a go test output reports failed, innermost
// names last.
func failedTests(out string) []string {
	var names []string
	for _, m := range regexp.MustCompile(`(?m)^\s*--- FAIL: (\S+)`).FindAllStringSubmatch(out, -1) {
		names = append(names, m[1])
	}
	return names
}

// firstComplaint is the start of the first message a failing test gave:
// what the test saw go wrong.
func firstComplaint(out string) string {
	lines := strings.Split(out, "\n")
	for i, l := range lines {
		if !regexp.MustCompile(`^\s+\S+_test\.go:\d+: `).MatchString(l) {
			continue
		}
		var b strings.Builder
		for j := i; j < len(lines) && j < i+4; j++ {
			if j > i && !strings.HasPrefix(lines[j], "        ") {
				break
			}
			l := strings.TrimSpace(lines[j])
			if len(l) > 160 {
				l = l[:160] + "…"
			}
			fmt.Fprintf(&b, "          %s\n", l)
		}
		return b.String()
	}
	return ""
}

func moduleRoot() (string, error) {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", err
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == os.DevNull {
		return "", fmt.Errorf("not inside a module")
	}
	return filepath.Dir(gomod), nil
}

// copyModule copies the files git knows of, committed or not (but not the
// ignored ones: built binaries), from mod to dir.
func copyModule(mod, dir string) error {
	cmd := exec.Command("git", "ls-files", "-z", "--cached", "--others", "--exclude-standard")
	cmd.Dir = mod
	out, err := cmd.Output()
	if err != nil {
		return fmt.Errorf("git ls-files: %w", err)
	}
	for _, f := range strings.Split(strings.TrimRight(string(out), "\x00"), "\x00") {
		src := filepath.Join(mod, f)
		fi, err := os.Lstat(src)
		if os.IsNotExist(err) {
			continue // deleted in the work tree
		}
		if err != nil {
			return err
		}
		dst := filepath.Join(dir, f)
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			return err
		}
		if fi.Mode()&os.ModeSymlink != 0 {
			t, err := os.Readlink(src)
			if err != nil {
				return err
			}
			if err := os.Symlink(t, dst); err != nil {
				return err
			}
			continue
		}
		b, err := os.ReadFile(src)
		if err != nil {
			return err
		}
		if err := os.WriteFile(dst, b, fi.Mode().Perm()); err != nil {
			return err
		}
	}
	return nil
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "mutants:", err)
	exit(2)
}

// workDir is the module's copy, removed by exit.
var workDir string

// exit removes the module's copy and exits: os.Exit runs no deferred call.
func exit(code int) {
	if workDir != "" {
		os.RemoveAll(workDir)
	}
	os.Exit(code)
}
