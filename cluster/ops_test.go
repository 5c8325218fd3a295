package cluster_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.etcd.io/etcd/client/v3/concurrency"

	"github.com/treeshift/treeshift/cluster"
	"github.com/treeshift/treeshift/internal/supervisor/s6"
)

// statusOps is what the tests read of status --json beyond statusDoc.
type statusOps struct {
	Coordinator *struct{ Member, Host, Version string }
	Handovers   []struct {
		Time     time.Time
		Op       string
		Stage    string
		From, To struct{ Member, Host, Version string }
	}
	Membership []struct {
		Event, Member string
		Votes         int
		Changes       []string
	}
	Undos []struct {
		Stage, Member string
		Dropped       []string
	}
	Config  *struct{ ID string }
	Members []struct {
		ID     string
		Config *struct{ ID string }
	}
}

func (f *etcdFixture) ops() *statusOps {
	f.t.Helper()
	var st statusOps
	if err := jsonUnmarshal(f.must("status", "--json"), &st); err != nil {
		f.t.Fatal(err)
	}
	return &st
}

// spans counts the history's spans of stage for member.
func (s *statusDoc) spans(stage, member string) int {
	n := 0
	for _, h := range s.History {
		if h.Stage == stage && h.Member == member {
			n++
		}
	}
	return n
}

// The coordinator killed mid-stage: the agent that coordinates (m1) is
// killed while the roll it drives (m2, then m3) waits on m2's engine, which
// then finishes with no coordinator. The lease expires; m3, next in the
// election, takes over, records the handover (both coordinators, their
// treeshift, the time), and carries the roll on from the records: m2's
// roll, done, is neither asked for again nor refused as rolled, m3's is
// asked once, and the operator's command, which never stopped waiting,
// exits 0 saying who took over.
func TestEtcdCoordinatorKilledMidStage(t *testing.T) {
	t.Parallel()
	f := newFixture(t, sharedEtcd(t), "m1", "m2", "m3")
	waitOutput(t, f.agents["m1"].out, "coordinating the cluster's stages")
	// m1 has no vote: killed, it leaves quorum to the others.
	f.must("init", "--quorum-vote", "--member", "m1:0", "--member", "m2", "--member", "m3")
	for _, s := range [][]string{{"setup", "m1"}, {"preinstall"}, {"install"}, {"postinstall"}} {
		f.must(s...)
	}
	// m2's agent again, pausing in its roll; it campaigns last: m1
	// coordinates, m3 is next.
	pause := filepath.Join(t.TempDir(), "pause")
	f.agents["m2"].stop()
	f.agents["m2"] = startAgent(t, f.bin, f.store, "m2", f.root("m2"), "TREESHIFT_PAUSE_AFTER=6", "TREESHIFT_PAUSE_FILE="+pause)
	if c := f.ops().Coordinator; c == nil || c.Member != "m1" {
		t.Fatalf("coordinator before the kill: %+v", c)
	}
	type result struct {
		out  string
		code int
	}
	done := make(chan result, 1)
	go func() { out, code := f.c("roll", "m2", "m3"); done <- result{out, code} }()
	waitFile(t, pause+".paused")
	f.agents["m1"].kill()
	killed := time.Now()
	// m2 finishes its roll while no coordinator leads: the next one finds
	// it done, and must neither ask for it again nor refuse it as rolled.
	os.WriteFile(pause+".resume", nil, 0o644)
	deadline := time.Now().Add(20 * time.Second)
	for len(f.ops().Handovers) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("no handover 20 s after the coordinator was killed")
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("handover %s after the kill", time.Since(killed).Round(time.Millisecond))
	var r result
	select {
	case r = <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("roll not over 30 s after the handover")
	}
	host, _ := os.Hostname()
	if r.code != 0 || !strings.Contains(r.out, fmt.Sprintf("coordinator m3@%s (treeshift ", host)) || !strings.Contains(r.out, "took over from m1@"+host) ||
		!strings.Contains(r.out, "member m2: rolled to format 3") || !strings.Contains(r.out, "member m3: rolled to format 3") {
		t.Fatalf("roll m2 m3 across the handover: exit %d\n%s", r.code, r.out)
	}
	ops := f.ops()
	if len(ops.Handovers) != 1 {
		t.Fatalf("handovers: %+v", ops.Handovers)
	}
	h := ops.Handovers[0]
	if h.From.Member != "m1" || h.To.Member != "m3" || h.From.Host != host || h.To.Host != host || h.From.Version == "" || h.To.Version == "" ||
		h.Stage != "roll" || h.Time.Before(killed) {
		t.Fatalf("handover: %+v", h)
	}
	if ops.Coordinator == nil || ops.Coordinator.Member != "m3" {
		t.Fatalf("coordinator after the handover: %+v", ops.Coordinator)
	}
	st := f.status()
	for _, m := range []string{"m2", "m3"} {
		if i := st.member(m); !st.Members[i].Rolled || st.spans("roll", m) != 1 {
			t.Fatalf("member %s after the roll across the handover: %+v, %d roll spans\n%+v", m, st.Members[i], st.spans("roll", m), st.History)
		}
	}
	memberState(t, f.bin, f.root("m2"), 3)
	memberState(t, f.bin, f.root("m3"), 3)
}

func jsonUnmarshal(s string, v any) error { return json.Unmarshal([]byte(s), v) }

// stageS6Member makes member root for the s6 backend: its services are
// sleepers (sleep SECONDS, a number no other test uses) under a real
// s6-svscan stopped when the test ends; tree boot, live, in format 1, with
// ua up and ub not enabled.
func stageS6Member(t *testing.T, bin, root string, seconds int) {
	t.Helper()
	if err := s6.Check(); err != nil {
		// .ci/run installs s6 and fails on this skip (FAIL_SKIPS).
		t.Skipf("s6 backend not testable here: %v", err)
	}
	defs := filepath.Join(root, "etc/treeshift/service")
	os.MkdirAll(defs, 0o755)
	for _, s := range []string{"ua", "ub"} {
		os.WriteFile(filepath.Join(defs, s), []byte(fmt.Sprintf(
			"[main]\n@type = longrun\n@version = 1.0.0\n@description = %q\n@user = ( root )\n\n[start]\n@execute = ( sleep %d )\n", s, seconds)), 0o644)
	}
	do := func(args ...string) {
		t.Helper()
		if out, code := run(t, bin, nil, append([]string{"--root", root}, args...)...); code != 0 {
			t.Fatalf("%v: exit %d\n%s", args, code, out)
		}
	}
	do("scandir", "start", "--supervisor", "s6")
	t.Cleanup(func() { s6.StopScan(filepath.Join(root, "run/treeshift/scandir/0"), 10*time.Second) })
	do("tree", "create", "--format", "1", "-E", "boot")
	do("enable", "-t", "boot", "ua")
	do("init", "boot")
	do("start", "-t", "boot", "ua")
}

// pgrep counts the processes whose command line matches pattern.
func pgrep(pattern string) int {
	out, _ := exec.Command("pgrep", "-c", "-f", pattern).Output() // exit 1: none
	n, _ := strconv.Atoi(strings.TrimSpace(string(out)))
	return n
}

// waitPgrep waits until exactly n processes match pattern.
func waitPgrep(t *testing.T, n int, pattern string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for pgrep(pattern) != n {
		if time.Now().After(deadline) {
			t.Fatalf("%d processes match %q after 20 s, want %d", pgrep(pattern), pattern, n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Undo after changes, with services that are real processes (s6): m2 is
// rolled, then a service is enabled and started on it. undo roll m2 is
// refused, naming the change, and changes nothing: the service runs on,
// m2 stays rolled. With --discard m2's agent, through m2's engine, stops the
// service through s6, disables it, restores the tagged copy: no process of
// it is left, nor its supervisor, nor its link in the scan directory, while
// the service that was up before the roll never stopped (same pid). status
// shows the undo with what it dropped.
func TestEtcdUndoAfterChanges(t *testing.T) {
	t.Parallel()
	f := newFixture(t, sharedEtcd(t), "m1")
	stageS6Member(t, f.bin, f.root("m2"), 7431)
	f.agents["m2"] = startAgent(t, f.bin, f.store, "m2", f.root("m2"))
	scan := filepath.Join(f.root("m2"), "run/treeshift/scandir/0")
	svc := func(name string) string {
		return filepath.Join(f.root("m2"), "run/treeshift/tree/0/boot/servicedirs", name)
	}
	pid := func(name string) string {
		out, err := exec.Command("s6-svstat", "-o", "pid", svc(name)).Output()
		if err != nil {
			t.Fatalf("s6-svstat %s: %v", name, err)
		}
		return strings.TrimSpace(string(out))
	}
	waitPgrep(t, 1, "^sleep 7431$")
	uaPid := pid("ua")
	f.must("init", "--quorum-vote", "--member", "m1", "--member", "m2")
	for _, s := range [][]string{{"setup", "m1"}, {"preinstall"}, {"install"}, {"postinstall"}, {"roll", "m2"}} {
		f.must(s...)
	}
	for _, args := range [][]string{{"enable", "-t", "boot", "ub"}, {"start", "-t", "boot", "ub"}} {
		if out, code := run(t, f.bin, nil, append([]string{"--root", f.root("m2")}, args...)...); code != 0 {
			t.Fatalf("%v: exit %d\n%s", args, code, out)
		}
	}
	waitPgrep(t, 2, "^sleep 7431$")
	ubPid := pid("ub")

	out := f.refused("undo roll refused: member m2 changed since its roll:\ntreeshift: fatal:   tree boot: service ub enabled (up)\n", "undo", "roll", "m2")
	if !strings.Contains(out, "undo roll m2 --discard does so") {
		t.Fatalf("refusal without the command that discards:\n%s", out)
	}
	if st := f.status(); !st.Members[st.member("m2")].Rolled || pid("ub") != ubPid || pgrep("^sleep 7431$") != 2 {
		t.Fatalf("a refused undo changed something: %+v, ub pid %s (was %s)", st.Members[st.member("m2")], pid("ub"), ubPid)
	}

	out = f.must("undo", "roll", "m2", "--discard")
	if !strings.Contains(out, "member m2: dropped: tree boot: service ub enabled (up)") || !strings.Contains(out, "member m2: restored from /var/lib/treeshift/tagged/v1") {
		t.Fatalf("undo --discard:\n%s", out)
	}
	// Nothing keeps running orphaned: not ub's process, not its supervisor.
	waitPgrep(t, 1, "^sleep 7431$")
	waitPgrep(t, 0, "^s6-supervise boot:ub$")
	if _, err := os.Lstat(filepath.Join(scan, "boot:ub")); err == nil {
		t.Fatalf("boot:ub is still in the scan directory")
	}
	if got := pid("ua"); got != uaPid {
		t.Fatalf("ua restarted by the undo: pid %s, was %s", got, uaPid)
	}
	memberState(t, f.bin, f.root("m2"), 1)
	// Back as before the roll: ub unknown to the tree, ua up.
	if out, _ := run(t, f.bin, nil, "--root", f.root("m2"), "status", "boot"); strings.Contains(out, "\n  ub ") || !regexp.MustCompile(`\n  ua +longrun +yes +up `).MatchString(out) {
		t.Fatalf("m2's boot after the undo:\n%s", out)
	}
	st := f.status()
	if m := st.Members[st.member("m2")]; m.Rolled || m.Task == nil || m.Task.Action != "restore" || m.Task.State != "done" {
		t.Fatalf("m2 after the undo: %+v", m)
	}
	ops := f.ops()
	if len(ops.Undos) != 1 || ops.Undos[0].Stage != "roll" || ops.Undos[0].Member != "m2" ||
		len(ops.Undos[0].Dropped) != 1 || ops.Undos[0].Dropped[0] != "tree boot: service ub enabled (up)" {
		t.Fatalf("undos: %+v", ops.Undos)
	}
}

// Membership during an upgrade, on etcd, with a cluster configuration: m4
// joins mid-roll (refused while its agent is not running), is set up and
// rolled, applying the configuration as every member rolling does; m3
// dies in its roll (its agent crashes) and, once down, is deleted (refused
// while up), its unfinished roll abandoned; the upgrade then switches and
// completes without it. status shows both changes and which member runs
// which configuration.
func TestEtcdMembershipMidRoll(t *testing.T) {
	t.Parallel()
	f := newFixture(t, sharedEtcd(t), "m1", "m2", "m3")
	stageMember(t, f.bin, f.root("m4"))
	cfg := filepath.Join(t.TempDir(), "site.json")
	os.WriteFile(cfg, []byte(`{"schema": 1, "owner": {"uid": 0, "name": "root"}, "trees": [
 {"name": "boot", "format": 1, "enabled": true, "allow": ["root"], "initialized": true, "services": [{"name": "a", "up": true}, {"name": "b", "up": true}]},
 {"name": "extra", "format": 1, "enabled": true, "allow": ["root"], "initialized": false, "services": [{"name": "c", "up": false}]}]}`), 0o644)
	f.must("init", "--quorum-vote", "--member", "m1", "--member", "m2", "--member", "m3")
	out := f.must("configure", cfg)
	id := regexp.MustCompile(`configuration ([0-9a-f]{12}) stored`).FindStringSubmatch(out)
	if id == nil {
		t.Fatalf("configure:\n%s", out)
	}
	for _, s := range [][]string{{"setup", "m1"}, {"preinstall"}, {"install"}, {"postinstall"}, {"roll", "m2"}} {
		f.must(s...)
	}

	f.refused("member m4 cannot be added: it is down: no agent has reported for it", "member", "add", "m4")
	f.agents["m4"] = startAgent(t, f.bin, f.store, "m4", f.root("m4"))
	out = f.must("member", "add", "m4")
	if !strings.Contains(out, "member m4 added (1 vote(s)): quorum is now 3 of 5 votes") || !strings.Contains(out, "member m4: rolled to format 3") {
		t.Fatalf("member add m4:\n%s", out)
	}
	// m4 applied the configuration with its roll: b up.
	if out, _ := run(t, f.bin, nil, "--root", f.root("m4"), "status", "boot"); !regexp.MustCompile(`\n  b +longrun +yes +up `).MatchString(out) {
		t.Fatalf("m4 after its roll:\n%s", out)
	}
	memberState(t, f.bin, f.root("m4"), 3)

	f.refused("member m3 is up", "member", "delete", "m3")
	f.agents["m3"].stop()
	f.agents["m3"] = startAgent(t, f.bin, f.store, "m3", f.root("m3"), "TREESHIFT_CRASH_AFTER=6")
	f.refused("member m3 is down", "roll", "m3")
	out = f.must("member", "delete", "m3")
	if !strings.Contains(out, "member m3 deleted (1 vote(s)): quorum is now 3 of 4 votes") ||
		!regexp.MustCompile(`member m3: its roll to format 3 \(task \d+, running\) is abandoned`).MatchString(out) ||
		!strings.Contains(out, "every member is rolled: the next stage is switch") {
		t.Fatalf("member delete m3:\n%s", out)
	}
	f.must("switch")
	f.must("clean")

	st, ops := f.status(), f.ops()
	if st.Stage != "idle" || st.Active != 3 || st.member("m3") != -1 || len(st.Members) != 3 {
		t.Fatalf("status after the upgrade: %+v", st)
	}
	if len(ops.Membership) != 2 || ops.Membership[0].Event != "add" || ops.Membership[0].Member != "m4" ||
		ops.Membership[1].Event != "delete" || ops.Membership[1].Member != "m3" || len(ops.Membership[1].Changes) != 1 {
		t.Fatalf("membership: %+v", ops.Membership)
	}
	if ops.Config == nil || ops.Config.ID != id[1] {
		t.Fatalf("configuration: %+v, want %s", ops.Config, id[1])
	}
	for _, m := range ops.Members {
		if m.Config == nil || m.Config.ID != id[1] {
			t.Fatalf("member %s runs configuration %+v, want %s", m.ID, m.Config, id[1])
		}
	}
}

// A coordinator deposed without knowing it — frozen, or cut off, past its
// lease, while another was elected — writes nothing: every change it
// makes compares its election key, gone with its lease. Its successor's
// changes go through.
func TestEtcdDeposedCoordinatorWritesNothing(t *testing.T) {
	t.Parallel()
	e := sharedEtcd(t)
	es, err := cluster.OpenEtcd(e.store("deposed"))
	if err != nil {
		t.Fatal(err)
	}
	defer es.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	st := &cluster.State{Schema: cluster.Schema, Members: []cluster.Member{{ID: "m1", Votes: 1}}, Active: 1}
	if err := es.Commit(ctx, st, cluster.Rev{}, nil, false); err != nil {
		t.Fatal(err)
	}
	coordinator := func() (*cluster.EtcdStore, *concurrency.Session) {
		t.Helper()
		sess, err := concurrency.NewSession(es.Client(), concurrency.WithTTL(5))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { sess.Close() })
		c, err := cluster.CoordinatorStore(ctx, es, sess)
		if err != nil {
			t.Fatal(err)
		}
		return c, sess
	}
	set := func(c *cluster.EtcdStore, lead string) error {
		st, rev, err := c.Load(ctx)
		if err != nil {
			t.Fatal(err)
		}
		st.Lead = lead
		return c.Commit(ctx, st, rev, nil, false)
	}
	a, sa := coordinator()
	if err := set(a, "a"); err != nil {
		t.Fatalf("the coordinator's change: %v", err)
	}
	// a's lease ends as if it had expired; b is elected.
	if _, err := es.Client().Revoke(ctx, sa.Lease()); err != nil {
		t.Fatal(err)
	}
	b, _ := coordinator()
	if err := set(a, "stale"); !errors.Is(err, cluster.ErrConflict) {
		t.Fatalf("a deposed coordinator's change: %v, want %v", err, cluster.ErrConflict)
	}
	if err := set(b, "b"); err != nil {
		t.Fatalf("the new coordinator's change: %v", err)
	}
	if st, _, err := es.Load(ctx); err != nil || st.Lead != "b" {
		t.Fatalf("record after both: %+v, %v", st, err)
	}
}

// A key under PREFIX/coordinator/ that no agent's campaign wrote (no
// lease), older than every campaign, would lead the election for ever and
// no stage would run: the agents remove it, saying so, and the stage runs.
func TestEtcdGarbageCandidacyIsSwept(t *testing.T) {
	t.Parallel()
	e := sharedEtcd(t)
	name := strings.ReplaceAll(t.Name(), "/", "-")
	cli := e.client()
	defer cli.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	garbage := "/" + name + "/coordinator/0000000000000001"
	if _, err := cli.Put(ctx, garbage, "garbage"); err != nil {
		t.Fatal(err)
	}
	f := newFixture(t, e, "m1", "m2")
	f.must("init", "--quorum-vote", "--member", "m1", "--member", "m2")
	f.must("setup", "m1")
	r, err := cli.Get(ctx, garbage)
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Kvs) != 0 {
		t.Fatalf("%s is still there after setup", garbage)
	}
	said := f.agents["m1"].out.String() + f.agents["m2"].out.String()
	if !strings.Contains(said, "removed "+garbage+" from the coordinator election: no agent's candidacy") {
		t.Fatalf("no agent said it removed %s:\n%s", garbage, said)
	}
}
