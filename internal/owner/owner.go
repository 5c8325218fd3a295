// Package owner decides whose trees a command works on and where they live.
// Every path is computed inside the root given by --root and then prefixed
// with it, so a whole system can be staged in a directory.
package owner

import (
	"fmt"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
)

// Owner is the user whose trees a command sees: root's system trees for uid
// 0, the user's own trees otherwise.
type Owner struct {
	UID  int
	Name string
	// Root is the absolute directory every path is prefixed with.
	Root string
	// Home, DataHome and ConfigHome are inside the root.
	Home, DataHome, ConfigHome string
}

// Current returns the invoking user as owner of root, reading HOME and the
// XDG variables through getenv.
func Current(root string, getenv func(string) string) (Owner, error) {
	return ForUID(os.Getuid(), root, getenv)
}

// ForUID returns user uid as owner of root.
func ForUID(uid int, root string, getenv func(string) string) (Owner, error) {
	if root == "" {
		root = "/"
	}
	if !filepath.IsAbs(root) {
		abs, err := filepath.Abs(root)
		if err != nil {
			return Owner{}, err
		}
		root = abs
	}
	o := Owner{UID: uid, Root: filepath.Clean(root)}
	o.Name = strconv.Itoa(o.UID)
	if u, err := user.LookupId(o.Name); err == nil {
		o.Name = u.Username
	}
	if o.UID == 0 {
		o.Name = "root"
		return o, nil
	}
	o.Home = getenv("HOME")
	if o.Home == "" || !filepath.IsAbs(o.Home) {
		return Owner{}, fmt.Errorf("HOME is unset or not absolute: a user's trees live under it")
	}
	o.DataHome = xdg(getenv("XDG_DATA_HOME"), filepath.Join(o.Home, ".local/share"))
	o.ConfigHome = xdg(getenv("XDG_CONFIG_HOME"), filepath.Join(o.Home, ".config"))
	return o, nil
}

// xdg follows the XDG base directory rule: a relative value is ignored.
func xdg(v, def string) string {
	if v != "" && filepath.IsAbs(v) {
		return v
	}
	return def
}

// Host turns a path inside the root into the path the process opens.
func (o Owner) Host(p string) string { return filepath.Join(o.Root, p) }

// Inside turns a host path below the root back into the path inside it, as
// shown to users and recorded in files.
func (o Owner) Inside(host string) string {
	if o.Root == "/" {
		return host
	}
	if rel, err := filepath.Rel(o.Root, host); err == nil && !strings.HasPrefix(rel, "..") {
		return "/" + filepath.ToSlash(rel)
	}
	return host
}

// SystemDir is the system directory inside the root.
func (o Owner) SystemDir() string {
	if o.UID == 0 {
		return "/var/lib/treeshift"
	}
	return filepath.Join(o.DataHome, "treeshift")
}

// ServiceDirs lists, inside the root, where service definitions are looked
// up, first match wins.
func (o Owner) ServiceDirs() []string {
	sys := []string{"/etc/treeshift/service", "/usr/share/treeshift/service"}
	if o.UID == 0 {
		return sys
	}
	return append([]string{filepath.Join(o.ConfigHome, "treeshift/service")}, sys...)
}

// DefaultLive is the live directory inside the root unless -l says otherwise.
const DefaultLive = "/run/treeshift"
