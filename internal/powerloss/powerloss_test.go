package powerloss

import (
	"os"
	"strconv"
	"strings"
	"testing"
)

// scratch is where a test writes its crash states: on tmpfs when there is
// one, as a crash state is a couple of hundred small files written and
// removed, three times faster there than on a disk. Where the checks' own
// files live does not matter to what is checked: the model decides what
// survives, and the checking runs do not sync.
func scratch(t *testing.T) string {
	t.Helper()
	if fi, err := os.Stat("/dev/shm"); err == nil && fi.IsDir() {
		if d, err := os.MkdirTemp("/dev/shm", "treeshift-powerloss-test"); err == nil {
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
	return Config{Owner: o, Scratch: scratch(t), Seed: seed(t)}
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
	cfg.States = budget(150)
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
// that never made it.)
func TestEverySyncIsNeeded(t *testing.T) {
	cfg := staged(t)
	sys, live := cfg.Owner.SystemDir(), "/run/treeshift"
	for _, c := range []struct {
		name string
		drop func(s Sync) bool
	}{
		{"fsync of the journal's temporary file", func(s Sync) bool {
			return s.Call == "write" && strings.HasPrefix(s.Path, sys+"/journal/")
		}},
		{"directory syncs of the journal", func(s Sync) bool { return s.Kind == "syncdir" && s.Path == sys+"/journal" }},
		{"barrier syncs of the system directory", func(s Sync) bool { return s.Kind == "syncfs" && s.Path == sys }},
		{"barrier syncs of the live directory", func(s Sync) bool { return s.Kind == "syncfs" && s.Path == live }},
		{"fsync of the state file's temporary file", func(s Sync) bool {
			return s.Call == "write" && strings.HasPrefix(s.Path, sys+"/.state")
		}},
		{"directory syncs of the system directory", func(s Sync) bool { return s.Kind == "syncdir" && s.Path == sys }},
	} {
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
			t.Logf("%d sync(s) left out: %s\nfirst violation: %s", res.Runs[0].Dropped, res.Summary(), res.Violations[0])
		})
	}
}
