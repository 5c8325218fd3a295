// Package testscripts specifies treeshift's command-line behaviour as
// testscript files in testdata/, one scenario per file. Each script gets a
// staged root in $ROOT holding the service definitions of testdata/services.
package testscripts

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rogpeppe/go-internal/testscript"
	"github.com/treeshift/treeshift/internal/scratch"
)

// binDir holds the treeshift the scripts run (internal/testbin): the
// released command line, built without the race detector, behind a guard
// that refuses a command line without --root.
var binDir string

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	dir, err := scratch.Dir("treeshift-testbin")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	// Other users run it too (asuser).
	if err := os.Chmod(dir, 0o755); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	build := exec.Command("go", "build", "-o", filepath.Join(dir, "treeshift"), "github.com/treeshift/treeshift/internal/testbin")
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "go build internal/testbin: %v\n%s", err, out)
		return 1
	}
	binDir = dir
	// testscript makes its own root of work directories and leaves it
	// behind, empty, after every run: one of ours, removed.
	if workRoot, err = scratch.Dir("treeshift-scripts"); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(workRoot)
	return m.Run()
}

// workRoot holds the scripts' work directories.
var workRoot string

func TestScripts(t *testing.T) {
	testscript.Run(t, testscript.Params{
		Dir:                 "testdata",
		WorkdirRoot:         workRoot,
		RequireExplicitExec: false,
		// UPDATE_GOLDEN=1 rewrites a failing cmp's golden file in the script.
		UpdateScripts: os.Getenv("UPDATE_GOLDEN") != "",
		Setup:         setup,
		Cmds: map[string]func(*testscript.TestScript, bool, []string){
			"exits":    cmdExits,
			"snapshot": cmdSnapshot,
			"truncate": cmdTruncate,
			"asuser":   cmdAsUser,
			"waitproc": cmdWaitProc,
		},
		Condition: func(cond string) (bool, error) {
			switch cond {
			case "root":
				return os.Getuid() == 0, nil
			}
			return false, fmt.Errorf("unknown condition %q", cond)
		},
	})
}

// setup stages $ROOT with the shared service definitions.
func setup(e *testscript.Env) error {
	root := filepath.Join(e.WorkDir, "root")
	dst := filepath.Join(root, "etc/treeshift/service")
	if err := os.MkdirAll(dst, 0o755); err != nil {
		return err
	}
	entries, err := os.ReadDir("testdata/services")
	if err != nil {
		return err
	}
	for _, de := range entries {
		b, err := os.ReadFile(filepath.Join("testdata/services", de.Name()))
		if err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(dst, de.Name()), b, 0o644); err != nil {
			return err
		}
	}
	e.Setenv("ROOT", root)
	// REPO is the repository, for scripts that run its files (dist/).
	if repo, err := filepath.Abs(".."); err == nil {
		e.Setenv("REPO", repo)
	}
	// treeshift is found first on PATH; TSBIN is the directory holding it
	// alone, for scripts that restrict PATH.
	e.Setenv("PATH", binDir+string(os.PathListSeparator)+e.Getenv("PATH"))
	e.Setenv("TSBIN", binDir)
	// Whatever a script started under s6, it does not outlive the script,
	// even when the script fails half-way.
	e.Defer(func() {
		scans, _ := filepath.Glob(filepath.Join(root, "run/treeshift/scandir/*"))
		for _, scan := range scans {
			exec.Command("s6-svscanctl", "-t", scan).Run()
		}
	})
	return nil
}

// cmdExits runs a command and asserts its exact exit status:
//
//	exits 100 treeshift --root $ROOT bogus
//
// testscript's own "!" only asserts a non-zero status.
func cmdExits(ts *testscript.TestScript, neg bool, args []string) {
	if neg {
		ts.Fatalf("usage: exits CODE COMMAND [ARGS...] (no !)")
	}
	if len(args) < 2 {
		ts.Fatalf("usage: exits CODE COMMAND [ARGS...]")
	}
	want, err := strconv.Atoi(args[0])
	if err != nil {
		ts.Fatalf("exits: bad code %q", args[0])
	}
	err = ts.Exec(args[1], args[2:]...)
	got := 0
	if err != nil {
		var ee *exec.ExitError
		if !errors.As(err, &ee) {
			ts.Fatalf("exits: %v", err)
		}
		got = ee.ExitCode()
	}
	if got != want {
		ts.Fatalf("%s exited %d, want %d", strings.Join(args[1:], " "), got, want)
	}
}

// cmdSnapshot writes to FILE a line for every path below DIR: its type, mode,
// size, modification time in nanoseconds, content hash and link target. Two
// equal snapshots mean nothing below DIR changed, not even a timestamp.
func cmdSnapshot(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 2 {
		ts.Fatalf("usage: snapshot DIR FILE")
	}
	dir := ts.MkAbs(args[0])
	var lines []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := os.Lstat(p)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		line := fmt.Sprintf("%s %v %d %d", rel, fi.Mode(), fi.Size(), fi.ModTime().UnixNano())
		switch {
		case fi.Mode()&fs.ModeSymlink != 0:
			target, err := os.Readlink(p)
			if err != nil {
				return err
			}
			line += " -> " + target
		case fi.Mode().IsRegular():
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			line += fmt.Sprintf(" %x", sha256.Sum256(b))
		}
		lines = append(lines, line)
		return nil
	})
	ts.Check(err)
	sort.Strings(lines)
	ts.Check(os.WriteFile(ts.MkAbs(args[1]), []byte(strings.Join(lines, "\n")+"\n"), 0o644))
}

// cmdTruncate cuts FILE to N bytes, in place (following links, as an editor
// or a crash would).
func cmdTruncate(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 2 {
		ts.Fatalf("usage: truncate FILE N")
	}
	n, err := strconv.ParseInt(args[1], 10, 64)
	ts.Check(err)
	ts.Check(os.Truncate(ts.MkAbs(args[0]), n))
}

// cmdAsUser runs treeshift as another user, with setpriv(1):
//
//	asuser 65534 treeshift --root $ROOT status
//
// The test binary (which testscript dispatches by its name) is copied once
// into a world-readable directory, since the build directory is private.
// HOME is set to $ROOT's /home/UID so that the user's own paths are used.
// The exit code is asserted like exits: asuser UID CODE treeshift ARGS...
func cmdAsUser(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) < 3 || args[2] != "treeshift" {
		ts.Fatalf("usage: asuser UID CODE treeshift [ARGS...]")
	}
	uid := args[0]
	bin := filepath.Join(binDir, "treeshift")
	home := "/home/" + uid
	cmd := []string{"setpriv", "--reuid=" + uid, "--regid=" + uid, "--clear-groups", "--inh-caps=-all",
		"env", "-i", "HOME=" + home, "PATH=/usr/bin:/bin", bin}
	cmdExits(ts, false, append([]string{args[1]}, append(cmd, args[3:]...)...))
}

// cmdWaitProc waits (up to 20 s) until exactly COUNT processes match
// pgrep's PATTERN, optionally owned by UID:
//
//	waitproc [-u UID] COUNT PATTERN
//
// A service reported up may still be its run script, not yet the program it
// execs into, and one reported down may not have exited yet: a count taken
// once races with both.
func cmdWaitProc(ts *testscript.TestScript, neg bool, args []string) {
	if neg {
		ts.Fatalf("usage: waitproc [-u UID] COUNT PATTERN (no !)")
	}
	var pgrep []string
	if len(args) == 4 && args[0] == "-u" {
		pgrep, args = []string{"-u", args[1]}, args[2:]
	}
	if len(args) != 2 {
		ts.Fatalf("usage: waitproc [-u UID] COUNT PATTERN")
	}
	want, err := strconv.Atoi(args[0])
	ts.Check(err)
	pgrep = append(pgrep, "-c", "-f", args[1])
	deadline := time.Now().Add(20 * time.Second)
	for {
		out, _ := exec.Command("pgrep", pgrep...).Output() // exit 1: no match
		got, _ := strconv.Atoi(strings.TrimSpace(string(out)))
		if got == want {
			return
		}
		if time.Now().After(deadline) {
			ts.Fatalf("waitproc: %d processes match %q after 20s, want %d", got, args[1], want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
