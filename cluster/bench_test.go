package cluster_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/treeshift/treeshift/cluster"
	"github.com/treeshift/treeshift/internal/faulttest"
)

// BenchmarkClusterUpgrade times a whole upgrade, init to clean, of
// BENCH_MEMBERS members (default 20), each BENCH_TREES trees (5) of
// BENCH_SERVICES services (20), all live, over a 3-node etcd, every member
// with its own agent process, rolled in parallel as quorum allows (with
// the quorum vote, 10 of 20 at once). It reports the total and how it
// splits: transitions — the time during which at least one member's engine
// was at work (tag, verify, update, untag), from the agents' own timings —
// and coordination, the rest: requests, waits, locks, reports, gates and
// the commands' own start. `make bench-cluster` runs it.
func BenchmarkClusterUpgrade(b *testing.B) {
	type window struct {
		name     string
		from, to time.Time
	}
	var windows []window
	timed := func(f *etcdFixture, args ...string) {
		t0 := time.Now()
		f.must(args...)
		name := strings.Join(args, " ")
		if len(name) > 40 {
			name = name[:40] + "…"
		}
		windows = append(windows, window{name, t0, time.Now()})
	}
	n, trees, services := envInt("BENCH_MEMBERS", 20), envInt("BENCH_TREES", 5), envInt("BENCH_SERVICES", 20)
	e := startEtcd(b, 3, b.Cleanup)
	bin := faulttest.Binary(b)
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		dir := b.TempDir()
		proto := filepath.Join(dir, "proto")
		stageBig(b, bin, proto, trees, services)
		f := &etcdFixture{t: b, bin: bin, store: e.store(fmt.Sprintf("bench%d", i)), dir: dir, agents: map[string]*agent{}}
		var ids []string
		var wg sync.WaitGroup
		for m := 1; m <= n; m++ {
			id := fmt.Sprintf("m%d", m)
			ids = append(ids, id)
			if out, err := exec.Command("cp", "-a", proto, f.root(id)).CombinedOutput(); err != nil {
				b.Fatalf("cp: %v\n%s", err, out)
			}
		}
		var mu sync.Mutex
		for _, id := range ids {
			wg.Add(1)
			go func() {
				defer wg.Done()
				a := startAgentTTL(b, "10s", bin, f.store, id, f.root(id))
				mu.Lock()
				f.agents[id] = a
				mu.Unlock()
			}()
		}
		wg.Wait()
		b.StartTimer()
		start := time.Now()
		init := []string{"init", "--quorum-vote"}
		for _, id := range ids {
			init = append(init, "--member", id)
		}
		timed(f, init...)
		for _, s := range [][]string{{"setup", "m1"}, {"preinstall"}, {"install"}, {"postinstall"}} {
			timed(f, s...)
		}
		// Quorum: n votes and the quorum vote; more than half must stay.
		// With k rolling, n-k+1 of n+1 votes stay: k < (n+1)/2.
		most := max(n/2, 1)
		for rest := ids[1:]; len(rest) > 0; {
			k := min(most, len(rest))
			timed(f, append([]string{"roll", "--parallel"}, rest[:k]...)...)
			rest = rest[k:]
		}
		timed(f, "switch")
		timed(f, "clean")
		total := time.Since(start)
		b.StopTimer()

		es, err := cluster.OpenEtcd(f.store)
		if err != nil {
			b.Fatal(err)
		}
		records, err := es.Records(context.Background())
		es.Close()
		if err != nil {
			b.Fatal(err)
		}
		busy, sum := engineTime(records, time.Time{}, time.Time{})
		if os.Getenv("BENCH_VERBOSE") != "" {
			for _, w := range windows {
				u, _ := engineTime(records, w.from, w.to)
				d := w.to.Sub(w.from)
				b.Logf("%-42s %8s, engines %8s, coordination %8s", w.name, d.Round(time.Millisecond), u.Round(time.Millisecond), (d - u).Round(time.Millisecond))
			}
		}
		windows = nil
		coord := total - busy
		b.ReportMetric(total.Seconds(), "s/upgrade")
		b.ReportMetric(busy.Seconds(), "s-transitions")
		b.ReportMetric(100*coord.Seconds()/total.Seconds(), "%coordination")
		b.Logf("%d members × %d trees × %d services, rolls of up to %d at once: total %s; transitions %s (%.0f %%; engine time summed over members %s); coordination %s (%.0f %%)",
			n, trees, services, most, total.Round(time.Millisecond), busy.Round(time.Millisecond), 100*busy.Seconds()/total.Seconds(),
			sum.Round(time.Millisecond), coord.Round(time.Millisecond), 100*coord.Seconds()/total.Seconds())
		for _, a := range f.agents {
			a.stop()
		}
	}
}

// engineTime is the union of the intervals during which a member's engine
// worked on a task, and their sum; with from and to set, of the parts of
// them between from and to.
func engineTime(records []cluster.Record, from, to time.Time) (union, sum time.Duration) {
	type span struct{ from, to time.Time }
	var spans []span
	for _, r := range records {
		if (r.Event == "finish" || r.Event == "fail") && r.Member != "" && r.Seconds > 0 {
			d := time.Duration(r.Seconds * float64(time.Second))
			sp := span{r.Time.Add(-d), r.Time}
			if !from.IsZero() {
				if sp.from.Before(from) {
					sp.from = from
				}
				if sp.to.After(to) {
					sp.to = to
				}
				if !sp.to.After(sp.from) {
					continue
				}
			}
			spans = append(spans, sp)
			sum += sp.to.Sub(sp.from)
		}
	}
	sort.Slice(spans, func(i, j int) bool { return spans[i].from.Before(spans[j].from) })
	var cur *span
	for i := range spans {
		s := spans[i]
		switch {
		case cur == nil:
			cur = &s
		case s.from.After(cur.to):
			union += cur.to.Sub(cur.from)
			cur = &s
		case s.to.After(cur.to):
			cur.to = s.to
		}
	}
	if cur != nil {
		union += cur.to.Sub(cur.from)
	}
	return union, sum
}

func envInt(k string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(k)); err == nil && v > 0 {
		return v
	}
	return def
}

// stageBig makes a root of trees live trees, each of services longruns,
// half of them up.
func stageBig(b testing.TB, bin, root string, trees, services int) {
	b.Helper()
	defs := filepath.Join(root, "etc/treeshift/service")
	os.MkdirAll(defs, 0o755)
	must := func(args ...string) {
		b.Helper()
		if out, code := run(b, bin, nil, append([]string{"--root", root}, args...)...); code != 0 {
			b.Fatalf("%v: exit %d\n%s", args, code, out)
		}
	}
	for t := 0; t < trees; t++ {
		tree := fmt.Sprintf("t%d", t)
		var names []string
		for s := 0; s < services; s++ {
			name := fmt.Sprintf("t%ds%d", t, s)
			names = append(names, name)
			os.WriteFile(filepath.Join(defs, name), []byte(fmt.Sprintf("[main]\n@type = longrun\n@version = 1.0.0\n@description = %q\n@user = ( root )\n\n[start]\n@execute = ( run %s )\n", name, name)), 0o644)
		}
		must("tree", "create", "--format", "1", "-E", tree)
		must(append([]string{"enable", "-t", tree}, names...)...)
		must("init", tree)
		must(append([]string{"start", "-t", tree}, names[:services/2]...)...)
	}
}
