package cli

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/treeshift/treeshift/format"
	"github.com/treeshift/treeshift/migrate"
)

// PlanCmd is `plan`.
type PlanCmd struct {
	To    int      `default:"${newest}" help:"Target format version (default: newest)." placeholder:"VERSION"`
	JSON  bool     `name:"json" help:"Print a JSON document (docs/JSON.md)."`
	Trees []string `arg:"" optional:"" help:"Trees to plan (default: all, in start order)."`
}

func (c *PlanCmd) Run(e *env) error {
	eng, err := e.reading()
	if err != nil {
		return err
	}
	if eng.Registry.Version(c.To) == nil {
		_, err := format.Get(c.To)
		return &migrate.UsageError{Err: err}
	}
	plans, err := eng.Plans(c.Trees, c.To)
	if plans == nil {
		return err
	}
	if c.JSON {
		if err := printJSON(e, struct {
			Schema int             `json:"schema"`
			To     int             `json:"to"`
			Plans  []*migrate.Plan `json:"plans"`
		}{1, c.To, plans}); err != nil {
			return err
		}
	} else {
		printPlans(e, eng, plans)
	}
	var refused []string
	for _, p := range plans {
		if !p.OK() {
			refused = append(refused, p.Tree)
		}
	}
	if err != nil {
		return err
	}
	if len(refused) > 0 {
		return fmt.Errorf("tree(s) %s cannot move to format %s now", strings.Join(refused, " "), format.Name(c.To))
	}
	return nil
}

func printPlans(e *env, eng *migrate.Engine, plans []*migrate.Plan) {
	tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
	for _, p := range plans {
		if p.Error != "" {
			fmt.Fprintf(tw, "tree %s: cannot be read: %s\n", p.Tree, p.Error)
			continue
		}
		if len(p.Hops) == 0 {
			fmt.Fprintf(tw, "tree %s: format %s, nothing to do\n", p.Tree, format.Name(p.From))
			printDrift(tw, eng, p)
			continue
		}
		fmt.Fprintf(tw, "tree %s: format %s to %s\n", p.Tree, format.Name(p.From), format.Name(p.To))
		for _, h := range p.Hops {
			verdict := "ok"
			if !h.Satisfied {
				verdict = "refused: " + h.Advice
			}
			tun := h.Tunability.String()
			if !h.Declared {
				tun += " (default)"
			}
			fmt.Fprintf(tw, "  hop %s -> %s\t%s\t%s\n", format.Name(h.From), format.Name(h.To), tun, verdict)
		}
		for _, cmd := range p.Recreate {
			fmt.Fprintf(tw, "    %s\n", cmd)
		}
		printDrift(tw, eng, p)
	}
	tw.Flush()
}

// printDrift says which definitions changed under the tree's records: the
// update keeps the records, enable takes the new definitions.
func printDrift(w io.Writer, eng *migrate.Engine, p *migrate.Plan) {
	for _, d := range p.Drift {
		if d.Error != "" {
			fmt.Fprintf(w, "  %s\n", d)
			continue
		}
		fmt.Fprintf(w, "  %s; the update keeps the record: %s takes it\n", d, eng.Suggest.Cmd("enable", "-t", p.Tree, d.Service))
	}
}
