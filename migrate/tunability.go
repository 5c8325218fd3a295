package migrate

import (
	"fmt"
	"strings"

	"github.com/treeshift/treeshift/internal/suggest"
)

// Tunability says in which condition a tree may take a hop between formats.
// The levels are ordered from least to most demanding.
type Tunability int

const (
	// Anytime: the tree may be live with services up.
	Anytime Tunability = iota
	// WhenUnmonitored: none of the tree's supervised services (longruns,
	// classics) is up; oneshots may be.
	WhenUnmonitored
	// WhenOffline: none of the tree's services is up.
	WhenOffline
	// WhenDisabled: the tree is not in the start order.
	WhenDisabled
	// WhenUnmanaged: the tree is not live (not initialized).
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
// by cmd.
func (t Tunability) Check(c Condition, cmd suggest.Prefix) (ok bool, advice string) {
	T := c.Tree
	stop := func(names []string) string { return cmd.Cmd(append([]string{"stop", "-t", T}, names...)...) }
	switch t {
	case Anytime:
		return true, ""
	case WhenUnmonitored:
		if len(c.UpSupervised) == 0 {
			return true, ""
		}
		return false, fmt.Sprintf("stop the supervised services %s of tree %s: %s",
			join(c.UpSupervised), T, stop(c.UpSupervised))
	case WhenOffline:
		if len(c.Up) == 0 {
			return true, ""
		}
		return false, fmt.Sprintf("stop services %s of tree %s: %s", join(c.Up), T, stop(c.Up))
	case WhenDisabled:
		if !c.Enabled {
			return true, ""
		}
		return false, fmt.Sprintf("disable tree %s: %s", T, cmd.Cmd("tree", "disable", T))
	case WhenUnmanaged:
		if !c.Live {
			return true, ""
		}
		if len(c.Up) > 0 {
			return false, fmt.Sprintf("stop services %s of tree %s and make it not live: %s; %s",
				join(c.Up), T, stop(c.Up), cmd.Cmd("uninit", T))
		}
		return false, fmt.Sprintf("make tree %s not live: %s", T, cmd.Cmd("uninit", T))
	}
	return false, fmt.Sprintf("tree %s cannot be migrated: recreate it", T)
}

func join(s []string) string { return strings.Join(s, " ") }
