// Package treetest builds trees for tests: a fixed realistic one and random
// ones from a seed, so property tests are reproducible.
package treetest

import (
	"fmt"
	"math/rand/v2"
	"slices"

	"github.com/treeshift/treeshift/internal/compile"
	"github.com/treeshift/treeshift/internal/model"
)

// Sample returns a tree with every service type, dependencies, a bundle, a
// disabled record, custom scripts, environment and awkward bytes in values.
func Sample() *model.Tree {
	t := &model.Tree{Name: "boot", Allow: []string{"alice", "root"}}
	add := func(s model.Service) {
		if s.Digest == "" {
			s.Digest = fmt.Sprintf("sha256:%064x", len(t.Services)+1)
		}
		s.Source = "/etc/treeshift/service/" + s.Name
		if s.Version == "" {
			s.Version = "1.0.0"
		}
		t.Put(s)
	}
	add(model.Service{Name: "mount-run", Type: model.Oneshot, Description: "mount /run", User: []string{"root"}, Enabled: true,
		Start: model.Script{Build: "auto", Execute: "mount -t tmpfs tmpfs /run"},
		Stop:  model.Script{Build: "auto", Execute: "umount /run"}})
	add(model.Service{Name: "syslogd", Type: model.Longrun, Description: "system \"logger\"\nsecond line \\ backslash", User: []string{"root"},
		Depends: []string{"mount-run"}, Enabled: true,
		Start: model.Script{Build: "custom", Shebang: "/bin/sh", Execute: "exec syslogd -n\n# comment=with=equals"},
		Env:   []model.EnvVar{{Key: "OPTS", Value: "-n -O /var/log/messages"}, {Key: "EMPTY", Value: ""}}})
	add(model.Service{Name: "ntpd", Type: model.Classic, Description: "time", User: []string{"ntp", "root"},
		Depends: []string{"syslogd", "mount-run"}, Enabled: true,
		Start: model.Script{Build: "auto", Execute: "foreground { mkdir -p /run/ntpd }\nntpd -d"}})
	add(model.Service{Name: "net", Type: model.Bundle, Description: "networking", Contents: []string{"ntpd", "syslogd"}, Enabled: true})
	add(model.Service{Name: "old-daemon", Type: model.Longrun, Description: "disabled", User: []string{"root"},
		Start: model.Script{Build: "auto", Execute: "old-daemon"}})
	return Finish(t)
}

// Finish computes t's index and returns t; it panics on a cycle, which a
// fixture must not have.
func Finish(t *model.Tree) *model.Tree {
	x, err := compile.Index(t)
	if err != nil {
		panic(err)
	}
	t.Index = x
	return t
}

// Random returns a valid tree of up to n services drawn from r: random types,
// an acyclic dependency graph, random enabled flags (closed under
// dependencies) and random strings including newlines and backslashes.
func Random(r *rand.Rand, n int) *model.Tree {
	str := func() string {
		const alphabet = "abc xyz=\\\n\"{}()é\t"
		b := make([]rune, r.IntN(12))
		for i := range b {
			b[i] = []rune(alphabet)[r.IntN(len([]rune(alphabet)))]
		}
		return string(b)
	}
	t := &model.Tree{Name: fmt.Sprintf("t%d", r.IntN(1000))}
	for i := r.IntN(3); i > 0; i-- {
		t.Allow = append(t.Allow, fmt.Sprintf("user%d", r.IntN(10)))
	}
	slices.Sort(t.Allow)
	t.Allow = slices.Compact(t.Allow)
	count := r.IntN(n + 1)
	types := []string{model.Classic, model.Longrun, model.Oneshot, model.Bundle}
	var svcs []model.Service
	for i := 0; i < count; i++ {
		s := model.Service{
			Name: fmt.Sprintf("s%03d", i), Type: types[r.IntN(4)], Description: str(), Version: "0.1.2",
			Enabled: r.IntN(4) != 0, Source: "/src/" + str(), Digest: "sha256:" + fmt.Sprint(r.Uint64()),
		}
		// Depend only on earlier services: acyclic by construction.
		var deps []string
		for j := 0; j < i && len(deps) < 3; j++ {
			if r.IntN(i+1) == 0 {
				deps = append(deps, svcs[j].Name)
			}
		}
		if s.Type == model.Bundle {
			if len(deps) == 0 {
				s.Type = model.Longrun
			} else {
				s.Contents = deps
			}
		}
		if s.Type != model.Bundle {
			s.Depends = deps
			s.User = []string{"root"}
			s.Start = model.Script{Build: "auto", Execute: str()}
			if r.IntN(2) == 0 {
				s.Stop = model.Script{Build: "custom", Shebang: "/bin/sh", Execute: str()}
			}
			for k := r.IntN(3); k > 0; k-- {
				s.Env = append(s.Env, model.EnvVar{Key: fmt.Sprintf("K%d", k), Value: str()})
			}
		}
		svcs = append(svcs, s)
	}
	// Close enabled under dependencies, from the last service down.
	for i := len(svcs) - 1; i >= 0; i-- {
		if !svcs[i].Enabled {
			continue
		}
		for _, d := range append(slices.Clone(svcs[i].Depends), svcs[i].Contents...) {
			for j := range svcs {
				if svcs[j].Name == d {
					svcs[j].Enabled = true
				}
			}
		}
	}
	t.Services = svcs
	return Finish(t)
}
