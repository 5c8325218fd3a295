package cli

import (
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/treeshift/treeshift/internal/powerloss"
	"github.com/treeshift/treeshift/internal/scratch"
	"github.com/treeshift/treeshift/migrate"
)

// SelftestCmd is `selftest`: checks an administrator can run on their own
// machine before trusting treeshift with it. (Its short name keeps the
// columns of the CLI struct as they are.)
type SelftestCmd struct {
	Crash SelftestCrashCmd `cmd:"" help:"Record an update on the filesystem TMPDIR names and check that it survives a power loss at any point."`
}

// SelftestCrashCmd is `selftest crash`.
type SelftestCrashCmd struct {
	States int `default:"100" help:"How many crash states to check, at least the few dozen where every unsynced change is lost (0: every one the explorer enumerates, some minutes)." placeholder:"N"`
}

// Run stages a throwaway system in a new directory under TMPDIR (--root
// and -l are not used), records an update of it there, and checks the
// recovery of crash states of that update and of two recoveries
// (internal/powerloss). It prints how many states it checked and whether
// the guarantee held; a violation is a failure (exit 111).
func (c *SelftestCrashCmd) Run(e *env) error {
	if c.States < 0 {
		return &migrate.UsageError{Err: fmt.Errorf("--states %d: expected 0 (all) or more", c.States)}
	}
	dir, err := scratch.Dir("treeshift-selftest")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	root := filepath.Join(dir, "root")
	if err := os.Mkdir(root, 0o755); err != nil {
		return err
	}
	e.log.printf(2, "staging a system in %s", root)
	o, err := powerloss.Stage(root)
	if err != nil {
		return err
	}
	scratch := filepath.Join(dir, "states")
	if err := os.Mkdir(scratch, 0o700); err != nil {
		return err
	}
	// Each run checks another sample.
	seed := uint64(time.Now().UnixNano())
	e.log.printf(2, "sampling crash states with seed %d", seed)
	res, err := powerloss.Explore(powerloss.Config{
		Owner: o, States: c.States, Recovery: true, Scratch: scratch, Seed: seed,
		Progress: func(checked int) {
			e.log.printf(3, "checked %d crash states", checked)
		},
	})
	if err != nil {
		return fmt.Errorf("selftest crash: %w", err)
	}
	return reportCrash(e, res)
}

// reportCrash prints what an exploration found, and fails if it found a
// violation.
func reportCrash(e *env, res *powerloss.Result) error {
	for _, r := range res.Runs {
		e.log.printf(2, "%s: %d file operations, %d crash points, %d crash states checked", r.Name, r.Calls, r.Points, r.States)
	}
	fmt.Fprintln(e.stdout, res.Summary())
	if res.OK() {
		return nil
	}
	for _, v := range res.Violations {
		fmt.Fprintf(e.stdout, "\n%s\n", v)
	}
	return fmt.Errorf("selftest crash: %d crash state(s) of the update did not recover as promised (above): do not trust this treeshift with your trees; report it", len(res.Violations))
}
