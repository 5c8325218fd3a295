package cli

import (
	"fmt"
	"github.com/treeshift/treeshift/format"
	"text/tabwriter"

	"github.com/treeshift/treeshift/migrate"
	"github.com/treeshift/treeshift/tree"
)

// TreeCmd groups the tree subcommands.
type TreeCmd struct {
	Create  TreeCreateCmd  `cmd:"" help:"Create an empty tree."`
	Destroy TreeDestroyCmd `cmd:"" help:"Remove a tree and its live part (its services must be down)."`
	Enable  TreeEnableCmd  `cmd:"" help:"Add a tree to the start order."`
	Disable TreeDisableCmd `cmd:"" help:"Remove a tree from the start order."`
	Current TreeCurrentCmd `cmd:"" help:"Make a tree the current one."`
	Order   TreeOrderCmd   `cmd:"" help:"Start an enabled tree right after another."`
	List    TreeListCmd    `cmd:"" help:"List the trees."`
}

// TreeCreateCmd is `tree create`.
type TreeCreateCmd struct {
	Format  int      `default:"${newest}" help:"On-disk format version of the new tree (default: newest)."`
	Current bool     `short:"c" help:"Make the tree the current one."`
	Enable  bool     `short:"E" help:"Enable the tree (add it to the start order)."`
	Allow   []string `short:"a" sep:"," help:"Users allowed to use the tree, comma-separated (default: the owner)." placeholder:"USERS"`
	After   string   `short:"S" help:"Enable the tree and start it after tree AFTER." placeholder:"AFTER"`
	Name    string   `arg:"" help:"Name of the tree."`
}

func (c *TreeCreateCmd) Run(e *env) error {
	return e.locked([]string{c.Name}, func(eng *migrate.Engine) error {
		return eng.CreateTree(c.Name, migrate.CreateOptions{Format: c.Format, Current: c.Current, Enable: c.Enable, Allow: c.Allow, After: c.After})
	})
}

// TreeDestroyCmd is `tree destroy`.
type TreeDestroyCmd struct {
	Name string `arg:"" help:"Name of the tree."`
}

func (c *TreeDestroyCmd) Run(e *env) error {
	// A tree stuck in an unfinished update can be destroyed: that is a
	// way out (the engine drops its journal entry).
	eng, err := e.engine()
	if err != nil {
		return err
	}
	unlock, err := eng.Lock()
	if err != nil {
		return err
	}
	defer unlock()
	return eng.DestroyTree(c.Name)
}

// TreeEnableCmd is `tree enable`.
type TreeEnableCmd struct {
	Name string `arg:"" help:"Name of the tree."`
}

func (c *TreeEnableCmd) Run(e *env) error { return e.setTree(c.Name, migrate.EnableTree(c.Name)) }

// TreeDisableCmd is `tree disable`.
type TreeDisableCmd struct {
	Name string `arg:"" help:"Name of the tree."`
}

func (c *TreeDisableCmd) Run(e *env) error { return e.setTree(c.Name, migrate.DisableTree(c.Name)) }

// TreeCurrentCmd is `tree current`.
type TreeCurrentCmd struct {
	Name string `arg:"" help:"Name of the tree."`
}

func (c *TreeCurrentCmd) Run(e *env) error { return e.setTree(c.Name, migrate.CurrentTree(c.Name)) }

// TreeOrderCmd is `tree order`.
type TreeOrderCmd struct {
	After string `required:"" help:"The tree to start right before this one." placeholder:"AFTER"`
	Name  string `arg:"" help:"Name of the tree."`
}

func (c *TreeOrderCmd) Run(e *env) error {
	return e.setTree(c.Name, migrate.OrderTree(c.Name, c.After), c.After)
}

func (e *env) setTree(name string, change func(*tree.State) error, others ...string) error {
	return e.locked(append([]string{name}, others...), func(eng *migrate.Engine) error { return eng.SetTree(name, change) })
}

// TreeListCmd is `tree list`.
type TreeListCmd struct {
	JSON bool `name:"json" help:"Print a JSON document (docs/JSON.md)."`
}

// TreeListEntry is one tree of `tree list --json`.
type TreeListEntry struct {
	Name        string `json:"name"`
	Format      int    `json:"format"`
	Enabled     bool   `json:"enabled"`
	Position    int    `json:"position"`
	Current     bool   `json:"current"`
	Initialized bool   `json:"initialized"`
	Services    int    `json:"services"`
	// Error says why the tree could not be read.
	Error string `json:"error,omitempty"`
}

func (c *TreeListCmd) Run(e *env) error {
	eng, err := e.reading()
	if err != nil {
		return err
	}
	st, err := eng.Status(nil)
	if st == nil {
		return err
	}
	defer reportUnreadable(e, st.Trees)
	list := []TreeListEntry{}
	for _, t := range st.Trees {
		list = append(list, TreeListEntry{Name: t.Name, Format: t.Format, Enabled: t.Enabled, Position: t.Position,
			Current: t.Current, Initialized: t.Live.Initialized, Services: len(t.Services), Error: t.Error})
	}
	if c.JSON {
		if jerr := printJSON(e, map[string]any{"schema": migrate.StatusSchema, "trees": list}); jerr != nil {
			return jerr
		}
		return err
	}
	tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tFORMAT\tENABLED\tPOSITION\tCURRENT\tLIVE\tSERVICES")
	for _, t := range list {
		if t.Error != "" {
			fmt.Fprintf(tw, "%s\t?\t%s\t%s\t%s\t?\t?\n", t.Name, yes(t.Enabled), pos(t.Position), yes(t.Current))
			continue
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%d\n", t.Name, format.Name(t.Format), yes(t.Enabled), pos(t.Position), yes(t.Current), yes(t.Initialized), t.Services)
	}
	if ferr := tw.Flush(); ferr != nil {
		return ferr
	}
	return err
}
