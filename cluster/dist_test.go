package cluster_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/treeshift/treeshift/internal/faulttest"
	"github.com/treeshift/treeshift/internal/frontend"
)

// The agent's service definition in dist/ parses as the 66 frontend syntax
// treeshift accepts, and what it runs — its [start] script under its
// shebang, with its [environment] pointed at a real etcd and a staged root
// — is an agent that comes up and stops cleanly on a supervisor's SIGTERM.
func TestDistAgentService(t *testing.T) {
	t.Parallel()
	p := filepath.Join("..", "dist", "s6", "treeshift-cluster-agent")
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	svc, err := frontend.Parse("treeshift-cluster-agent", p, b)
	if err != nil {
		t.Fatal(err)
	}
	if svc.Type != "longrun" || svc.Start.Build != "custom" {
		t.Fatalf("%s: type %s, build %s: want a longrun with a custom start", p, svc.Type, svc.Start.Build)
	}
	env := map[string]string{}
	for _, e := range svc.Env {
		env[e.Key] = e.Value
	}
	for _, k := range []string{"TREESHIFT_ROOT", "TREESHIFT_STORE", "TREESHIFT_MEMBER", "TREESHIFT_TTL"} {
		if env[k] == "" {
			t.Fatalf("%s: [environment] does not set %s", p, k)
		}
	}
	e := sharedEtcd(t)
	bin := faulttest.Binary(t)
	root := filepath.Join(t.TempDir(), "m1")
	stageMember(t, bin, root)
	store := e.store("dist")
	script := strings.Replace(svc.Start.Execute, "/usr/bin/treeshift", bin, 1)
	if script == svc.Start.Execute {
		t.Fatalf("%s: [start] does not run /usr/bin/treeshift:\n%s", p, svc.Start.Execute)
	}
	shebang := strings.Fields(svc.Start.Shebang)
	cmd := exec.Command(shebang[0], append(shebang[1:], "-c", script)...)
	cmd.Env = append(os.Environ(), "TREESHIFT_ROOT="+root, "TREESHIFT_STORE="+store, "TREESHIFT_MEMBER=m1", "TREESHIFT_TTL="+env["TREESHIFT_TTL"])
	out := &syncBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() { syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) })
	deadline := time.Now().Add(20 * time.Second)
	for !strings.Contains(out.String(), "agent up on") {
		if time.Now().After(deadline) {
			t.Fatalf("the service's agent is not up after 20 s:\n%s", out.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	// The shell execs the agent: the supervisor's signal reaches it.
	syscall.Kill(cmd.Process.Pid, syscall.SIGTERM)
	select {
	case err := <-exited:
		if err != nil {
			t.Fatalf("the service's agent on SIGTERM: %v\n%s", err, out.String())
		}
	case <-time.After(20 * time.Second):
		t.Fatalf("the service's agent did not stop on SIGTERM:\n%s", out.String())
	}
	if !strings.Contains(out.String(), "agent stopped") {
		t.Fatalf("the agent did not say it stopped:\n%s", out.String())
	}
}
