// Command testbin is the treeshift the testscripts run: the released
// command line behind a guard that refuses any command line that would
// work on the machine running the tests rather than on a staged root (a
// script that lost its --root through a mangled variable, say).
//
// It is built without the race detector, as users get it: a race-built
// binary spends 50 ms starting, and the scripts start thousands. The
// engine's concurrency is race-tested in process by the package tests.
package main

import (
	"fmt"
	"os"
	"slices"
	"strings"

	"github.com/treeshift/treeshift/cmd/treeshift/cli"
)

func main() {
	if !staged(os.Args[1:]) {
		fmt.Fprintln(os.Stderr, "test harness: refusing to run treeshift on the real system: give --root")
		os.Exit(2)
	}
	os.Exit(cli.Main(os.Args[1:], os.Stdout, os.Stderr))
}

// staged reports whether a treeshift command line stays inside a staged
// root. formats, version and help read nothing; cluster works on the
// member roots its store names; selftest on roots of its own.
func staged(args []string) bool {
	for _, a := range args {
		if a == "--root" || strings.HasPrefix(a, "--root=") {
			return true
		}
	}
	for _, a := range args {
		if !strings.HasPrefix(a, "-") {
			return a == "formats" || a == "cluster" || a == "version" || a == "help" || a == "selftest"
		}
	}
	// No command at all, or --version: nothing is read.
	return len(args) == 0 || slices.Equal(args, []string{"--version"})
}
