package cli

import (
	"fmt"
	"strings"

	"github.com/treeshift/treeshift/format"
	"github.com/treeshift/treeshift/migrate"
	"github.com/treeshift/treeshift/system"
	"github.com/treeshift/treeshift/update"
)

// UpdateCmd is `update`, 66-update's interface plus --to, --json and --wait
// (a global option).
type UpdateCmd struct {
	DryRun bool     `short:"d" name:"dry-run" help:"Do every read and check, print every action prefixed \"dry run do: \", change nothing."`
	To     int      `default:"${newest}" help:"Target format version (default: newest); lower for a downgrade." placeholder:"VERSION"`
	JSON   bool     `name:"json" help:"Print a JSON result document on stdout (docs/JSON.md)."`
	Trees  []string `arg:"" optional:"" help:"Trees to update (default: all of the invoking user's, in start order)."`
}

// UpdateReport is the --json document of update.
type UpdateReport struct {
	Schema    int             `json:"schema"`
	DryRun    bool            `json:"dry_run"`
	To        int             `json:"to"`
	Recovered []string        `json:"recovered"`
	Trees     []update.Result `json:"trees"`
}

func (c *UpdateCmd) Run(e *env) error {
	e.log.dry = c.DryRun
	r := migrate.Default()
	if r.Version(c.To) == nil {
		_, err := format.Get(c.To)
		return &system.UsageError{Err: err}
	}
	// Unknown or badly named trees are usage errors, before anything runs.
	for _, n := range c.Trees {
		if err := e.sys.CheckTree(n); err != nil {
			return err
		}
	}
	unlock, err := e.lockFor(c.DryRun)
	if err != nil {
		return err
	}
	defer unlock()

	u := &update.Updater{
		Sys: e.sys, Registry: r, DryRun: c.DryRun,
		Act: func(format string, args ...any) {
			if c.DryRun {
				e.log.action(fmt.Sprintf(format, args...))
			} else {
				e.log.printf(3, format, args...)
			}
		},
		Note: e.log.printf,
	}
	// Per-tree progress, for a person watching a long transition: never in
	// a hook's log or with a JSON document.
	if e.Verbosity >= 2 && !c.JSON && !c.DryRun && isTerminal(e.log.w) {
		u.Progress = func(i, n int, tree string, from, to int) {
			if n > 3 {
				e.log.emit("info", fmt.Sprintf("[%d/%d] tree %s: format %d to %d", i, n, tree, from, to))
			}
		}
	}
	recovered, err := u.Recover()
	if err != nil {
		return err
	}
	names := c.Trees
	if len(names) == 0 {
		if names, err = e.sys.Ordered(); err != nil {
			return err
		}
	}
	report := UpdateReport{Schema: 1, DryRun: c.DryRun, To: c.To, Recovered: nonNilStrings(recovered), Trees: []update.Result{}}
	var bad []string
	for _, res := range u.Run(names, c.To) {
		report.Trees = append(report.Trees, res)
		if res.Error != "" {
			e.log.fatal(fmt.Errorf("%s", res.Error))
			bad = append(bad, res.Tree)
		}
	}
	if !c.DryRun && len(bad) == 0 {
		if err := e.stamp(c.To); err != nil {
			return err
		}
	}
	summarize(e, report.Trees, c.To, c.DryRun)
	if c.JSON {
		if err := printJSON(e, report); err != nil {
			return err
		}
	}
	if len(bad) > 0 {
		return fmt.Errorf("tree(s) not updated: %s", strings.Join(bad, " "))
	}
	return nil
}

// stamp records the target as the owner's format stamp once every tree is
// in it.
func (e *env) stamp(to int) error {
	names, err := e.sys.Store.Names()
	if err != nil {
		return err
	}
	for _, n := range names {
		v, err := e.sys.Store.PeekFormat(n)
		if err != nil {
			return err
		}
		if v != to {
			return nil
		}
	}
	st, err := e.sys.Store.ReadState()
	if err != nil || st.Stamp == to || st.Stamp == 0 {
		return err
	}
	st.Stamp = to
	return e.sys.Store.WriteState(st)
}

func nonNilStrings(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// summarize says at -v 2 what the run did: a line per tree that moved, then
// one line of counts. A package hook logs at -v 2, so its log tells a run
// that converted three trees from one that had nothing to do.
func summarize(e *env, results []update.Result, to int, dry bool) {
	moved, current, refused, failed := 0, 0, 0, 0
	verb := "moved"
	if dry {
		verb = "would move"
	}
	for _, r := range results {
		switch r.Outcome {
		case update.Updated:
			moved++
			e.log.printf(2, "tree %s: %s from format %d to format %d", r.Tree, verb, r.From, r.To)
		case update.Unchanged:
			current++
		case update.Refused:
			refused++
		default:
			failed++
		}
	}
	if moved == 0 && refused == 0 && failed == 0 {
		if current == 0 {
			e.log.printf(2, "nothing to do: no trees")
		} else {
			e.log.printf(2, "nothing to do: %s already in format %d", trees(current), to)
		}
		return
	}
	parts := []string{fmt.Sprintf("%s %s to format %d", trees(moved), verb, to)}
	if current > 0 {
		parts = append(parts, fmt.Sprintf("%d already current", current))
	}
	if refused > 0 {
		parts = append(parts, fmt.Sprintf("%d refused", refused))
	}
	if failed > 0 {
		parts = append(parts, fmt.Sprintf("%d failed", failed))
	}
	e.log.printf(2, "%s", strings.Join(parts, ", "))
}

func trees(n int) string {
	if n == 1 {
		return "1 tree"
	}
	return fmt.Sprintf("%d trees", n)
}
