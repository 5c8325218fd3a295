package cluster_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/treeshift/treeshift/cluster"
	"github.com/treeshift/treeshift/internal/faulttest"
)

// netnet is a bridge on this host and, per member, a network namespace
// linked to it by a veth pair: a member's agent runs in its namespace, and
// a partition is its link going down.
type netnet struct {
	t      *testing.T
	bridge string
	ip     string // the bridge's address: etcd serves clients there
	ns     map[string]string
	veth   map[string]string // host side of each member's link
}

// newNetnet makes the bridge and a namespace per member, or skips the
// test saying why: it needs root and iproute2 (CI has both). Everything is
// deleted when the test ends, pass or fail.
func newNetnet(t *testing.T, members ...string) *netnet {
	t.Helper()
	if os.Getuid() != 0 {
		// .ci/run runs as root and fails on this skip (FAIL_SKIPS).
		t.Skip("partition tests need root for network namespaces (ip netns)")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("partition tests need root and iproute2's ip: apt-get install iproute2")
	}
	// Names and addresses of this process's own, so that two test runs on
	// one host do not meet.
	id := os.Getpid() % 100000
	n := &netnet{t: t, bridge: fmt.Sprintf("tsb%d", id), ip: fmt.Sprintf("10.231.%d.1", id%250), ns: map[string]string{}, veth: map[string]string{}}
	ip := func(args ...string) {
		t.Helper()
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			t.Fatalf("ip %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	t.Cleanup(func() {
		for _, ns := range n.ns {
			exec.Command("ip", "netns", "del", ns).Run()
		}
		for _, v := range n.veth {
			exec.Command("ip", "link", "del", v).Run()
		}
		exec.Command("ip", "link", "del", n.bridge).Run()
	})
	if out, err := exec.Command("ip", "link", "add", n.bridge, "type", "bridge").CombinedOutput(); err != nil {
		// Root, but in a container or kernel that refuses new network
		// devices: a limit of the machine, not a missing install, so
		// the message leaves CI's FAIL_SKIPS words out.
		t.Skipf("partition tests need network devices this machine refuses: ip link add type bridge: %v: %s", err, out)
	}
	ip("addr", "add", n.ip+"/24", "dev", n.bridge)
	ip("link", "set", n.bridge, "up")
	for i, m := range members {
		ns, host, peer := fmt.Sprintf("ts%d-%s", id, m), fmt.Sprintf("tsh%d-%d", id, i), fmt.Sprintf("tsn%d-%d", id, i)
		ip("netns", "add", ns)
		n.ns[m] = ns
		ip("link", "add", host, "type", "veth", "peer", "name", peer)
		n.veth[m] = host
		ip("link", "set", peer, "netns", ns)
		ip("link", "set", host, "master", n.bridge)
		ip("link", "set", host, "up")
		ip("-n", ns, "addr", "add", fmt.Sprintf("10.231.%d.%d/24", id%250, i+10), "dev", peer)
		ip("-n", ns, "link", "set", peer, "up")
		ip("-n", ns, "link", "set", "lo", "up")
	}
	return n
}

// link sets member's link up or down.
func (n *netnet) link(member string, up bool) {
	n.t.Helper()
	state := "down"
	if up {
		state = "up"
	}
	if out, err := exec.Command("ip", "link", "set", n.veth[member], state).CombinedOutput(); err != nil {
		n.t.Fatalf("ip link set %s %s: %v\n%s", n.veth[member], state, err, out)
	}
}

// A member cut off mid-roll. m2 coordinates (its agent campaigned first)
// and rolls; its engine is paused half-way when its link goes down. Its
// lease expires: another agent takes over the roll, records the handover, finds m2
// down and says so (the operator's roll exits 111). m2's agent, its lease
// gone by its own clock, is fenced: its engine, let go, writes nothing
// more (no durable step after the 6th), and as coordinator it writes
// nothing after the handover — no second coordinator acts on stale state.
// Healed, m2's agent joins again, resumes its roll through its journal and
// finishes it, with nothing lost; the roll of m3 and switch complete the
// stage.
func TestEtcdPartitionMidRoll(t *testing.T) {
	t.Parallel()
	members := []string{"m1", "m2", "m3"}
	nn := newNetnet(t, members...)
	e := startEtcdOn(t, 1, t.Cleanup, nn.ip)
	bin := faulttest.Binary(t)
	prefix := "partition"
	f := &etcdFixture{t: t, bin: bin, store: e.store(prefix), dir: t.TempDir(), agents: map[string]*agent{}}
	// Agents reach etcd through their links; the operator, on this host,
	// through loopback.
	inner := "etcd://" + nn.ip + ":" + strings.Split(e.eps[0], ":")[1] + "/" + prefix
	start := func(m string, env ...string) {
		f.agents[m] = startAgentIn(t, []string{"ip", "netns", "exec", nn.ns[m]}, []string{"--ttl", "2s"}, bin, inner, m, f.root(m), env...)
	}
	for _, m := range members {
		stageMember(t, bin, f.root(m))
		start(m)
	}
	want := memberState(t, bin, f.root("m2"), 1)
	f.throughPostinstall(members...)
	// Every agent again, m2 first: m2 coordinates, m1 is next; m2's
	// engine pauses after its 6th durable step, and says each step.
	pause := filepath.Join(t.TempDir(), "pause")
	for _, m := range members {
		f.agents[m].stop()
	}
	start("m2", "TREESHIFT_PAUSE_AFTER=6", "TREESHIFT_PAUSE_FILE="+pause, "TREESHIFT_TRACE_STEPS=1")
	waitOutput(t, f.agents["m2"].out, "coordinating the cluster's stages")
	start("m1")
	start("m3")
	type result struct {
		out  string
		code int
	}
	done := make(chan result, 1)
	go func() { out, code := f.c("roll", "m2"); done <- result{out, code} }()
	waitFile(t, pause+".paused")
	nn.link("m2", false)
	cut := time.Now()

	var r result
	select {
	case r = <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("roll not over 30 s after m2 was cut off")
	}
	host, _ := os.Hostname()
	if r.code != 111 || !strings.Contains(r.out, "took over from m2@"+host) ||
		!strings.Contains(r.out, "member m2 is down") || !strings.Contains(r.out, "is not over") {
		t.Fatalf("roll m2 cut off: exit %d\n%s", r.code, r.out)
	}
	t.Logf("the roll ended %s after the cut", time.Since(cut).Round(time.Millisecond))

	// Let m2's engine go: its lease is gone, its fence down. Every durable
	// step it made was made before (it was paused): not one more.
	paused := len(f.agents["m2"].out.String())
	os.WriteFile(pause+".resume", nil, 0o644)
	waitOutput(t, f.agents["m2"].out, "stopped: fenced")
	if after := f.agents["m2"].out.String()[paused:]; strings.Contains(after, "step ") {
		t.Fatalf("m2 wrote after its fence:\n%s", after)
	}
	if st := f.status(); st.Members[st.member("m2")].Rolled {
		t.Fatalf("m2 rolled while cut off")
	}

	nn.link("m2", true)
	deadline := time.Now().Add(30 * time.Second)
	for {
		st := f.status()
		if m := st.Members[st.member("m2")]; m.Rolled && m.Up && m.Task != nil && m.Task.State == "done" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("m2 not rolled 30 s after its link came back: %+v", st.Members[st.member("m2")])
		}
		time.Sleep(100 * time.Millisecond)
	}
	if got := memberState(t, bin, f.root("m2"), 3); got != want {
		t.Fatalf("m2 after its resumed roll:\n%s\nwas:\n%s", got, want)
	}
	// m1 or m3, whichever campaigned first, took over, and still leads.
	ops := f.ops()
	if len(ops.Handovers) != 1 || ops.Handovers[0].From.Member != "m2" || ops.Handovers[0].To.Member == "m2" {
		t.Fatalf("handovers: %+v", ops.Handovers)
	}
	if next := ops.Handovers[0].To.Member; ops.Coordinator == nil || ops.Coordinator.Member != next ||
		!strings.Contains(r.out, fmt.Sprintf("coordinator %s@%s (treeshift ", next, host)) {
		t.Fatalf("coordinator after the partition: %+v, handed over to %s", ops.Coordinator, next)
	}
	// Nothing coordinated by m2 was recorded after the handover.
	cli := e.client()
	defer cli.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	resp, err := cli.Get(ctx, "/"+prefix+"/records/", clientv3.WithPrefix())
	if err != nil {
		t.Fatal(err)
	}
	for _, kv := range resp.Kvs {
		var rec cluster.Record
		json.Unmarshal(kv.Value, &rec)
		if rec.Coordinator == "m2@"+host && rec.Time.After(ops.Handovers[0].Time) {
			t.Fatalf("m2 coordinated after the handover: %+v", rec)
		}
	}
	f.must("roll", "m3")
	f.must("switch")
}
