package cluster_test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Switch and clean are gated on what members report from their own disks,
// not on the record: a member reverted to format 1 after its roll (here
// one of its trees, by hand) stops switch, and after switch stops clean,
// each naming the member and what it reports; put right, each passes. The
// whole upgrade otherwise runs through agents: each member's trees end in
// format 3, stamp included, with the live state they had.
//
// m1 also holds the cluster-shared trees (agent --shared): switch has
// them moved to format 3 by m1's agent.
func TestEtcdSwitchAndCleanGatedOnReports(t *testing.T) {
	t.Parallel()
	f := newFixture(t, sharedEtcd(t), "m1", "m2", "m3")
	sharedRoot := filepath.Join(f.dir, "shared")
	os.MkdirAll(sharedRoot, 0o755)
	if out, code := run(t, f.bin, nil, "--root", sharedRoot, "tree", "create", "--format", "1", "-E", "cluster"); code != 0 {
		t.Fatalf("shared trees: exit %d\n%s", code, out)
	}
	f.agents["m1"].stop()
	f.agents["m1"] = startAgentWith(t, []string{"--ttl", "2s", "--shared", sharedRoot}, f.bin, f.store, "m1", f.root("m1"))
	before := map[string]string{}
	for _, m := range []string{"m1", "m2", "m3"} {
		before[m] = memberState(t, f.bin, f.root(m), 1)
	}
	f.throughPostinstall("m1", "m2", "m3")

	// 4 votes with the quorum vote: one member may roll at a time.
	f.refused("no quorum", "roll", "--parallel", "m2", "m3")
	out := f.must("roll", "m2")
	if !strings.Contains(out, "member m2: rolled to format 3") {
		t.Fatalf("roll m2:\n%s", out)
	}
	out = f.must("roll")
	if !strings.Contains(out, "this is the last member requiring a roll") || !strings.Contains(out, "every member is rolled: the next stage is switch") {
		t.Fatalf("roll of the last member:\n%s", out)
	}

	// m2 goes back to format 1 behind the cluster's back.
	revert := func(to string) {
		t.Helper()
		if out, code := run(t, f.bin, nil, "--root", f.root("m2"), "update", "--to", to, "extra"); code != 0 {
			t.Fatalf("update m2 to %s: exit %d\n%s", to, code, out)
		}
	}
	revert("1")
	f.refused("member m2 reports tree extra in format 1, stamp 3, not every tree and the stamp at format 3", "switch")
	if st := f.status(); st.Active != 1 || st.Stage != "roll" {
		t.Fatalf("a refused switch changed the record: %+v", st)
	}
	revert("3")
	out = f.must("switch")
	if !strings.Contains(out, "active format 3 (was 1)") {
		t.Fatalf("switch:\n%s", out)
	}
	memberState(t, f.bin, sharedRoot, 3)
	revert("1")
	f.refused("member m2 reports its tagged copy of format 1 not removable: tree extra runs in format 1", "clean")
	if _, err := os.Stat(filepath.Join(f.root("m2"), "var/lib/treeshift/tagged/v1")); err != nil {
		t.Fatalf("a refused clean removed m2's tagged copy: %v", err)
	}
	revert("3")
	f.must("clean")

	for _, m := range []string{"m1", "m2", "m3"} {
		if got := memberState(t, f.bin, f.root(m), 3); got != before[m] {
			t.Fatalf("member %s after the upgrade:\n%s\nwas:\n%s", m, got, before[m])
		}
		if _, err := os.Stat(filepath.Join(f.root(m), "var/lib/treeshift/tagged/v1")); err == nil {
			t.Fatalf("member %s keeps its tagged copy after clean", m)
		}
	}
	st := f.status()
	host, _ := os.Hostname()
	for _, m := range st.Members {
		if !m.Up || m.Report == nil || m.Report.Host != host || m.Report.Version == "" || m.Report.Stamp != 3 {
			t.Fatalf("member %s in status: %+v", m.ID, m)
		}
	}
	// The history names who did each part, where, and for how long: the
	// roll of m2 was asked here and carried out by m2's agent.
	found := false
	for _, h := range st.History {
		if h.Host == "" || h.By == "" {
			t.Fatalf("history without its host: %+v", h)
		}
		if h.Stage == "roll" && h.Member == "m2" && h.Outcome == "finish" && h.Seconds > 0 {
			found = true
		}
	}
	if !found || st.Stage != "idle" || st.Active != 3 {
		t.Fatalf("status after clean: %+v", st)
	}
	for _, m := range []string{"m1", "m2", "m3"} {
		f.agents[m].stop()
	}
}

// A member whose root is lost (made anew, empty) is not "rolled": its roll
// fails, and switch names it with what it reports. A member whose agent is
// stopped is down: it cannot be rolled, and its votes do not count.
func TestEtcdLostRootIsNotRolled(t *testing.T) {
	t.Parallel()
	f := newFixture(t, sharedEtcd(t), "m1", "m2", "m3")
	f.throughPostinstall("m1", "m2", "m3")
	f.must("roll", "m2")

	os.RemoveAll(f.root("m3"))
	os.MkdirAll(f.root("m3"), 0o755)
	f.refused("member m3: its system /var/lib/treeshift holds no trees and no tagged copy: it is not the system that was set up", "roll", "m3")
	st := f.status()
	if m := st.Members[st.member("m3")]; m.Rolled || m.Report == nil || len(m.Report.Trees) != 0 {
		t.Fatalf("m3 after a roll of a lost root: %+v", m)
	}
	f.refused("switch is not next", "switch")

	// Down: m3's agent stops; its lease is revoked at once.
	f.agents["m3"].stop()
	out := f.refused("member m3 is down: its agent has not reported for", "roll", "m3")
	if !strings.Contains(out, "it cannot be rolled") {
		t.Fatalf("roll of a down member:\n%s", out)
	}
	if st := f.status(); st.Members[st.member("m3")].Up {
		t.Fatalf("m3 up after its agent stopped")
	}
}

// A member's agent killed in the middle of its roll: its lease expires,
// the roll command stops waiting and says so, status shows the member down
// with its roll interrupted, and the agent, restarted, resumes the roll
// through the member's journal and finishes it.
func TestEtcdAgentKilledMidRollResumes(t *testing.T) {
	t.Parallel()
	f := newFixture(t, sharedEtcd(t), "m1", "m2", "m3")
	want := memberState(t, f.bin, f.root("m2"), 1)
	f.throughPostinstall("m1", "m2", "m3")

	// m2's agent again, crashing (SIGKILL, from inside) after the 6th
	// durable step of whatever it does next: its roll.
	f.agents["m2"].stop()
	f.agents["m2"] = startAgent(t, f.bin, f.store, "m2", f.root("m2"), "TREESHIFT_CRASH_AFTER=6")
	start := time.Now()
	out := f.refused("member m2 is down: its agent has not reported for", "roll", "m2")
	if !strings.Contains(out, "restarting its agent carries it out") {
		t.Fatalf("roll whose agent died:\n%s", out)
	}
	if d := time.Since(start); d > 15*time.Second {
		t.Fatalf("the roll noticed the dead agent after %s", d)
	}
	st := f.status()
	m := st.Members[st.member("m2")]
	if m.Up || m.Rolled || !m.Rolling || m.Task == nil || m.Task.State != "running" {
		t.Fatalf("m2 after its agent died: %+v", m)
	}
	if len(st.Interrupted) != 1 || !strings.Contains(st.Interrupted[0], "roll of member m2 started") || !strings.Contains(st.Interrupted[0], "restart its agent") {
		t.Fatalf("interrupted: %q", st.Interrupted)
	}
	// Quorum counts m2 as rolling and down: m3 may not roll meanwhile.
	f.refused("no quorum", "roll", "m3")

	f.agents["m2"] = startAgent(t, f.bin, f.store, "m2", f.root("m2"))
	deadline := time.Now().Add(30 * time.Second)
	for {
		st = f.status()
		if m := st.Members[st.member("m2")]; m.Rolled && !m.Rolling && m.Up {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("m2 not rolled 30 s after its agent restarted: %+v", st.Members[st.member("m2")])
		}
		time.Sleep(100 * time.Millisecond)
	}
	if len(st.Interrupted) != 0 {
		t.Fatalf("interrupted after the resumed roll: %q", st.Interrupted)
	}
	if got := memberState(t, f.bin, f.root("m2"), 3); got != want {
		t.Fatalf("m2 after its resumed roll:\n%s\nwas:\n%s", got, want)
	}
	f.must("roll", "m3")
	f.must("switch")
}

// One etcd node killed while a member's agent is half-way through its
// roll: the agent records the roll's end through the other nodes and the
// roll command, waiting on them, exits 0.
func TestEtcdNodeKilledMidRoll(t *testing.T) {
	t.Parallel()
	e := startEtcd(t, 3, t.Cleanup)
	f := newFixture(t, e, "m1", "m2", "m3")
	f.throughPostinstall("m1", "m2", "m3")
	pause := filepath.Join(t.TempDir(), "pause")
	f.agents["m2"].stop()
	f.agents["m2"] = startAgent(t, f.bin, f.store, "m2", f.root("m2"), "TREESHIFT_PAUSE_AFTER=6", "TREESHIFT_PAUSE_FILE="+pause)
	type result struct {
		out  string
		code int
	}
	done := make(chan result, 1)
	go func() { out, code := f.c("roll", "m2"); done <- result{out, code} }()
	waitFile(t, pause+".paused")
	// The first endpoint: the one every client starts with.
	e.kill(0)
	killed := time.Now()
	os.WriteFile(pause+".resume", nil, 0o644)
	select {
	case r := <-done:
		if r.code != 0 || !strings.Contains(r.out, "member m2: rolled to format 3") {
			t.Fatalf("roll with an etcd node killed: exit %d\n%s", r.code, r.out)
		}
		t.Logf("the roll ended %s after the node was killed", time.Since(killed).Round(time.Millisecond))
	case <-time.After(60 * time.Second):
		t.Fatalf("roll not over 60 s after an etcd node was killed")
	}
	memberState(t, f.bin, f.root("m2"), 3)
	st := f.status()
	if m := st.Members[st.member("m2")]; !m.Rolled || !m.Up {
		t.Fatalf("m2 after the roll: %+v", m)
	}
}

// Two operators roll at once, on two hosts (two UTS namespaces with their
// own host names, where the test may make them), while a third asks for a
// roll that would break quorum: the quorum check and the request are one
// compare-and-swap, so exactly one of the three is refused, whichever
// loses, and no request is lost.
func TestEtcdOperatorsRollAtOnce(t *testing.T) {
	t.Parallel()
	members := []string{"m1", "m2", "m3", "m4", "m5"}
	f := newFixture(t, sharedEtcd(t), members...)
	// 5 votes, no quorum vote: at most two members may be down.
	init := []string{"init"}
	for _, m := range members {
		init = append(init, "--member", m)
	}
	f.must(init...)
	for _, s := range [][]string{{"setup", "m1"}, {"preinstall"}, {"install"}, {"postinstall"}} {
		f.must(s...)
	}
	pauses := map[string]string{}
	for _, m := range []string{"m2", "m3", "m4"} {
		pauses[m] = filepath.Join(t.TempDir(), "pause")
		f.agents[m].stop()
		f.agents[m] = startAgent(t, f.bin, f.store, m, f.root(m), "TREESHIFT_PAUSE_AFTER=6", "TREESHIFT_PAUSE_FILE="+pauses[m])
	}
	type result struct {
		member, out string
		code        int
	}
	results := make(chan result, 3)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i, m := range []string{"m2", "m3", "m4"} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			args := []string{f.bin, "--wait", "20s", "cluster", "--store", f.store, "roll", m}
			out, code := asHost(t, fmt.Sprintf("operator%d", i+1), args...)
			results <- result{m, out, code}
		}()
	}
	close(start)
	// The refused one exits; the two others wait for their agents, paused.
	var refused result
	select {
	case refused = <-results:
	case <-time.After(30 * time.Second):
		t.Fatal("no roll refused within 30 s")
	}
	if refused.code != 111 || !strings.Contains(refused.out, "no quorum") || !strings.Contains(refused.out, "rolling now:") {
		t.Fatalf("roll %s: exit %d, want a refusal for quorum:\n%s", refused.member, refused.code, refused.out)
	}
	for m, p := range pauses {
		if m != refused.member {
			waitFile(t, p+".paused")
			os.WriteFile(p+".resume", nil, 0o644)
		}
	}
	wg.Wait()
	close(results)
	var rolled []string
	another := 0
	for r := range results {
		if r.code != 0 {
			t.Fatalf("roll %s: exit %d\n%s", r.member, r.code, r.out)
		}
		rolled = append(rolled, r.member)
		if strings.Contains(r.out, "you may now begin the roll of another member") {
			another++
		}
	}
	// The first roll asked left room for one more (4 of 5 votes, then 3);
	// the second did not (2 of 5).
	if another != 1 {
		t.Fatalf("%d of the two rolls said another member may begin its roll, want 1", another)
	}
	st := f.status()
	requests := map[string]int{}
	hosts := map[string]bool{}
	for _, h := range st.History {
		if h.Stage == "roll" {
			requests[h.Member]++
			hosts[strings.Split(h.Host, "→")[0]] = true
		}
	}
	for _, m := range rolled {
		if i := st.member(m); !st.Members[i].Rolled || requests[m] != 1 {
			t.Fatalf("member %s after the concurrent rolls: %+v, %d roll spans", m, st.Members[i], requests[m])
		}
	}
	if i := st.member(refused.member); st.Members[i].Rolled || requests[refused.member] != 0 {
		t.Fatalf("the refused member %s: %+v, %d roll spans", refused.member, st.Members[i], requests[refused.member])
	}
	if os.Getuid() == 0 && len(hosts) != 2 {
		t.Fatalf("roll requests recorded from hosts %v, want the two operators'", hosts)
	}
	// Now the third may roll (its agent pauses again: let it go on).
	os.WriteFile(pauses[refused.member]+".resume", nil, 0o644)
	f.must("roll", refused.member)
}

// asHost runs a command as if on another host: in a UTS namespace of its
// own named host, where the test runs as root (unshare(1)); elsewhere on
// this host, which the test says.
func asHost(t *testing.T, host string, args ...string) (string, int) {
	if os.Getuid() == 0 {
		if _, err := exec.LookPath("unshare"); err == nil {
			script := `hostname "$1" && shift && exec "$@"`
			return run(t, "unshare", nil, append([]string{"--uts", "sh", "-c", script, "sh", host}, args...)...)
		}
	}
	t.Logf("not root: operator %s runs on this host", host)
	return run(t, args[0], nil, args[1:]...)
}

func waitFile(t *testing.T, p string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		if _, err := os.Stat(p); err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s did not appear in 30 s", p)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Two agents never act for one member: a second agent of a member whose
// agent is alive waits, saying so, until the first's lease is gone (here
// revoked by its SIGTERM), then takes over.
func TestEtcdOneAgentPerMember(t *testing.T) {
	t.Parallel()
	f := newFixture(t, sharedEtcd(t), "m1")
	out := &syncBuffer{}
	cmd := exec.Command(f.bin, "--root", f.root("m1"), "cluster", "--store", f.store, "agent", "--member", "m1", "--ttl", "2s")
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	t.Cleanup(func() { syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL); <-exited })
	waitOutput(t, out, "holds its lease; waiting for it to stop or expire")
	if strings.Contains(out.String(), "agent up") {
		t.Fatalf("a second agent came up beside the first:\n%s", out)
	}
	f.agents["m1"].stop()
	waitOutput(t, out, "agent up on")
}

func waitOutput(t *testing.T, out *syncBuffer, want string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !strings.Contains(out.String(), want) {
		if time.Now().After(deadline) {
			t.Fatalf("no %q after 20 s:\n%s", want, out)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
