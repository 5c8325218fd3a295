package migrate

import (
	"fmt"
	"strings"

	"github.com/treeshift/treeshift/internal/suggest"
)

// Tunability says in which condition a tree may take a hop between formats,
// as Sun Cluster's upgrade_from directives do for a resource type. The
// levels are ordered from least to most demanding, and each asks for what
// every level below it asks, and more.
type Tunability int

const (
	// Anytime: the tree may be live with services up and supervised.
	Anytime Tunability = iota
	// WhenUnmonitored: supervision of the tree's services is paused: no
	// longrun or classic that is up would be restarted by its supervisor
	// if it stopped. The services keep running.
	WhenUnmonitored
	// WhenOffline: none of the tree's services is up.
	WhenOffline
	// WhenDisabled: offline, and the tree is not in the start order.
	WhenDisabled
	// WhenUnmanaged: disabled, and the tree is not live (not initialized).
	WhenUnmanaged
	// AtCreation: the hop cannot be made; the tree must be recreated.
	AtCreation
)

var tunabilityNames = []string{"ANYTIME", "WHEN_UNMONITORED", "WHEN_OFFLINE", "WHEN_DISABLED", "WHEN_UNMANAGED", "AT_CREATION"}

func (t Tunability) String() string {
	if t < 0 || int(t) >= len(tunabilityNames) {
		return fmt.Sprintf("Tunability(%d)", int(t))
	}
	return tunabilityNames[t]
}

// ParseTunability reads a tunability name as written in directives.
func ParseTunability(s string) (Tunability, error) {
	for i, n := range tunabilityNames {
		if n == s {
			return Tunability(i), nil
		}
	}
	return 0, fmt.Errorf("unknown tunability %q (expected one of %s)", s, strings.Join(tunabilityNames, ", "))
}

// MarshalText makes JSON documents carry the name.
func (t Tunability) MarshalText() ([]byte, error) { return []byte(t.String()), nil }

// Check reports whether a tree in condition c may take a hop of tunability
// t now, and if not, exactly what to do first: the commands to run, written
// by cmd, in the order to run them.
func (t Tunability) Check(c Condition, cmd suggest.Prefix) (ok bool, advice string) {
	T := c.Tree
	var todo, what []string
	need := func(cond bool, doing string, command ...string) {
		if !cond {
			what = append(what, doing)
			todo = append(todo, cmd.Cmd(command...))
		}
	}
	switch t {
	case Anytime:
		return true, ""
	case AtCreation:
		return false, fmt.Sprintf("tree %s cannot be migrated: recreate it", T)
	case WhenUnmonitored:
		need(len(c.Monitored) == 0, fmt.Sprintf("pause supervision of services %s of tree %s (they keep running)", join(c.Monitored), T),
			append([]string{"unmonitor", "-t", T}, c.Monitored...)...)
	default:
		need(len(c.Up) == 0, fmt.Sprintf("stop services %s of tree %s", join(c.Up), T), append([]string{"stop", "-t", T}, c.Up...)...)
		if t >= WhenUnmanaged {
			need(!c.Live, fmt.Sprintf("make tree %s not live", T), "uninit", T)
		}
		if t >= WhenDisabled {
			need(!c.Enabled, fmt.Sprintf("disable tree %s", T), "tree", "disable", T)
		}
	}
	if len(todo) == 0 {
		return true, ""
	}
	return false, strings.Join(what, ", ") + ": " + strings.Join(todo, "; ")
}

func join(s []string) string { return strings.Join(s, " ") }
