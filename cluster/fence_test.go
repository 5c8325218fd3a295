package cluster

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/treeshift/treeshift/internal/faulttest"
)

// A member's engine behind a fence that is down writes nothing: an update
// fails at its first write, saying why, and the member's disk is as it
// was. Renewed, the same engine moves the trees.
func TestFenceStopsTheEngine(t *testing.T) {
	t.Parallel()
	bin := faulttest.Binary(t)
	root := t.TempDir()
	defs := filepath.Join(root, "etc/treeshift/service")
	os.MkdirAll(defs, 0o755)
	os.WriteFile(filepath.Join(defs, "a"), []byte("[main]\n@type = longrun\n@version = 1.0.0\n@description = \"a\"\n@user = ( root )\n\n[start]\n@execute = ( run a )\n"), 0o644)
	for _, args := range [][]string{{"tree", "create", "--format", "1", "-E", "boot"}, {"enable", "-t", "boot", "a"}, {"init", "boot"}} {
		if out, code := faulttest.Run(t, bin, nil, append([]string{"--root", root}, args...)...); code != 0 {
			t.Fatalf("%v: exit %d\n%s", args, code, out)
		}
	}
	before, _ := faulttest.Run(t, bin, nil, "--root", root, "status", "--json")
	now := time.Now()
	f := newFence()
	f.now = func() time.Time { return now }
	f.renewed(now.Add(-2*time.Second), 2*time.Second)
	s := &site{member: "m1", root: root, wrap: f.wrap}
	_, err := s.execute(&Task{Action: ActUpdate, Version: 3}, false)
	if err == nil {
		t.Fatalf("update behind a fence that is down: no error")
	}
	if f.refused.Load() == 0 {
		t.Fatalf("the fence refused nothing")
	}
	after, _ := faulttest.Run(t, bin, nil, "--root", root, "status", "--json")
	if after != before {
		t.Fatalf("the member changed behind its fence:\n%s\nwas:\n%s", after, before)
	}
	f.renewed(now, 2*time.Second)
	if _, err := s.execute(&Task{Action: ActUpdate, Version: 3}, false); err != nil {
		t.Fatalf("update with the lease renewed: %v", err)
	}
	out, _ := faulttest.Run(t, bin, nil, "--root", root, "tree", "list")
	if !strings.Contains(out, fmt.Sprintf("boot  %d ", 3)) {
		t.Fatalf("after the update:\n%s", out)
	}
}
