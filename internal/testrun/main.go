// Command testrun runs go test with -json and prints what a developer reads:
// the output of failing tests, one line per package, and at the end one line
// per group of skipped tests, with the reason they give. Skips are otherwise
// invisible in go test's summary ("ok"), so a test suite that quietly stopped
// exercising s6 or the root-only paths would look green.
//
//	go run ./internal/testrun [-fail-skips REGEXP] [-show REGEXP] [go test flags] PACKAGES
//
// With -fail-skips, a skip whose reason matches REGEXP fails the run: CI
// installs s6 and runs as root, so a skip there hides a broken install step.
// With -show, the output of the tests whose name matches REGEXP is printed
// even when they pass: the figures a long run reports (make crash).
// The tests run with TMPDIR set to a fresh directory, which must be empty
// when they end: a test that leaves files behind (a built binary, a staged
// root) fills the machine's /tmp a little more on every run, and fails it.
// The exit status is go test's, or 1 when a forbidden skip was seen or
// something was left behind.
package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"github.com/treeshift/treeshift/internal/scratch"
	"io"
	"os"
	"os/exec"
	"regexp"
	"sort"
	"strings"
)

// event is one line of go test -json (cmd/test2json).
type event struct {
	Action  string
	Package string
	Test    string
	Output  string
}

func main() {
	args := os.Args[1:]
	var forbid, show *regexp.Regexp
	for len(args) >= 2 && (args[0] == "-fail-skips" || args[0] == "-show") {
		re, err := regexp.Compile(args[1])
		if err != nil {
			fmt.Fprintf(os.Stderr, "testrun: %s: %v\n", args[0], err)
			os.Exit(2)
		}
		if args[0] == "-show" {
			show = re
		} else {
			forbid = re
		}
		args = args[2:]
	}
	tmp, err := scratch.Dir("treeshift-testrun")
	if err != nil {
		fmt.Fprintln(os.Stderr, "testrun:", err)
		os.Exit(2)
	}
	defer os.RemoveAll(tmp)
	// Tests that run commands as another user need to reach their files
	// in here, as they would in /tmp.
	if err := os.Chmod(tmp, 0o755); err != nil {
		fmt.Fprintln(os.Stderr, "testrun:", err)
		os.Exit(2)
	}
	cmd := exec.Command("go", append([]string{"test", "-json"}, args...)...)
	cmd.Env = append(os.Environ(), "TMPDIR="+tmp)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		fmt.Fprintln(os.Stderr, "testrun:", err)
		os.Exit(2)
	}
	if err := cmd.Start(); err != nil {
		fmt.Fprintln(os.Stderr, "testrun:", err)
		os.Exit(2)
	}
	skips := report(out, os.Stdout, show)
	err = cmd.Wait()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		fmt.Fprintln(os.Stderr, "testrun:", err)
		code = 2
	}
	if printSkips(os.Stdout, skips, forbid) && code == 0 {
		code = 1
	}
	if left, _ := os.ReadDir(tmp); len(left) > 0 {
		var names []string
		for _, e := range left {
			names = append(names, e.Name())
		}
		fmt.Printf("FAIL: the tests left files in TMPDIR: %s\n", strings.Join(names, " "))
		if code == 0 {
			code = 1
		}
	}
	os.RemoveAll(tmp)
	os.Exit(code)
}

// report copies what matters of the event stream to w and returns the
// skipped tests by reason. The output of a passing test is dropped unless
// its name matches show.
func report(r io.Reader, w io.Writer, show *regexp.Regexp) map[string][]string {
	logs := map[string][]string{} // package/test -> its output
	skips := map[string][]string{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		var e event
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			fmt.Fprintln(w, sc.Text()) // not an event: a build error, say
			continue
		}
		key := e.Package + "/" + e.Test
		switch e.Action {
		case "output":
			if e.Test == "" {
				// Package-level lines: the ok/FAIL summary, build output.
				// The verbose chatter of test2json ("=== RUN") is dropped.
				if !strings.HasPrefix(e.Output, "=== ") && !strings.HasPrefix(e.Output, "--- ") &&
					e.Output != "PASS\n" && !strings.HasPrefix(e.Output, "testing: warning") {
					fmt.Fprint(w, e.Output)
				}
				continue
			}
			logs[key] = append(logs[key], e.Output)
		case "fail":
			if e.Test != "" {
				fmt.Fprint(w, strings.Join(logs[key], ""))
			}
			delete(logs, key)
		case "skip":
			if e.Test != "" {
				reason := skipReason(logs[key])
				skips[reason] = append(skips[reason], e.Package[strings.LastIndexByte(e.Package, '/')+1:]+"."+e.Test)
			}
			delete(logs, key)
		case "pass":
			if e.Test != "" && show != nil && show.MatchString(e.Test) {
				for _, l := range logs[key] {
					if !strings.HasPrefix(l, "=== ") {
						fmt.Fprint(w, l)
					}
				}
			}
			delete(logs, key)
		}
	}
	return skips
}

// skipReason is the message a skipped test gave: the first line of its
// output that is not go test's own bookkeeping, without its file:line
// prefix. (testscript logs the script's environment after the reason.)
func skipReason(lines []string) string {
	for _, l := range lines {
		l = strings.TrimSpace(l)
		if l == "" || strings.HasPrefix(l, "=== ") || strings.HasPrefix(l, "--- ") {
			continue
		}
		if m := fileLine.FindStringIndex(l); m != nil {
			l = l[m[1]:]
		}
		return l
	}
	return "no reason given"
}

var fileLine = regexp.MustCompile(`^[\w.-]+\.(go|txtar):\d+: `)

// printSkips prints one line per reason and reports whether any reason
// matches forbid.
func printSkips(w io.Writer, skips map[string][]string, forbid *regexp.Regexp) bool {
	reasons := make([]string, 0, len(skips))
	n := 0
	for r, tests := range skips {
		reasons = append(reasons, r)
		n += len(tests)
	}
	if n == 0 {
		fmt.Fprintln(w, "skipped: none")
		return false
	}
	sort.Strings(reasons)
	bad := false
	for _, r := range reasons {
		tests := skips[r]
		sort.Strings(tests)
		mark := "skipped"
		if forbid != nil && forbid.MatchString(r) {
			mark, bad = "FORBIDDEN SKIP", true
		}
		fmt.Fprintf(w, "%s: %d test(s): %s (%s)\n", mark, len(tests), r, strings.Join(tests, ", "))
	}
	return bad
}
