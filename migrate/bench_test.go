package migrate_test

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/treeshift/treeshift/internal/owner"
	"github.com/treeshift/treeshift/migrate"
)

// benchEngine stages trees × services longruns in format 1, all live.
func benchEngine(b *testing.B, trees, services int) *migrate.Engine {
	root := b.TempDir()
	defs := filepath.Join(root, "etc/treeshift/service")
	os.MkdirAll(defs, 0o755)
	var names []string
	for i := 0; i < services; i++ {
		n := fmt.Sprintf("s%04d", i)
		dep := ""
		if i%10 != 0 {
			dep = fmt.Sprintf("@depends = ( s%04d )", i-1)
		}
		os.WriteFile(filepath.Join(defs, n), []byte(fmt.Sprintf("[main]\n@type = longrun\n@version = 1.0.0\n@description = \"svc\"\n@user = ( root )\n%s\n[start]\n@execute = ( sleep infinity )\n", dep)), 0o644)
		names = append(names, n)
	}
	o, _ := owner.ForUID(0, root, os.Getenv)
	s, err := migrate.Open(o, migrate.Options{})
	if err != nil {
		b.Fatal(err)
	}
	for t := 0; t < trees; t++ {
		n := fmt.Sprintf("t%03d", t)
		for _, err := range []error{
			s.CreateTree(n, migrate.CreateOptions{Format: 1, Enable: true}),
			s.EnableServices(n, names),
			s.Init(n),
			s.Start(n, names[:1]),
		} {
			if err != nil {
				b.Fatal(err)
			}
		}
	}
	return s
}

// update runs an update of every tree to format to and fails on any error.
func update(b *testing.B, s *migrate.Engine, to int, want string) {
	r, err := s.Update(nil, to)
	if err != nil {
		b.Fatal(err)
	}
	for _, t := range r.Trees {
		if want != "" && t.Outcome != want {
			b.Fatalf("tree %s: %s, want %s", t.Tree, t.Outcome, want)
		}
	}
}

// BenchmarkUpdate10x20 updates 10 live trees of 20 services from format 1
// to 3 and back to 1 per iteration, in one run each way, as the command
// does (the downgrade needs the services down).
func BenchmarkUpdate10x20(b *testing.B) {
	s := benchEngine(b, 10, 20)
	names, _ := s.Ordered()
	for _, n := range names {
		s.Stop(n, []string{"s0000"})
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		update(b, s, 3, migrate.Updated)
		update(b, s, 1, migrate.Updated)
	}
}

// BenchmarkNothingToDo10k is the second run after an upgrade at 10,000
// services: every tree is checked and found current.
func BenchmarkNothingToDo10k(b *testing.B) {
	s := benchEngine(b, 100, 100)
	update(b, s, 3, "")
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		update(b, s, 3, migrate.Unchanged)
	}
}

// BenchmarkUpdate100x100 is BenchmarkUpdate10x20 at 10,000 services.
func BenchmarkUpdate100x100(b *testing.B) {
	s := benchEngine(b, 100, 100)
	names, _ := s.Ordered()
	for _, n := range names {
		s.Stop(n, []string{"s0000"})
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		update(b, s, 3, migrate.Updated)
		update(b, s, 1, migrate.Updated)
	}
}
