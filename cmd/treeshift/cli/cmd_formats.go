package cli

import (
	"fmt"

	"github.com/treeshift/treeshift/migrate"
)

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
