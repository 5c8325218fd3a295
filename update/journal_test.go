package update

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/treeshift/treeshift/internal/owner"
	"github.com/treeshift/treeshift/system"
)

// The journal is written a tree at a time, a line each; what lands on disk
// must be one JSON document that reads back as written.
func TestJournalStreamsTheWholeDocument(t *testing.T) {
	root := t.TempDir()
	o, err := owner.ForUID(0, root, os.Getenv)
	if err != nil {
		t.Fatal(err)
	}
	s, err := system.New(o, owner.DefaultLive)
	if err != nil {
		t.Fatal(err)
	}
	u := &Updater{Sys: s}
	saved := system.TreeStatus{Name: "a", Format: 1, Allow: []string{"root"},
		Services: []system.ServiceStatus{{Name: "s", Type: "longrun", Depends: []string{"x", "y"}, Contents: []string{}}},
		Live:     system.LiveStatus{Initialized: true, Compiled: "/c", Services: []system.LiveServiceStatus{{Name: "s", Up: true, Pid: 7}}}}
	for _, n := range []int{0, 1, 3} {
		j := journal{Schema: 1, Started: time.Date(2026, 11, 22, 4, 0, 0, 5, time.UTC), Trees: []entry{}}
		for i := 0; i < n; i++ {
			e := entry{Tree: string(rune('a' + i)), From: 1, To: 3, Gen: i + 2, Live: i%2 == 0, Committed: i == 1, Saved: saved}
			if e.Live {
				e.LiveDir = "/run/treeshift"
			}
			j.Trees = append(j.Trees, e)
		}
		if err := u.writeJournal(&j); err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(filepath.Join(s.Store.Dir, "journal", journalName))
		if err != nil {
			t.Fatal(err)
		}
		if lines := bytes.Count(got, []byte("\n")); lines != n+2 {
			t.Errorf("%d trees: journal has %d lines, want one per tree and two more:\n%s", n, lines, got)
		}
		var back journal
		if err := json.Unmarshal(got, &back); err != nil {
			t.Fatalf("%d trees: journal is not one JSON document: %v\n%s", n, err, got)
		}
		if !reflect.DeepEqual(back, j) {
			t.Fatalf("%d trees: journal reads back as\n%+v\nwant\n%+v", n, back, j)
		}
		if r, err := u.readJournal(); err != nil || !reflect.DeepEqual(*r, j) {
			t.Fatalf("%d trees: readJournal: %+v, %v", n, r, err)
		}
	}
}
