package cli

import (
	"fmt"
	"strings"

	"github.com/treeshift/treeshift/internal/suggest"
	"github.com/treeshift/treeshift/migrate"
)

// ReverseCmd is `reverse`: the commands that recreate the trees' current
// configuration from scratch, as a script.
type ReverseCmd struct {
	JSON  bool     `name:"json" help:"Print the configuration as a document apply reads (docs/JSON.md)."`
	Trees []string `arg:"" optional:"" help:"Trees to recreate (default: all, in start order)."`
}

func (c *ReverseCmd) Run(e *env) error {
	if c.JSON && len(c.Trees) > 0 {
		// apply destroys the trees a configuration leaves out.
		return &migrate.UsageError{Err: fmt.Errorf("reverse --json prints the whole configuration: name no trees")}
	}
	eng, err := e.reading()
	if err != nil {
		return err
	}
	// A script that leaves out the trees it could not read would recreate
	// a system without them: nothing is printed unless all are read.
	st, err := eng.Status(c.Trees)
	if err != nil {
		if st != nil {
			reportUnreadable(e, st.Trees)
		}
		return err
	}
	if c.JSON {
		return printJSON(e, migrate.ConfigOf(st))
	}
	state, err := eng.Store.ReadState()
	if err != nil {
		return err
	}
	w := e.stdout
	fmt.Fprintf(w, "#!/bin/sh\n# Recreates the trees of %s (uid %d) as they are now. Run it on a system\n", st.Owner.Name, st.Owner.UID)
	fmt.Fprintf(w, "# with the same service definitions; set TREESHIFT to add options, for\n# example TREESHIFT='treeshift --root /mnt'.\nset -e\nts=${TREESHIFT:-treeshift}\n")
	for _, t := range st.Trees {
		fmt.Fprintf(w, "\n# tree %s\n", t.Name)
		// The script is for another system, or this one recreated: its
		// commands carry no --root or -l, which TREESHIFT adds.
		for _, cmd := range migrate.Creation(t, state.Order, t.Format, suggest.Prefix{}) {
			fmt.Fprintln(w, "$ts"+strings.TrimPrefix(cmd, "treeshift"))
		}
	}
	return nil
}
