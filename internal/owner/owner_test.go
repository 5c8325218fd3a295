package owner

import (
	"reflect"
	"testing"
)

func env(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

func TestRootPaths(t *testing.T) {
	o, err := ForUID(0, "/stage", env(nil))
	if err != nil {
		t.Fatal(err)
	}
	if o.Name != "root" || o.SystemDir() != "/var/lib/treeshift" || o.Host(o.SystemDir()) != "/stage/var/lib/treeshift" {
		t.Errorf("root owner %+v: system dir %s", o, o.SystemDir())
	}
	if got := o.ServiceDirs(); !reflect.DeepEqual(got, []string{"/etc/treeshift/service", "/usr/share/treeshift/service"}) {
		t.Errorf("service dirs %v", got)
	}
	if got := o.Inside("/stage/var/lib/x"); got != "/var/lib/x" {
		t.Errorf("Inside = %s", got)
	}
	if got := o.Inside("/elsewhere"); got != "/elsewhere" {
		t.Errorf("Inside(outside the root) = %s", got)
	}
}

func TestUserPaths(t *testing.T) {
	o, err := ForUID(1000, "/", env(map[string]string{"HOME": "/home/al"}))
	if err != nil {
		t.Fatal(err)
	}
	if o.SystemDir() != "/home/al/.local/share/treeshift" {
		t.Errorf("system dir %s", o.SystemDir())
	}
	if got := o.ServiceDirs()[0]; got != "/home/al/.config/treeshift/service" {
		t.Errorf("first service dir %s", got)
	}
	o, _ = ForUID(1000, "/", env(map[string]string{"HOME": "/home/al", "XDG_DATA_HOME": "/data", "XDG_CONFIG_HOME": "relative/ignored"}))
	if o.SystemDir() != "/data/treeshift" || o.ServiceDirs()[0] != "/home/al/.config/treeshift/service" {
		t.Errorf("XDG: %s %s", o.SystemDir(), o.ServiceDirs()[0])
	}
	if _, err := ForUID(1000, "/", env(nil)); err == nil {
		t.Error("a user without HOME was accepted")
	}
}
