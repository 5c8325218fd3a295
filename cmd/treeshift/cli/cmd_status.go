package cli

import (
	"fmt"
	"github.com/treeshift/treeshift/format"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/treeshift/treeshift/migrate"
)

// StatusCmd is `status`.
type StatusCmd struct {
	JSON  bool     `name:"json" help:"Print a JSON document (docs/JSON.md)."`
	Trees []string `arg:"" optional:"" help:"Trees to show (default: all, in start order)."`
}

func (c *StatusCmd) Run(e *env) error {
	eng, err := e.reading()
	if err != nil {
		return err
	}
	st, err := eng.Status(c.Trees)
	if st == nil {
		return err
	}
	defer reportUnreadable(e, st.Trees)
	if c.JSON {
		if jerr := printJSON(e, st); jerr != nil {
			return jerr
		}
		return err
	}
	w := e.stdout
	fmt.Fprintf(w, "owner: %s (uid %d)\nsystem: %s (format stamp %d)\n", st.Owner.Name, st.Owner.UID, st.SystemDir, st.Stamp)
	for _, t := range st.Trees {
		fmt.Fprintf(w, "\ntree: %s\n", t.Name)
		if t.Error != "" {
			fmt.Fprintf(w, "  error: %s\n", t.Error)
			continue
		}
		fmt.Fprintf(w, "  format: %s\n  enabled: %s\n  current: %s\n  allowed users: %s\n", format.Name(t.Format), enabledText(t), yes(t.Current), strings.Join(t.Allow, " "))
		if t.Live.Initialized {
			fmt.Fprintf(w, "  live: initialized, database %s\n", t.Live.Compiled)
		} else {
			fmt.Fprintf(w, "  live: not initialized\n")
		}
		live := map[string]migrate.LiveServiceStatus{}
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
				if l.Unmonitored {
					state += " (unmonitored)"
				}
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
	return err
}

// reportUnreadable says on stderr, as an error, why each tree that could
// not be read could not; the document shows it too.
func reportUnreadable(e *env, trees []migrate.TreeStatus) {
	for _, t := range trees {
		if t.Error != "" {
			e.log.fatal(fmt.Errorf("%s", t.Error))
		}
	}
}

func enabledText(t migrate.TreeStatus) string {
	if t.Enabled {
		return "yes (start position " + strconv.Itoa(t.Position) + ")"
	}
	return "no"
}
