// Command mangen writes treeshift(1), generated from the command-line model,
// to the file given (make man: docs/treeshift.1).
//
// The page is dated with SOURCE_DATE_EPOCH when set, else with the date of
// the last commit, else today. A page whose text would not change is left
// as it is, date included: a build of a clean checkout leaves it clean.
package main

import (
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/treeshift/treeshift/cmd/treeshift/cli"
)

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: mangen FILE")
		os.Exit(2)
	}
	if err := run(os.Args[1]); err != nil {
		fmt.Fprintln(os.Stderr, "mangen:", err)
		os.Exit(1)
	}
}

func run(path string) error {
	page, err := cli.ManPage(date())
	if err != nil {
		return err
	}
	if old, err := os.ReadFile(path); err == nil && undated(string(old)) == undated(page) {
		return nil
	}
	return os.WriteFile(path, []byte(page), 0o644)
}

var thDate = regexp.MustCompile(`(?m)^(\.TH TREESHIFT 1) "[^"]*"`)

// undated is a page without its date.
func undated(page string) string { return thDate.ReplaceAllString(page, "$1") }

func date() string {
	if s := os.Getenv("SOURCE_DATE_EPOCH"); s != "" {
		if n, err := strconv.ParseInt(s, 10, 64); err == nil {
			return time.Unix(n, 0).UTC().Format(time.DateOnly)
		}
	}
	if out, err := exec.Command("git", "log", "-1", "--format=%cs").Output(); err == nil {
		if d := strings.TrimSpace(string(out)); d != "" {
			return d
		}
	}
	return time.Now().UTC().Format(time.DateOnly)
}
