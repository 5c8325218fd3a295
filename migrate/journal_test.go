package migrate

import (
	"bytes"
	"encoding/json"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"
)

// The journal is written a tree at a time, a line each; what lands on disk
// must be one JSON document that reads back as written.
func TestJournalStreamsTheWholeDocument(t *testing.T) {
	e := newSmall(t)
	sv := saved{Enabled: true, Allow: []string{"root"},
		Services: []savedService{{Name: "s", Type: "longrun", Depends: []string{"x", "y"}, Contents: []string{}}},
		Live:     savedLive{Initialized: true, Services: []savedLiveService{{Name: "s", Up: true, Pid: 7}}}}
	for _, n := range []int{0, 1, 3} {
		j := journal{Schema: journalSchema, Started: time.Date(2026, 11, 22, 4, 0, 0, 5, time.UTC), Trees: []entry{}}
		for i := 0; i < n; i++ {
			x := entry{Tree: string(rune('a' + i)), From: 1, To: 3, Gen: i + 2, Live: i%2 == 0, Committed: i == 1, Saved: sv}
			if x.Live {
				x.LiveDir = "/run/treeshift"
			}
			j.Trees = append(j.Trees, x)
		}
		if err := e.writeJournal(&j); err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(e.Host(e.Store.JournalPath(journalEntry)))
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
		if r, err := e.readJournal(); err != nil || !reflect.DeepEqual(*r, j) {
			t.Fatalf("%d trees: readJournal: %+v, %v", n, r, err)
		}
	}
}

// A journal naming what no run writes — a tree name that is a path, a
// generation that is not one, a relative live directory — is refused,
// naming the file, before recovery acts on it.
func TestJournalEntriesAreValidated(t *testing.T) {
	e := newSmall(t)
	for _, c := range []struct{ line, msg string }{
		{`{"tree":"../../../../x","from":1,"to":3,"gen":2,"live":false,"committed":false}`, `bad tree name "../../../../x"`},
		{`{"tree":"t","from":1,"to":3,"gen":0,"live":false,"committed":false}`, "generation 0"},
		{`{"tree":"t","from":1,"to":9,"gen":2,"live":false,"committed":false}`, "format 1 to 9"},
		{`{"tree":"t","from":1,"to":3,"gen":2,"live":true,"live_dir":"run/x","committed":false}`, `live directory "run/x"`},
	} {
		doc := `{"schema":2,"started":"2026-11-22T04:00:00Z","trees":[` + c.line + "]}\n"
		os.MkdirAll(e.Host(e.Store.JournalPath("")), 0o700)
		os.WriteFile(e.Host(e.Store.JournalPath(journalEntry)), []byte(doc), 0o600)
		_, err := e.Recover()
		if err == nil || !strings.Contains(err.Error(), c.msg) || !strings.Contains(err.Error(), e.Host(e.Store.JournalPath(journalEntry))) {
			t.Errorf("%s: %v", c.line, err)
		}
	}
}
