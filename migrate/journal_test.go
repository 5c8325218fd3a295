package migrate

import (
	"bytes"
	"io"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"
)

// writeTestJournal writes a schema 3 journal of n trees as a run does, and
// returns its bytes and the trees.
func writeTestJournal(t *testing.T, e *Engine, n int) ([]byte, *journal) {
	t.Helper()
	sv := saved{Enabled: true, Allow: []string{"root"},
		Services: []savedService{{Name: "s", Type: "longrun", Depends: []string{"x", "y"}, Contents: []string{}}},
		Live:     savedLive{Initialized: true, Services: []savedLiveService{{Name: "s", Up: true, Pid: 7}}}}
	b, _, _ := savedJSON(sv)
	j := &journal{Schema: journalSchema, Started: time.Date(2026, 11, 22, 4, 0, 0, 5, time.UTC), File: journalEntry,
		Stamp: &stampMove{From: 1, To: 3}}
	for i := 0; i < n; i++ {
		x := entry{Tree: string(rune('a' + i)), From: 1, To: 3, Gen: i + 2, NewGen: i + 3, Live: i%2 == 0, Committed: i == 1}
		if x.Live {
			x.LiveDir = "/run/treeshift"
		}
		j.Trees = append(j.Trees, x)
	}
	p := e.Host(e.Store.JournalPath(journalEntry))
	os.Remove(p)
	err := e.Store.CreateJournal(journalEntry, func(w io.Writer) error {
		jw := newJournalWriter(w, j)
		for _, x := range j.Trees {
			jw.line(x, b)
		}
		return jw.close()
	})
	if err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return got, j
}

// The journal is written a tree at a time, a line each, between a first
// line and a last one that counts and sums them; it reads back as written,
// each tree's saved state with it.
func TestJournalStreamsOneLinePerTree(t *testing.T) {
	e := newSmall(t)
	for _, n := range []int{0, 1, 3} {
		got, j := writeTestJournal(t, e, n)
		if lines := bytes.Count(got, []byte("\n")); lines != n+2 {
			t.Errorf("%d trees: journal has %d lines, want one per tree and two more:\n%s", n, lines, got)
		}
		r, err := e.readJournal()
		if err != nil || r.Torn || !reflect.DeepEqual(*r, *j) {
			t.Fatalf("%d trees: readJournal: %+v, %v; want %+v", n, r, err, j)
		}
		if n > 0 {
			sv, err := e.savedOf("a")
			if err != nil || len(sv.Live.Services) != 1 || sv.Live.Services[0].Pid != 7 {
				t.Errorf("saved state read back: %+v, %v", sv, err)
			}
		}
	}
}

// Every prefix of a journal — what a power loss before the run's first
// barrier can leave of it — reads as torn, with the trees whose lines are
// whole; a journal changed after it was written does not read.
func TestJournalCutShortIsTorn(t *testing.T) {
	e := newSmall(t)
	full, _ := writeTestJournal(t, e, 3)
	p := e.Host(e.Store.JournalPath(journalEntry))
	for cut := 0; cut < len(full); cut++ {
		os.WriteFile(p, full[:cut], 0o600)
		r, err := e.readJournal()
		if err != nil || !r.Torn {
			t.Fatalf("cut at %d of %d: %+v, %v; want torn", cut, len(full), r, err)
		}
		whole := bytes.Count(full[:cut], []byte("\n")) - 1
		if want := max(0, min(whole, 3)); len(r.Trees) != want {
			t.Fatalf("cut at %d: %d trees read, want %d", cut, len(r.Trees), want)
		}
	}
	changed := bytes.Replace(full, []byte(`"gen":2`), []byte(`"gen":5`), 1)
	os.WriteFile(p, changed, 0o600)
	if _, err := e.readJournal(); err == nil || !strings.Contains(err.Error(), "does not match its last line") {
		t.Errorf("a changed journal: %v", err)
	}
	// A committed journal was durable before it was renamed: cut short, it
	// is not a power loss's doing.
	os.Remove(p)
	os.WriteFile(e.Host(e.Store.JournalPath(committedEntry)), full[:len(full)-5], 0o600)
	if _, err := e.readJournal(); err == nil {
		t.Error("a committed journal cut short was read")
	}
}

// A journal of schema 2, as treeshift 0.5 wrote it, is still read: an
// update interrupted before an upgrade of treeshift is recovered after it.
func TestJournalSchema2IsRead(t *testing.T) {
	e := newSmall(t)
	doc := `{"schema":2,"started":"2026-11-22T04:00:00Z","trees":[` + "\n" +
		`{"tree":"a","from":1,"to":3,"gen":2,"live":true,"live_dir":"/run/treeshift","committed":true,"saved":{"enabled":true}},` + "\n" +
		`{"tree":"b","from":2,"to":3,"gen":4,"live":false,"committed":false,"saved":{}}` + "\n]}\n"
	os.MkdirAll(e.Host(e.Store.JournalPath("")), 0o700)
	os.WriteFile(e.Host(e.Store.JournalPath(journalEntry)), []byte(doc), 0o600)
	j, err := e.readJournal()
	if err != nil {
		t.Fatal(err)
	}
	want := []entry{{Tree: "a", From: 1, To: 3, Gen: 2, Live: true, LiveDir: "/run/treeshift", Committed: true}, {Tree: "b", From: 2, To: 3, Gen: 4}}
	if j.Schema != 2 || j.Torn || !reflect.DeepEqual(j.Trees, want) {
		t.Errorf("read %+v", j)
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

// A journal past the run's buffer is written while the trees are checked:
// it is the same journal, and a run that gives it up leaves no entry.
func TestJournalSpillsPastItsBuffer(t *testing.T) {
	e := newSmall(t)
	want, j := writeTestJournal(t, e, 5)
	p := e.Host(e.Store.JournalPath(journalEntry))
	os.Remove(p)
	b, _, _ := savedJSON(saved{Enabled: true, Allow: []string{"root"},
		Services: []savedService{{Name: "s", Type: "longrun", Depends: []string{"x", "y"}, Contents: []string{}}},
		Live:     savedLive{Initialized: true, Services: []savedLiveService{{Name: "s", Up: true, Pid: 7}}}})
	sink := &journalSink{open: func(w func(io.Writer) error) error { return e.Store.CreateJournal(journalEntry, w) }, limit: 64}
	jw := newJournalWriter(sink, j)
	for _, x := range j.Trees {
		jw.line(x, b)
	}
	if err := jw.close(); err != nil {
		t.Fatal(err)
	}
	if sink.pw == nil {
		t.Fatal("the journal did not outgrow a buffer of 64 bytes")
	}
	if err := sink.finish(nil); err != nil {
		t.Fatal(err)
	}
	if got, err := os.ReadFile(p); err != nil || !bytes.Equal(got, want) {
		t.Fatalf("journal written past the buffer (%v):\n%s\nwant:\n%s", err, got, want)
	}
	os.Remove(p)
	sink = &journalSink{open: func(w func(io.Writer) error) error { return e.Store.CreateJournal(journalEntry, w) }, limit: 64}
	jw = newJournalWriter(sink, j)
	for _, x := range j.Trees {
		jw.line(x, b)
	}
	if err := sink.finish(errHeld); err != errHeld {
		t.Fatalf("given up: %v", err)
	}
	if names, err := e.Store.Journals(); err != nil || len(names) != 0 {
		t.Fatalf("a journal given up left entries %v (%v)", names, err)
	}
}
