package cli

import (
	"fmt"
	"github.com/treeshift/treeshift/format"
	"strings"

	"github.com/treeshift/treeshift/migrate"
)

// UpdateCmd is `update`, 66-update's interface plus --to, --json and --wait
// (a global option).
type UpdateCmd struct {
	DryRun  bool     `short:"d" name:"dry-run" help:"Do every read and check, print every action prefixed \"dry run do: \", change nothing."`
	To      int      `default:"${newest}" help:"Target format version (default: newest); lower for a downgrade." placeholder:"VERSION"`
	JSON    bool     `name:"json" help:"Print a JSON result document on stdout (docs/JSON.md)."`
	Config  string   `help:"Apply this configuration document (reverse --json) first, in the same run." placeholder:"FILE"`
	Abandon []string `help:"Give up the interrupted transition of TREE, which cannot be finished or rolled back: keep its newest readable generation." placeholder:"TREE"`
	Trees   []string `arg:"" optional:"" help:"Trees to update (default: all of the invoking user's, in start order)."`
}

func (c *UpdateCmd) Run(e *env) error {
	e.dry, e.log.dry = c.DryRun, c.DryRun
	// Per-tree progress, for a person watching a long transition: never in
	// a hook's log or with a JSON document.
	e.log.progress = e.Verbosity >= 2 && !c.JSON && !c.DryRun && isTerminal(e.log.w)
	eng, err := e.engine()
	if err != nil {
		return err
	}
	if len(c.Abandon) > 0 {
		for _, n := range c.Abandon {
			t, err := eng.Abandon(n)
			if err != nil {
				return err
			}
			e.log.printf(2, "tree %s: kept generation %d, in format %s; its interrupted transition is abandoned", n, t.Gen, format.Name(t.Format))
		}
		return nil
	}
	var cfg *migrate.Config
	if c.Config != "" {
		if cfg, err = readConfig(e, c.Config); err != nil {
			return err
		}
	}
	report, err := eng.UpdateWith(cfg, configName(c.Config), c.Trees, c.To)
	if report == nil {
		return err
	}
	for _, r := range report.Trees {
		if r.Error != "" {
			e.log.fatal(fmt.Errorf("%s", r.Error))
		}
		if r.Cleanup != "" {
			e.log.fatal(fmt.Errorf("%s", r.Cleanup))
		}
	}
	summarize(e, report.Trees, c.To, c.DryRun)
	if c.JSON {
		if jerr := printJSON(e, report); jerr != nil {
			return jerr
		}
	}
	return err
}

// summarize says at -v 2 what the run did: a line per tree that moved, then
// one line of counts. A package hook logs at -v 2, so its log tells a run
// that converted three trees from one that had nothing to do.
func summarize(e *env, results []migrate.Result, to int, dry bool) {
	moved, current, refused, failed := 0, 0, 0, 0
	verb := "moved"
	if dry {
		verb = "would move"
	}
	for _, r := range results {
		switch r.Outcome {
		case migrate.Updated:
			moved++
			e.log.printf(2, "tree %s: %s from format %s to format %s", r.Tree, verb, format.Name(r.From), format.Name(r.To))
		case migrate.Unchanged:
			current++
		case migrate.Refused:
			refused++
		default:
			failed++
		}
	}
	if moved == 0 && refused == 0 && failed == 0 {
		if current == 0 {
			e.log.printf(2, "nothing to do: no trees")
		} else {
			e.log.printf(2, "nothing to do: %s already in format %s", trees(current), format.Name(to))
		}
		return
	}
	parts := []string{fmt.Sprintf("%s %s to format %s", trees(moved), verb, format.Name(to))}
	if current > 0 {
		parts = append(parts, fmt.Sprintf("%d already current", current))
	}
	if refused > 0 {
		parts = append(parts, fmt.Sprintf("%d refused", refused))
	}
	if failed > 0 {
		parts = append(parts, fmt.Sprintf("%d not changed", failed))
	}
	e.log.printf(2, "%s", strings.Join(parts, ", "))
}

func trees(n int) string {
	if n == 1 {
		return "1 tree"
	}
	return fmt.Sprintf("%d trees", n)
}
