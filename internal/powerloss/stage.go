package powerloss

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/treeshift/treeshift/internal/owner"
	"github.com/treeshift/treeshift/migrate"
)

// definitions are the services of a staged system: a few of each type,
// with dependencies, environment and a custom interpreter, so every part
// of every format is written.
var definitions = map[string]string{
	"mount-run": "[main]\n@type = oneshot\n@version = 1.0.0\n@description = \"mount /run\"\n@user = ( root )\n\n" +
		"[start]\n@execute = ( mount -t tmpfs tmpfs /run )\n\n[stop]\n@execute = ( umount /run )\n",
	"syslogd": "[main]\n@type = longrun\n@version = 2.1.0\n@description = \"system logger\"\n@user = ( root )\n@depends = ( mount-run )\n\n" +
		"[start]\n@build = custom\n@shebang = /bin/sh\n@execute = ( exec syslogd -n -O ${LOGFILE} )\n\n[environment]\nLOGFILE=/var/log/messages\n",
	"sshd": "[main]\n@type = longrun\n@version = 9.6.1\n@description = \"OpenSSH daemon\"\n@user = ( root )\n@depends = ( syslogd )\n\n" +
		"[start]\n@execute = ( /usr/sbin/sshd -D -e )\n",
	"ntpd": "[main]\n@type = classic\n@version = 0.4.2\n@description = \"network time daemon\"\n@user = ( root ntp )\n@depends = ( syslogd )\n\n" +
		"[start]\n@execute = ( ntpd -d -s )\n",
	"net": "[main]\n@type = bundle\n@version = 1.0.0\n@description = \"network services\"\n@contents = ( ntpd sshd )\n",
}

// home is the invoking user's home inside a staged root: a user's trees
// live under it.
const home = "/home/selftest"

// OwnerOf returns the invoking user as the owner of the system staged in
// root.
func OwnerOf(root string) (owner.Owner, error) {
	return owner.Current(root, func(k string) string {
		if k == "HOME" {
			return home
		}
		return ""
	})
}

// Stage makes a throwaway system in the empty directory root for the
// invoking user, the way an administrator would with the command line: a
// live tree in format 1 with services up, a live tree in format 2 with a
// service up, and a tree in format 1 that is not live. Everything it writes
// is synced, so it is the durable state a run starts from.
func Stage(root string) (owner.Owner, error) {
	o, err := OwnerOf(root)
	if err != nil {
		return o, err
	}
	dir := filepath.Join(root, "etc/treeshift/service")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return o, err
	}
	for name, def := range definitions {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(def), 0o644); err != nil {
			return o, err
		}
	}
	if o.UID != 0 {
		if err := os.MkdirAll(o.Host(o.SystemDir()), 0o755); err != nil {
			return o, err
		}
	}
	e, err := migrate.Open(o, migrate.Options{})
	if err != nil {
		return o, err
	}
	for _, step := range []func() error{
		func() error {
			return e.CreateTree("boot", migrate.CreateOptions{Format: 1, Enable: true, Current: true})
		},
		func() error { return e.EnableServices("boot", []string{"syslogd"}) },
		func() error { return e.Init("boot") },
		func() error { return e.Start("boot", []string{"syslogd"}) },
		func() error { return e.CreateTree("net", migrate.CreateOptions{Format: 2, Enable: true}) },
		func() error { return e.EnableServices("net", []string{"net"}) },
		func() error { return e.Init("net") },
		func() error { return e.Start("net", []string{"sshd"}) },
		func() error { return e.CreateTree("idle", migrate.CreateOptions{Format: 1}) },
		func() error { return e.EnableServices("idle", []string{"ntpd"}) },
	} {
		if err := step(); err != nil {
			return o, fmt.Errorf("stage a system in %s: %w", root, err)
		}
	}
	return o, nil
}
