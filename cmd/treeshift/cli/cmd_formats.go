package cli

import (
	"fmt"
	"os"

	"github.com/treeshift/treeshift/format"
	"github.com/treeshift/treeshift/internal/owner"
	"github.com/treeshift/treeshift/migrate"
)

// FormatsCmd is `formats`: the effective directives, the shipped ones as
// the root's files beside each format tighten them, and where each comes
// from.
type FormatsCmd struct {
	JSON bool `name:"json" help:"Print a JSON document (docs/JSON.md)."`
}

func (c *FormatsCmd) Run(e *env) error {
	o, err := owner.Current(e.Root, os.Getenv)
	if err != nil {
		return err
	}
	if fi, err := os.Stat(o.Root); err != nil || !fi.IsDir() {
		return &migrate.UsageError{Err: fmt.Errorf("--root %s is not a directory", o.Root)}
	}
	r, err := migrate.Load(o.Root)
	if err != nil {
		return err
	}
	if c.JSON {
		return printJSON(e, struct {
			Schema   int                `json:"schema"`
			Newest   int                `json:"newest"`
			Default  migrate.Tunability `json:"default_tunability"`
			Files    []string           `json:"files"`
			Versions []migrate.Version  `json:"versions"`
		}{1, r.Newest(), migrate.WhenUnmanaged, migrate.FormatDirs, r.Versions})
	}
	w := e.stdout
	fmt.Fprintf(w, "# treeshift format directives; newest version %d.\n", r.Newest())
	fmt.Fprintf(w, "# A source version not listed takes the version's upgrade_from \"\", or %s.\n", migrate.WhenUnmanaged)
	fmt.Fprintf(w, "# Tightened by %s/N.rtr and %s/N.rtr, when present.\n", migrate.FormatDirs[0], migrate.FormatDirs[1])
	for _, v := range r.Versions {
		fmt.Fprintf(w, "\nversion %s\n", format.Name(v.Number))
		if v.Comment != "" {
			fmt.Fprintf(w, "# %s\n", v.Comment)
		}
		for _, d := range v.Directives {
			line := fmt.Sprintf("upgrade_from %s %s", format.Name(d.From), d.Tunability)
			if d.Source != migrate.Shipped {
				line += "  # from " + d.Source
			}
			fmt.Fprintln(w, line)
		}
	}
	return nil
}
