package cluster_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/treeshift/treeshift/internal/faulttest"
	"github.com/treeshift/treeshift/internal/scratch"
)

// The etcd tests run real etcd servers — Debian's etcd-server, which
// .ci/run installs — as separate processes on 127.0.0.1, and every member
// as a separate treeshift agent process with its own root. Everything they
// start is stopped when the test ends, pass or fail: each process runs in
// its own process group, killed by t.Cleanup.

// etcdBin is the etcd server, or "" with the reason the tests skip.
func etcdBin(t testing.TB) string {
	t.Helper()
	p, err := exec.LookPath("etcd")
	if err != nil {
		// .ci/run installs it and fails on this skip (FAIL_SKIPS).
		t.Skip("etcd server not found: install Debian's etcd-server to run the tests against real etcd")
	}
	return p
}

// freePorts returns n ports free on 127.0.0.1 now.
func freePorts(t testing.TB, n int) []int {
	t.Helper()
	var ls []net.Listener
	var ports []int
	for i := 0; i < n; i++ {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	for _, l := range ls {
		l.Close()
	}
	return ports
}

// etcdCluster is a cluster of etcd server processes.
type etcdCluster struct {
	t     testing.TB
	names []string
	cmds  []*exec.Cmd
	args  [][]string
	eps   []string
	logs  []*syncBuffer
	done  []chan struct{}
}

// etcdDir is where etcd keeps its data: tmpfs when there is one, as etcd
// syncs every write and the disk is shared with everything else the tests
// run; durability across a host's crash is not what these tests test.
func etcdDir(t testing.TB) string {
	if fi, err := os.Stat("/dev/shm"); err == nil && fi.IsDir() {
		d, err := scratch.DirIn("/dev/shm", "treeshift-etcd")
		if err == nil {
			t.Cleanup(func() { os.RemoveAll(d) })
			return d
		}
	}
	return t.TempDir()
}

// startEtcd starts an n-node etcd cluster and waits until it answers.
// cleanup registers what stops it: t.Cleanup, or for the shared cluster
// TestMain's.
func startEtcd(t testing.TB, n int, cleanup func(func())) *etcdCluster {
	t.Helper()
	return startEtcdOn(t, n, cleanup, "")
}

// startEtcdOn is startEtcd with each node also serving clients on the
// address ip (a bridge to network namespaces), at the same port.
func startEtcdOn(t testing.TB, n int, cleanup func(func()), ip string) *etcdCluster {
	t.Helper()
	bin := etcdBin(t)
	ports := freePorts(t, 2*n)
	c := &etcdCluster{t: t}
	var initial []string
	for i := 0; i < n; i++ {
		c.names = append(c.names, fmt.Sprintf("e%d", i+1))
		initial = append(initial, fmt.Sprintf("e%d=http://127.0.0.1:%d", i+1, ports[2*i+1]))
		c.eps = append(c.eps, fmt.Sprintf("127.0.0.1:%d", ports[2*i]))
	}
	data := etcdDir(t)
	for i := 0; i < n; i++ {
		client, peer := fmt.Sprintf("http://127.0.0.1:%d", ports[2*i]), fmt.Sprintf("http://127.0.0.1:%d", ports[2*i+1])
		if ip != "" {
			client += fmt.Sprintf(",http://%s:%d", ip, ports[2*i])
		}
		c.args = append(c.args, []string{bin, "--name", c.names[i], "--data-dir", filepath.Join(data, c.names[i]),
			"--listen-client-urls", client, "--advertise-client-urls", client,
			"--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
			"--initial-cluster", strings.Join(initial, ","), "--initial-cluster-state", "new",
			"--initial-cluster-token", "treeshift-test",
			// A node killed by a test is replaced as leader in well under
			// a second.
			"--heartbeat-interval", "50", "--election-timeout", "500",
			"--log-level", "warn"})
		c.logs = append(c.logs, &syncBuffer{})
		c.cmds = append(c.cmds, nil)
		c.done = append(c.done, nil)
		c.start(i)
	}
	cleanup(func() {
		for i := range c.cmds {
			c.kill(i)
		}
	})
	t.Cleanup(func() {
		if t.Failed() {
			for i, l := range c.logs {
				t.Logf("etcd %s:\n%s", c.names[i], tail(l.String(), 1500))
			}
		}
	})
	cli := c.client()
	defer cli.Close()
	deadline := time.Now().Add(20 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_, err := cli.Put(ctx, "/ready", "yes")
		cancel()
		if err == nil {
			return c
		}
		if time.Now().After(deadline) {
			t.Fatalf("etcd did not answer in 20 s: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (c *etcdCluster) start(i int) {
	cmd := exec.Command(c.args[i][0], c.args[i][1:]...)
	cmd.Stdout, cmd.Stderr = c.logs[i], c.logs[i]
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		c.t.Fatal(err)
	}
	c.cmds[i] = cmd
	// Wait reaps the process; kill waits for that.
	done := make(chan struct{})
	c.done[i] = done
	go func() { cmd.Wait(); close(done) }()
}

// kill stops node i with SIGKILL, as a crash would.
func (c *etcdCluster) kill(i int) {
	if cmd := c.cmds[i]; cmd != nil && cmd.Process != nil {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-c.done[i]
		c.cmds[i] = nil
	}
}

func (c *etcdCluster) client() *clientv3.Client {
	var eps []string
	for _, e := range c.eps {
		eps = append(eps, "http://"+e)
	}
	cli, err := clientv3.New(clientv3.Config{Endpoints: eps, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		c.t.Fatal(err)
	}
	return cli
}

// store is the --store of a cluster under prefix.
func (c *etcdCluster) store(prefix string) string {
	return "etcd://" + strings.Join(c.eps, ",") + "/" + prefix
}

var (
	sharedOnce sync.Once
	shared     *etcdCluster
	sharedStop func()
)

// sharedEtcd is one 3-node etcd for the tests that do not kill a node:
// each works under a prefix of its own. It is stopped by TestMain.
func sharedEtcd(t testing.TB) *etcdCluster {
	t.Helper()
	etcdBin(t)
	sharedOnce.Do(func() {
		// The cluster outlives the test that starts it: its cleanups
		// run in TestMain, after every test.
		var fns []func()
		sharedStop = func() {
			for i := len(fns) - 1; i >= 0; i-- {
				fns[i]()
			}
		}
		shared = startEtcd(t, 3, func(f func()) { fns = append(fns, f) })
	})
	if shared == nil {
		t.Fatal("the shared etcd did not start")
	}
	return shared
}

func tail(s string, n int) string {
	if len(s) > n {
		return "…" + s[len(s)-n:]
	}
	return s
}

// agent is a member's agent process.
type agent struct {
	t      testing.TB
	cmd    *exec.Cmd
	out    *syncBuffer
	member string
	exited chan struct{}
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// startAgent starts member's agent on root with a 2 s lease (startAgentTTL:
// another) and waits until it is up.
func startAgent(t testing.TB, bin, store, member, root string, env ...string) *agent {
	t.Helper()
	return startAgentTTL(t, "2s", bin, store, member, root, env...)
}

func startAgentTTL(t testing.TB, ttl, bin, store, member, root string, env ...string) *agent {
	t.Helper()
	return startAgentWith(t, []string{"--ttl", ttl}, bin, store, member, root, env...)
}

// startAgentWith starts an agent with further agent options.
func startAgentWith(t testing.TB, opts []string, bin, store, member, root string, env ...string) *agent {
	t.Helper()
	return startAgentIn(t, nil, opts, bin, store, member, root, env...)
}

// startAgentIn starts an agent through the command wrap (ip netns exec
// NS, say), which execs it.
func startAgentIn(t testing.TB, wrap, opts []string, bin, store, member, root string, env ...string) *agent {
	t.Helper()
	args := append(append(slices.Clone(wrap), bin), append([]string{"--root", root, "cluster", "--store", store, "agent", "--member", member}, opts...)...)
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Env = append(os.Environ(), env...)
	a := &agent{t: t, cmd: cmd, out: &syncBuffer{}, member: member, exited: make(chan struct{})}
	pr, pw := io.Pipe()
	cmd.Stdout, cmd.Stderr = pw, pw
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	up := make(chan struct{})
	go func() {
		s := bufio.NewScanner(pr)
		once := sync.Once{}
		for s.Scan() {
			fmt.Fprintln(a.out, s.Text())
			if strings.Contains(s.Text(), "agent up on") {
				once.Do(func() { close(up) })
			}
		}
	}()
	go func() { cmd.Wait(); pw.Close(); close(a.exited) }()
	t.Cleanup(func() {
		a.kill()
		if t.Failed() {
			t.Logf("agent %s:\n%s", member, tail(a.out.String(), 3000))
		}
	})
	select {
	case <-up:
	case <-a.exited:
		t.Fatalf("agent %s exited:\n%s", member, a.out.String())
	case <-time.After(20 * time.Second):
		t.Fatalf("agent %s not up in 20 s:\n%s", member, a.out.String())
	}
	return a
}

// kill stops the agent with SIGKILL: its lease is left to expire.
func (a *agent) kill() {
	syscall.Kill(-a.cmd.Process.Pid, syscall.SIGKILL)
	<-a.exited
}

// stop stops the agent with SIGTERM, as a supervisor does, and checks it
// exits 0.
func (a *agent) stop() {
	a.t.Helper()
	syscall.Kill(a.cmd.Process.Pid, syscall.SIGTERM)
	select {
	case <-a.exited:
	case <-time.After(30 * time.Second):
		a.t.Fatalf("agent %s did not stop on SIGTERM", a.member)
	}
	if code := a.cmd.ProcessState.ExitCode(); code != 0 {
		a.t.Fatalf("agent %s exited %d on SIGTERM:\n%s", a.member, code, a.out.String())
	}
}

// stageMember makes a member's root: tree boot, live, a service up; tree
// extra, not live; both in format 1.
func stageMember(t testing.TB, bin, root string) {
	t.Helper()
	defs := filepath.Join(root, "etc/treeshift/service")
	os.MkdirAll(defs, 0o755)
	for _, s := range []string{"a", "b", "c"} {
		os.WriteFile(filepath.Join(defs, s), []byte(fmt.Sprintf("[main]\n@type = longrun\n@version = 1.0.0\n@description = %q\n@user = ( root )\n\n[start]\n@execute = ( run %s )\n", s, s)), 0o644)
	}
	for _, args := range [][]string{
		{"tree", "create", "--format", "1", "-E", "boot"},
		{"enable", "-t", "boot", "a", "b"},
		{"init", "boot"},
		{"start", "-t", "boot", "a"},
		{"tree", "create", "--format", "1", "-E", "extra"},
		{"enable", "-t", "extra", "c"},
	} {
		if out, code := run(t, bin, nil, append([]string{"--root", root}, args...)...); code != 0 {
			t.Fatalf("%v: exit %d\n%s", args, code, out)
		}
	}
}

// etcdFixture is a cluster of members with agents over an etcd store.
type etcdFixture struct {
	t      testing.TB
	bin    string
	store  string
	dir    string
	agents map[string]*agent
}

func newFixture(t testing.TB, e *etcdCluster, members ...string) *etcdFixture {
	t.Helper()
	f := &etcdFixture{t: t, bin: faulttest.Binary(t), store: e.store(strings.ReplaceAll(t.Name(), "/", "-")), dir: t.TempDir(), agents: map[string]*agent{}}
	for _, m := range members {
		stageMember(t, f.bin, f.root(m))
		f.agents[m] = startAgent(t, f.bin, f.store, m, f.root(m))
	}
	return f
}

func (f *etcdFixture) root(m string) string { return filepath.Join(f.dir, m) }

// c runs a cluster command and returns its output and exit code.
func (f *etcdFixture) c(args ...string) (string, int) {
	f.t.Helper()
	return run(f.t, f.bin, nil, append([]string{"--wait", "10s", "cluster", "--store", f.store}, args...)...)
}

// must runs a cluster command that must exit 0.
func (f *etcdFixture) must(args ...string) string {
	f.t.Helper()
	out, code := f.c(args...)
	if code != 0 {
		f.t.Fatalf("cluster %v: exit %d\n%s", args, code, out)
	}
	return out
}

// refused runs a cluster command that must exit 111 saying want.
func (f *etcdFixture) refused(want string, args ...string) string {
	f.t.Helper()
	out, code := f.c(args...)
	if code != 111 || !strings.Contains(out, want) {
		f.t.Fatalf("cluster %v: exit %d, want 111 saying %q:\n%s", args, code, want, out)
	}
	return out
}

// status is the cluster's status document.
func (f *etcdFixture) status() *statusDoc {
	f.t.Helper()
	var st statusDoc
	if err := json.Unmarshal([]byte(f.must("status", "--json")), &st); err != nil {
		f.t.Fatal(err)
	}
	return &st
}

type statusDoc struct {
	Stage   string
	Active  int
	Members []struct {
		ID      string
		Up      bool
		Down    string
		Rolled  bool
		Rolling bool
		Report  *struct {
			Host    string
			Version string
			Stamp   int
			Trees   []struct {
				Name   string
				Format int
			}
		}
		Task *struct {
			Seq    int
			Action string
			State  string
		}
	}
	Interrupted []string
	History     []struct {
		Stage, Member, Outcome, Host, By string
		Seconds                          float64
	}
}

func (s *statusDoc) member(id string) int {
	for i, m := range s.Members {
		if m.ID == id {
			return i
		}
	}
	return -1
}

// throughPostinstall brings the cluster of f (lead m1) through postinstall.
func (f *etcdFixture) throughPostinstall(members ...string) {
	f.t.Helper()
	init := []string{"init", "--quorum-vote"}
	for _, m := range members {
		init = append(init, "--member", m)
	}
	f.must(init...)
	for _, s := range [][]string{{"setup", "m1"}, {"preinstall"}, {"install"}, {"postinstall"}} {
		f.must(s...)
	}
}
