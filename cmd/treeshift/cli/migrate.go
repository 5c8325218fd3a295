package cli

import (
	"fmt"
	"strings"
	"text/tabwriter"

	"github.com/treeshift/treeshift/format"
	"github.com/treeshift/treeshift/migrate"
	"github.com/treeshift/treeshift/system"
)

// UninitCmd is `uninit`.
type UninitCmd struct {
	Name string `arg:"" help:"The tree to make not live."`
}

func (c *UninitCmd) Run(e *env) error {
	unlock, err := e.lock()
	if err != nil {
		return err
	}
	defer unlock()
	return e.sys.Uninit(c.Name)
}

// FormatsCmd is `formats`.
type FormatsCmd struct {
	JSON bool `name:"json" help:"Print a JSON document (docs/JSON.md)."`
}

func (c *FormatsCmd) Run(e *env) error {
	r := migrate.Default()
	if c.JSON {
		return printJSON(e, struct {
			Schema   int                `json:"schema"`
			Newest   int                `json:"newest"`
			Default  migrate.Tunability `json:"default_tunability"`
			Versions []migrate.Version  `json:"versions"`
		}{1, r.Newest(), migrate.WhenUnmanaged, r.Versions})
	}
	w := e.stdout
	fmt.Fprintf(w, "# treeshift format directives; newest version %d.\n", r.Newest())
	fmt.Fprintf(w, "# A source version not listed defaults to %s.\n", migrate.WhenUnmanaged)
	for _, v := range r.Versions {
		fmt.Fprintf(w, "\nversion %d\n", v.Number)
		if v.Comment != "" {
			fmt.Fprintf(w, "# %s\n", v.Comment)
		}
		for _, d := range v.Directives {
			fmt.Fprintf(w, "upgrade_from %d %s\n", d.From, d.Tunability)
		}
	}
	return nil
}

// PlanCmd is `plan`.
type PlanCmd struct {
	To    int      `default:"${newest}" help:"Target format version (default: newest)." placeholder:"VERSION"`
	JSON  bool     `name:"json" help:"Print a JSON document (docs/JSON.md)."`
	Trees []string `arg:"" optional:"" help:"Trees to plan (default: all, in start order)."`
}

func (c *PlanCmd) Run(e *env) error {
	r := migrate.Default()
	if r.Version(c.To) == nil {
		_, err := format.Get(c.To)
		return &system.UsageError{Err: err}
	}
	names := c.Trees
	if len(names) == 0 {
		var err error
		if names, err = e.sys.Ordered(); err != nil {
			return err
		}
	}
	m := &migrate.Migrator{Sys: e.sys, Registry: r}
	plans := []*migrate.Plan{}
	var refused []string
	for _, n := range names {
		p, err := m.Plan(n, c.To)
		if err != nil {
			return err
		}
		plans = append(plans, p)
		if !p.OK() {
			refused = append(refused, n)
		}
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
		printPlans(e, plans)
	}
	if len(refused) > 0 {
		return fmt.Errorf("tree(s) %s cannot move to format %d now", strings.Join(refused, " "), c.To)
	}
	return nil
}

func printPlans(e *env, plans []*migrate.Plan) {
	tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
	for _, p := range plans {
		if len(p.Hops) == 0 {
			fmt.Fprintf(tw, "tree %s: format %d, nothing to do\n", p.Tree, p.From)
			continue
		}
		fmt.Fprintf(tw, "tree %s: format %d to %d\n", p.Tree, p.From, p.To)
		for _, h := range p.Hops {
			verdict := "ok"
			if !h.Satisfied {
				verdict = "refused: " + h.Advice
			}
			tun := h.Tunability.String()
			if !h.Declared {
				tun += " (default)"
			}
			fmt.Fprintf(tw, "  hop %d -> %d\t%s\t%s\n", h.From, h.To, tun, verdict)
		}
		for _, cmd := range p.Recreate {
			fmt.Fprintf(tw, "    %s\n", cmd)
		}
	}
	tw.Flush()
}
