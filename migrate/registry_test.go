package migrate

import (
	"reflect"
	"strings"
	"testing"

	"github.com/treeshift/treeshift/format"
	"github.com/treeshift/treeshift/internal/suggest"
)

func TestShippedDirectives(t *testing.T) {
	r := Default()
	var stamped []int
	for _, c := range format.All() {
		stamped = append(stamped, c.Version())
	}
	want := append([]int{0}, stamped...) // and the empty version, ""
	var got []int
	for _, v := range r.Versions {
		got = append(got, v.Number)
		if _, err := format.Get(v.Number); err != nil {
			t.Errorf("version %s has no codec: %v", format.Name(v.Number), err)
		}
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("directives declare versions %v, codecs exist for %v", got, want)
	}
	// The everyday path, any stamped version to the newest with services
	// running, is ANYTIME.
	for _, v := range stamped {
		for _, h := range r.Path(v, r.Newest()) {
			if h.Tunability != Anytime || !h.Declared {
				t.Errorf("upgrade %d -> %d: hop %+v is not a declared ANYTIME hop", v, r.Newest(), h)
			}
		}
	}
	// Every level is reached by a shipped path between real versions.
	used := map[Tunability]string{}
	for _, a := range want {
		for _, b := range want {
			for _, h := range r.Path(a, b) {
				if !h.Declared {
					t.Errorf("%s -> %s: an undeclared hop %+v", format.Name(a), format.Name(b), h)
				}
				used[h.Tunability] = format.Name(h.From) + " -> " + format.Name(h.To)
			}
		}
	}
	for l := Anytime; l <= AtCreation; l++ {
		if used[l] == "" {
			t.Errorf("no shipped path reaches %s", l)
		}
	}
}

func hops(hs []Hop) string {
	var s []string
	for _, h := range hs {
		d := ""
		if !h.Declared {
			d = "*"
		}
		s = append(s, strings.Join([]string{itoa(h.From), itoa(h.To), h.Tunability.String() + d}, ":"))
	}
	return strings.Join(s, " ")
}

func itoa(n int) string { return string(rune('0' + n)) }

func TestPath(t *testing.T) {
	r, err := ParseRegistry(`
version 1
version 2
upgrade_from 1 ANYTIME
upgrade_from 4 WHEN_OFFLINE
version 3
upgrade_from 2 ANYTIME
upgrade_from 1 WHEN_DISABLED
version 4
upgrade_from 3 ANYTIME
upgrade_from 2 WHEN_OFFLINE
version 5
upgrade_from 4 AT_CREATION
upgrade_from 3 WHEN_UNMONITORED
`)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		from, to int
		want     string
	}{
		{1, 1, ""},
		// Declared direct hop wins over a longer path, however permissive.
		{1, 3, "1:3:WHEN_DISABLED"},
		// Two two-hop paths: 1-2-4 (worst WHEN_OFFLINE) and 1-3-4 (worst
		// WHEN_DISABLED): the less demanding one.
		{1, 4, "1:2:ANYTIME 2:4:WHEN_OFFLINE"},
		// Several hops where no direct one is declared.
		{4, 1, "4:1:WHEN_UNMANAGED*"},
		{4, 3, "4:2:WHEN_OFFLINE 2:3:ANYTIME"},
		// AT_CREATION is never travelled when another way exists...
		{4, 5, "4:2:WHEN_OFFLINE 2:3:ANYTIME 3:5:WHEN_UNMONITORED"},
		// ...and no path from 5 is declared at all: the default.
		{5, 1, "5:1:WHEN_UNMANAGED*"},
	} {
		if got := hops(r.Path(tc.from, tc.to)); got != tc.want {
			t.Errorf("Path(%d, %d) = %q, want %q", tc.from, tc.to, got, tc.want)
		}
	}
	only, _ := ParseRegistry("version 1\nversion 2\nupgrade_from 1 AT_CREATION\n")
	if got := hops(only.Path(1, 2)); got != "1:2:AT_CREATION" {
		t.Errorf("AT_CREATION-only path = %q", got)
	}
}

func TestPathTieBreakIsDeterministic(t *testing.T) {
	r, _ := ParseRegistry(`
version 1
version 2
upgrade_from 1 ANYTIME
version 3
upgrade_from 1 ANYTIME
version 4
upgrade_from 3 ANYTIME
upgrade_from 2 ANYTIME
`)
	for i := 0; i < 20; i++ {
		if got := hops(r.Path(1, 4)); got != "1:2:ANYTIME 2:4:ANYTIME" {
			t.Fatalf("Path(1, 4) = %q, want the path through the lower version", got)
		}
	}
}

func TestParseRegistryErrors(t *testing.T) {
	for text, want := range map[string]string{
		"upgrade_from 1 ANYTIME":                         "line 1: upgrade_from before any version",
		"version 1\nversion 1":                           "line 2: version 1 declared twice",
		"version x":                                      `line 1: version "x" is not a positive number or ""`,
		"version 1\nupgrade_from 1 ANYTIME":              "line 2: version 1 declared as its own source",
		"version 1\nversion 2\nupgrade_from 1 SOMETIMES": `line 3: unknown tunability "SOMETIMES"`,
		"version 2\nupgrade_from 7 ANYTIME":              "version 2 declares source 7, which is not a declared version",
		"version 1\nversion 2\nupgrade_from 1 ANYTIME\nupgrade_from 1 ANYTIME": "line 4: version 2 declares source 1 twice",
		"version 1\nupgrade 2": `line 2: expected "version N" or "upgrade_from N TUNABILITY", found "upgrade 2"`,
	} {
		_, err := ParseRegistry(text)
		if err == nil || !strings.HasPrefix(err.Error(), want) {
			t.Errorf("%q: got %v, want %q", text, err, want)
		}
	}
}

// Every level against every combination of live state. The levels are
// cumulative (Sun Cluster's order): each condition below says by hand the
// most demanding level it satisfies, and the test checks that it
// satisfies exactly that level and every level below it.
func TestTunabilityLevels(t *testing.T) {
	const T = "t"
	mk := func(live, enabled bool, up, monitored []string) Condition {
		return Condition{Tree: T, Live: live, Enabled: enabled, Up: up, Monitored: monitored}
	}
	oneshot := []string{"mount"}
	sup := []string{"mount", "sshd"}
	for _, c := range []struct {
		name    string
		c       Condition
		highest Tunability
	}{
		{"not live, disabled", mk(false, false, nil, nil), WhenUnmanaged},
		{"not live, enabled", mk(false, true, nil, nil), WhenOffline},
		{"live, disabled, all down", mk(true, false, nil, nil), WhenDisabled},
		{"live, enabled, all down", mk(true, true, nil, nil), WhenOffline},
		{"live, disabled, a oneshot up", mk(true, false, oneshot, nil), WhenUnmonitored},
		{"live, enabled, a oneshot up", mk(true, true, oneshot, nil), WhenUnmonitored},
		{"live, disabled, supervision paused", mk(true, false, sup, nil), WhenUnmonitored},
		{"live, enabled, supervision paused", mk(true, true, sup, nil), WhenUnmonitored},
		{"live, disabled, supervised", mk(true, false, sup, []string{"sshd"}), Anytime},
		{"live, enabled, supervised", mk(true, true, sup, []string{"sshd"}), Anytime},
	} {
		for l := Anytime; l <= AtCreation; l++ {
			ok, advice := l.Check(c.c, suggest.Prefix{})
			if want := l <= c.highest; ok != want {
				t.Errorf("%s: %s satisfied=%v, want %v (%s)", c.name, l, ok, want, advice)
			}
			if !ok && advice == "" {
				t.Errorf("%s: %s refused without advice", c.name, l)
			}
		}
	}
	// The advice is the commands to run, in order, with --root.
	cmd := suggest.Prefix{Root: "/mnt"}
	for _, c := range []struct {
		l      Tunability
		c      Condition
		advice string
	}{
		{WhenUnmonitored, mk(true, true, sup, []string{"sshd"}), "pause supervision of services sshd of tree t (they keep running): treeshift --root /mnt unmonitor -t t sshd"},
		{WhenOffline, mk(true, true, sup, nil), "stop services mount sshd of tree t: treeshift --root /mnt stop -t t mount sshd"},
		{WhenDisabled, mk(true, true, oneshot, nil), "stop services mount of tree t, disable tree t: treeshift --root /mnt stop -t t mount; treeshift --root /mnt tree disable t"},
		{WhenDisabled, mk(true, true, nil, nil), "disable tree t: treeshift --root /mnt tree disable t"},
		{WhenUnmanaged, mk(true, true, sup, []string{"sshd"}), "stop services mount sshd of tree t, make tree t not live, disable tree t: treeshift --root /mnt stop -t t mount sshd; treeshift --root /mnt uninit t; treeshift --root /mnt tree disable t"},
		{WhenUnmanaged, mk(true, false, nil, nil), "make tree t not live: treeshift --root /mnt uninit t"},
		{AtCreation, mk(false, false, nil, nil), "tree t cannot be migrated: recreate it"},
	} {
		if ok, advice := c.l.Check(c.c, cmd); ok || advice != c.advice {
			t.Errorf("%s on %+v = %v, %q\nwant refusal %q", c.l, c.c, ok, advice, c.advice)
		}
	}
	idle := mk(false, false, nil, nil)
	liveIdle := mk(true, false, nil, nil)
	// An undeclared hop takes the default, WHEN_UNMANAGED.
	r, _ := ParseRegistry("version 1\nversion 2\n")
	p, err := r.NewPlan(liveIdle, 1, 2, suggest.Prefix{})
	if err != nil {
		t.Fatal(err)
	}
	if p.OK() || p.Hops[0].Tunability != WhenUnmanaged || p.Hops[0].Declared {
		t.Errorf("default hop %+v", p.Hops[0])
	}
	if p, _ := r.NewPlan(idle, 1, 2, suggest.Prefix{}); !p.OK() {
		t.Errorf("default hop refused a tree that is not live")
	}
	if _, err := r.NewPlan(idle, 7, 2, suggest.Prefix{}); err == nil || err.Error() != "tree t is in format 7, which this treeshift does not know: refused" {
		t.Errorf("unknown source: %v", err)
	}
}
