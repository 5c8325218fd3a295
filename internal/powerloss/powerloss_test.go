package powerloss

import (
	"fmt"
	"github.com/treeshift/treeshift/internal/scratch"
	"os"
	"strconv"
	"strings"
	"testing"
)

// stateDir is where a test writes its crash states: on tmpfs when there is
// one, as a crash state is a couple of hundred small files written and
// removed, three times faster there than on a disk. Where the checks' own
// files live does not matter to what is checked: the model decides what
// survives, and the checking runs do not sync.
func stateDir(t *testing.T) string {
	t.Helper()
	if fi, err := os.Stat("/dev/shm"); err == nil && fi.IsDir() {
		if d, err := scratch.DirIn("/dev/shm", "treeshift-powerloss-test"); err == nil {
			t.Cleanup(func() { os.RemoveAll(d) })
			return d
		}
	}
	return t.TempDir()
}

// budget is the number of crash states a test checks: a bounded sample in
// make test, every state enumerated with TREESHIFT_CRASH_ALL=1 (make
// crash), or TREESHIFT_POWERLOSS_STATES.
func budget(sample int) int {
	if v, err := strconv.Atoi(os.Getenv("TREESHIFT_POWERLOSS_STATES")); err == nil {
		return v
	}
	if os.Getenv("TREESHIFT_CRASH_ALL") != "" {
		return 0
	}
	return sample
}

// seed varies the sample from run to run when TREESHIFT_POWERLOSS_SEED
// says so; a failure names the seed that found it.
func seed(t *testing.T) uint64 {
	v, err := strconv.ParseUint(os.Getenv("TREESHIFT_POWERLOSS_SEED"), 10, 64)
	if err != nil {
		return 1
	}
	t.Logf("seed %d", v)
	return v
}

func staged(t *testing.T) Config {
	t.Helper()
	root := t.TempDir()
	o, err := Stage(root)
	if err != nil {
		t.Fatal(err)
	}
	return Config{Owner: o, Scratch: stateDir(t), Seed: seed(t)}
}

func report(t *testing.T, res *Result) {
	t.Helper()
	t.Log(res.Summary())
	for _, r := range res.Runs {
		t.Logf("%s: %d calls, %d units, %d syncs; %d crash points, %d states enumerated, %d tried, %d checked; committed at %s",
			r.Name, r.Calls, r.Units, r.Syncs, r.Points, r.Enumerated, r.Tried, r.States, r.Commit)
	}
}

// A power loss at any point of an update, or of the recovery of an
// interrupted one, leaves a system the next update recovers: no live link
// dangles, the system is as it was or as converted, and the update after
// converts it.
func TestPowerLossAtEveryPoint(t *testing.T) {
	cfg := staged(t)
	cfg.Recovery = true
	cfg.States = budget(300)
	res, err := Explore(cfg)
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range res.Violations {
		t.Error(v)
	}
	report(t, res)
	if len(res.Runs) != 3 {
		t.Fatalf("%d runs recorded, want the update and two recoveries", len(res.Runs))
	}
	for _, r := range res.Runs {
		if r.Commit == "" {
			t.Errorf("%s: no crash point recovers to the converted system", r.Name)
		}
	}
	if min := min(cfg.States, 100); res.States < min {
		t.Errorf("only %d crash states checked, want at least %d", res.States, min)
	}
}

// Each sync the update makes is needed: the same run with one of them left
// out of its trace loses the update in some crash state. (The dropped sync
// is left out of the model, not the run: what the explorer judges is a run
// that never made it.) Make crash also leaves each sync out alone, and
// checks which ones the explorer cannot show needed (see covered).
func TestEverySyncIsNeeded(t *testing.T) {
	cfg := staged(t)
	sys, live := cfg.Owner.SystemDir(), "/run/treeshift"
	all := os.Getenv("TREESHIFT_CRASH_ALL") != ""
	for _, c := range []struct {
		name string
		drop func(s Sync) bool
		// sample: make test leaves out one sync of each kind (fsync,
		// directory sync, filesystem sync), as each costs a recorded run.
		sample bool
	}{
		{"barrier syncs of the system directory", func(s Sync) bool { return s.Kind == "syncfs" && s.Path == sys }, true},
		{"barrier syncs of the live directory", func(s Sync) bool { return s.Kind == "syncfs" && s.Path == live }, true},
		{"first barrier", func(s Sync) bool { return s.Kind == "syncfs" && s.N <= 2 }, false},
		{"second barrier", func(s Sync) bool { return s.Kind == "syncfs" && s.N > 2 }, false},
	} {
		if !c.sample && !all {
			continue
		}
		t.Run(c.name, func(t *testing.T) {
			cfg := cfg
			cfg.Drop, cfg.States, cfg.Stop = c.drop, budget(100), 1
			res, err := Explore(cfg)
			if err != nil {
				t.Fatal(err)
			}
			if res.Runs[0].Dropped == 0 {
				t.Fatalf("no sync matched")
			}
			if res.OK() {
				report(t, res)
				t.Fatalf("with %d sync(s) left out, no crash state lost the update", res.Runs[0].Dropped)
			}
			t.Logf("%d sync(s) left out: %s\n%s", res.Runs[0].Dropped, res.Summary(), firstLines(res.Violations[0].String(), 2))
		})
	}
	if !all {
		return
	}
	// Each sync alone, named by what it syncs and which time it does.
	// covered are those whose loss no crash state of this run shows,
	// with why they are made all the same (docs/DURABILITY.md).
	// The update syncs nothing but its two barriers (docs/DURABILITY.md),
	// each of which the explorer must show needed: none is covered.
	covered := map[string]string{}
	probe, err := Explore(Config{Owner: cfg.Owner, Scratch: cfg.Scratch, States: 1})
	if err != nil {
		t.Fatal(err)
	}
	for n := 1; n <= probe.Runs[0].Syncs; n++ {
		var label, call string
		seen := map[string]int{}
		c := cfg
		c.Drop = func(s Sync) bool {
			key := s.Kind + " " + s.Path
			if strings.HasPrefix(s.Path, sys+"/journal/.") || strings.HasPrefix(s.Path, sys+"/.state") {
				key = s.Kind + " " + s.Path[:strings.LastIndex(s.Path, "/")+2] + "…" // a temporary name
			}
			seen[key]++
			if s.N != n {
				return false
			}
			label, call = fmt.Sprintf("%s #%d", key, seen[key]), s.Call
			return true
		}
		c.States, c.Stop = 0, 1
		res, err := Explore(c)
		if err != nil {
			t.Fatal(err)
		}
		why, isCovered := covered[label]
		switch {
		case res.OK() && !isCovered:
			t.Errorf("sync %d (%s, in %s) left out alone: no crash state of %d shows it needed: say why in covered and docs/DURABILITY.md", n, label, call, res.States)
		case !res.OK() && isCovered:
			t.Errorf("sync %d (%s) left out alone loses the update, yet is listed as covered: %s", n, label, res.Violations[0].Problem)
		case res.OK():
			t.Logf("sync %2d %-45s not needed by this run (%d crash states): %s", n, label, res.States, why)
		default:
			t.Logf("sync %2d %-45s needed: %s", n, label, firstLines(res.Violations[0].Problem, 1))
		}
	}
}

// firstLines is the first n lines of s.
func firstLines(s string, n int) string {
	lines := strings.SplitN(s, "\n", n+1)
	return strings.Join(lines[:min(n, len(lines))], "\n")
}
