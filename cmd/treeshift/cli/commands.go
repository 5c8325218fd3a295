package cli

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/treeshift/treeshift/system"
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
	unlock, err := e.lock()
	if err != nil {
		return err
	}
	defer unlock()
	return e.sys.CreateTree(c.Name, system.CreateOptions{Format: c.Format, Current: c.Current, Enable: c.Enable, Allow: c.Allow, After: c.After})
}

// TreeDestroyCmd is `tree destroy`.
type TreeDestroyCmd struct {
	Name string `arg:"" help:"Name of the tree."`
}

func (c *TreeDestroyCmd) Run(e *env) error {
	unlock, err := e.lock()
	if err != nil {
		return err
	}
	defer unlock()
	return e.sys.DestroyTree(c.Name)
}

// TreeEnableCmd is `tree enable`.
type TreeEnableCmd struct {
	Name string `arg:"" help:"Name of the tree."`
}

func (c *TreeEnableCmd) Run(e *env) error { return e.setTree(c.Name, system.EnableTree(c.Name)) }

// TreeDisableCmd is `tree disable`.
type TreeDisableCmd struct {
	Name string `arg:"" help:"Name of the tree."`
}

func (c *TreeDisableCmd) Run(e *env) error { return e.setTree(c.Name, system.DisableTree(c.Name)) }

// TreeCurrentCmd is `tree current`.
type TreeCurrentCmd struct {
	Name string `arg:"" help:"Name of the tree."`
}

func (c *TreeCurrentCmd) Run(e *env) error { return e.setTree(c.Name, system.CurrentTree(c.Name)) }

// TreeOrderCmd is `tree order`.
type TreeOrderCmd struct {
	After string `required:"" help:"The tree to start right before this one." placeholder:"AFTER"`
	Name  string `arg:"" help:"Name of the tree."`
}

func (c *TreeOrderCmd) Run(e *env) error { return e.setTree(c.Name, system.OrderTree(c.Name, c.After)) }

func (e *env) setTree(name string, change func(*tree.State) error) error {
	unlock, err := e.lock()
	if err != nil {
		return err
	}
	defer unlock()
	return e.sys.SetTree(name, change)
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
}

func (c *TreeListCmd) Run(e *env) error {
	st, err := e.sys.Status(nil)
	if err != nil {
		return err
	}
	list := []TreeListEntry{}
	for _, t := range st.Trees {
		list = append(list, TreeListEntry{Name: t.Name, Format: t.Format, Enabled: t.Enabled, Position: t.Position,
			Current: t.Current, Initialized: t.Live.Initialized, Services: len(t.Services)})
	}
	if c.JSON {
		return printJSON(e, map[string]any{"schema": system.StatusSchema, "trees": list})
	}
	tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tFORMAT\tENABLED\tPOSITION\tCURRENT\tLIVE\tSERVICES")
	for _, t := range list {
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\t%s\t%d\n", t.Name, t.Format, yes(t.Enabled), pos(t.Position), yes(t.Current), yes(t.Initialized), t.Services)
	}
	return tw.Flush()
}

// EnableCmd is `enable`.
type EnableCmd struct {
	Tree     string   `short:"t" required:"" help:"The tree." placeholder:"TREE"`
	Services []string `arg:"" help:"Services to enable, with their dependencies."`
}

func (c *EnableCmd) Run(e *env) error {
	unlock, err := e.lock()
	if err != nil {
		return err
	}
	defer unlock()
	return e.sys.EnableServices(c.Tree, c.Services)
}

// DisableCmd is `disable`.
type DisableCmd struct {
	Tree     string   `short:"t" required:"" help:"The tree." placeholder:"TREE"`
	Services []string `arg:"" help:"Services to disable."`
}

func (c *DisableCmd) Run(e *env) error {
	unlock, err := e.lock()
	if err != nil {
		return err
	}
	defer unlock()
	return e.sys.DisableServices(c.Tree, c.Services)
}

// InitCmd is `init`.
type InitCmd struct {
	Name string `arg:"" help:"The tree to make live."`
}

func (c *InitCmd) Run(e *env) error {
	unlock, err := e.lock()
	if err != nil {
		return err
	}
	defer unlock()
	return e.sys.Init(c.Name)
}

// StartCmd is `start`.
type StartCmd struct {
	Tree     string   `short:"t" required:"" help:"The tree." placeholder:"TREE"`
	Services []string `arg:"" help:"Services to bring up."`
}

func (c *StartCmd) Run(e *env) error {
	unlock, err := e.lock()
	if err != nil {
		return err
	}
	defer unlock()
	return e.sys.Start(c.Tree, c.Services)
}

// StopCmd is `stop`.
type StopCmd struct {
	Tree     string   `short:"t" required:"" help:"The tree." placeholder:"TREE"`
	Services []string `arg:"" help:"Services to bring down."`
}

func (c *StopCmd) Run(e *env) error {
	unlock, err := e.lock()
	if err != nil {
		return err
	}
	defer unlock()
	return e.sys.Stop(c.Tree, c.Services)
}

// StatusCmd is `status`.
type StatusCmd struct {
	JSON  bool     `name:"json" help:"Print a JSON document (docs/JSON.md)."`
	Trees []string `arg:"" optional:"" help:"Trees to show (default: all, in start order)."`
}

func (c *StatusCmd) Run(e *env) error {
	st, err := e.sys.Status(c.Trees)
	if err != nil {
		return err
	}
	if c.JSON {
		return printJSON(e, st)
	}
	w := e.stdout
	fmt.Fprintf(w, "owner: %s (uid %d)\nsystem: %s (format stamp %d)\n", st.Owner.Name, st.Owner.UID, st.SystemDir, st.Stamp)
	for _, t := range st.Trees {
		fmt.Fprintf(w, "\ntree: %s\n", t.Name)
		fmt.Fprintf(w, "  format: %d\n  enabled: %s\n  current: %s\n  allowed users: %s\n", t.Format, enabledText(t), yes(t.Current), strings.Join(t.Allow, " "))
		if t.Live.Initialized {
			fmt.Fprintf(w, "  live: initialized, database %s\n", t.Live.Compiled)
		} else {
			fmt.Fprintf(w, "  live: not initialized\n")
		}
		live := map[string]system.LiveServiceStatus{}
		for _, s := range t.Live.Services {
			live[s.Name] = s
		}
		if len(t.Services) == 0 {
			fmt.Fprintf(w, "  services: none\n")
			continue
		}
		// Processes have pids and uptimes only under a real supervisor.
		procs := st.Supervisor != "files"
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		if procs {
			fmt.Fprintf(tw, "  SERVICE\tTYPE\tENABLED\tSTATE\tPID\tUPTIME\tDEPENDS\n")
		} else {
			fmt.Fprintf(tw, "  SERVICE\tTYPE\tENABLED\tSTATE\tDEPENDS\n")
		}
		for _, s := range t.Services {
			state, pid, uptime := "-", "-", "-"
			if l, ok := live[s.Name]; ok && t.Live.Initialized && s.Enabled {
				state = l.State
				if l.Pid > 0 {
					pid = strconv.Itoa(l.Pid)
					uptime = (time.Duration(l.Uptime) * time.Second).String()
				}
			}
			deps := dash(strings.Join(append(append([]string{}, s.Depends...), s.Contents...), " "))
			if procs {
				fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\t%s\t%s\n", s.Name, s.Type, yes(s.Enabled), state, pid, uptime, deps)
			} else {
				fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\n", s.Name, s.Type, yes(s.Enabled), state, deps)
			}
		}
		tw.Flush()
	}
	return nil
}

func enabledText(t system.TreeStatus) string {
	if t.Enabled {
		return "yes (start position " + strconv.Itoa(t.Position) + ")"
	}
	return "no"
}

func printJSON(e *env, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(e.stdout, "%s\n", b)
	return err
}

func yes(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

func pos(n int) string {
	if n == 0 {
		return "-"
	}
	return strconv.Itoa(n)
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
