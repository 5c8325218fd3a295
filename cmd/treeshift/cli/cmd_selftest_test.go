package cli

import (
	"bytes"
	"strings"
	"testing"

	"github.com/treeshift/treeshift/internal/powerloss"
)

// A crash state that did not recover fails the self-test (exit 111), and
// each such state is printed with what went wrong; the explorer's finding
// them is internal/powerloss's test (a run with a sync left out).
func TestSelftestReportsViolations(t *testing.T) {
	var out, errs bytes.Buffer
	e := &env{Globals: &Globals{}, stdout: &out, log: &logger{w: &errs, level: 1}}
	res := &powerloss.Result{States: 7, Enumerated: 9, Tried: 9, Runs: []powerloss.RunStats{{Name: "update", Points: 3}},
		Violations: []powerloss.Violation{{Run: "update", State: "crash at point 2 of 2 (after syncfs /x), every unsynced change lost",
			Problem: "after the crash: the live link of tree boot: dangles"}}}
	err := reportCrash(e, res)
	if err == nil || classify(err) != ExitSystem {
		t.Fatalf("reportCrash with a violation: %v, want a failure (111)", err)
	}
	for _, want := range []string{
		"7 crash states explored (every one of the 9 enumerated at 3 crash points of 1 run(s), 0 file operations; 9 tried, duplicates checked once) in 0s: 1 violation(s) of the guarantee\n",
		"after the crash: the live link of tree boot: dangles\n    in the update, crash at point 2 of 2 (after syncfs /x), every unsynced change lost\n",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
	res.Violations = nil
	out.Reset()
	if err := reportCrash(e, res); err != nil || !strings.HasSuffix(out.String(), ": the guarantee held in every one\n") {
		t.Errorf("reportCrash without violations: %v\n%s", err, out.String())
	}
}
