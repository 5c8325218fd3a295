package migrate

import (
	"strconv"
	"strings"

	"github.com/treeshift/treeshift/internal/suggest"
)

// Recreate returns the commands that rebuild tree ts from scratch in format
// v, with its services, start position, current flag, allowed users and
// live state; order is the owner's start order of enabled trees, and cmd
// writes each command.
func Recreate(ts TreeStatus, order []string, v int, cmd suggest.Prefix) []string {
	T := ts.Name
	var cmds []string
	if up := upServices(ts); len(up) > 0 {
		cmds = append(cmds, cmd.Cmd(append([]string{"stop", "-t", T}, up...)...))
	}
	if ts.Live.Initialized {
		cmds = append(cmds, cmd.Cmd("uninit", T))
	}
	cmds = append(cmds, cmd.Cmd("tree", "destroy", T))
	create := Creation(ts, order, v, cmd)
	cmds = append(cmds, create[0])
	// A first tree is re-created last in the order; move the others back
	// behind it, one after another.
	if ts.Enabled && ts.Position == 1 {
		prev := T
		for _, n := range order[1:] {
			cmds = append(cmds, cmd.Cmd("tree", "order", n, "--after", prev))
			prev = n
		}
	}
	return append(cmds, create[1:]...)
}

// Creation returns the commands that create tree ts in format v as it is
// now, on a system where the trees before it in the start order (order)
// exist already: tree create with its flags, enable of its enabled
// services, init if it is live, start of its services that are up, and
// unmonitor of those whose supervision is paused; cmd writes each command.
func Creation(ts TreeStatus, order []string, v int, cmd suggest.Prefix) []string {
	T := ts.Name
	create := []string{"tree", "create", "--format", strconv.Itoa(v)}
	if ts.Enabled {
		if ts.Position > 1 {
			create = append(create, "-S", order[ts.Position-2])
		} else {
			create = append(create, "-E")
		}
	}
	if ts.Current {
		create = append(create, "-c")
	}
	if len(ts.Allow) > 0 {
		create = append(create, "-a", strings.Join(ts.Allow, ","))
	}
	cmds := []string{cmd.Cmd(append(create, T)...)}
	var enabled []string
	for _, s := range ts.Services {
		if s.Enabled {
			enabled = append(enabled, s.Name)
		}
	}
	if len(enabled) > 0 {
		cmds = append(cmds, cmd.Cmd(append([]string{"enable", "-t", T}, enabled...)...))
	}
	if ts.Live.Initialized {
		cmds = append(cmds, cmd.Cmd("init", T))
	}
	if up := upServices(ts); len(up) > 0 {
		cmds = append(cmds, cmd.Cmd(append([]string{"start", "-t", T}, up...)...))
	}
	var paused []string
	for _, s := range ts.Live.Services {
		if s.Unmonitored {
			paused = append(paused, s.Name)
		}
	}
	if len(paused) > 0 {
		cmds = append(cmds, cmd.Cmd(append([]string{"unmonitor", "-t", T}, paused...)...))
	}
	return cmds
}

func upServices(ts TreeStatus) []string {
	var up []string
	for _, s := range ts.Live.Services {
		if s.Up {
			up = append(up, s.Name)
		}
	}
	return up
}
