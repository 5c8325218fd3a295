package migrate

import (
	"encoding/json"
	"fmt"
	"io"
	"path"
	"slices"
	"time"

	"github.com/treeshift/treeshift/internal/model"
)

// journalEntry is the system directory's journal entry of a run: one entry
// for all the trees the run transitions.
const journalEntry = "update"

// journalSchema is the version of the journal's own schema. Version 1
// (treeshift 0.4) recorded a tree's saved state as the status document; its
// entries are still read, for recovery, which does not use the saved state.
const journalSchema = 2

// journal is what a run records before it changes anything, so the next
// run can finish or roll back an interrupted one. Generations, not paths,
// are recorded, so a root moved between a crash and the next run is still
// understood.
type journal struct {
	Schema  int       `json:"schema"`
	Started time.Time `json:"started"`
	Trees   []entry   `json:"trees"`
}

type entry struct {
	Tree string `json:"tree"`
	From int    `json:"from"`
	To   int    `json:"to"`
	// Gen is the generation the tree was at; it is not removed before the
	// transition commits.
	Gen int `json:"gen"`
	// Live: the tree was live, its link pointing at generation Gen, in the
	// live directory LiveDir (inside the root).
	Live    bool   `json:"live"`
	LiveDir string `json:"live_dir,omitempty"`
	// Committed: the new database is current, live and verified, and that
	// is durable; what is left is cleanup.
	Committed bool  `json:"committed"`
	Saved     saved `json:"saved"`
}

// saved is what a transition must preserve of a tree, and what verify
// compares: the tree's place in the system state, its services and their
// live state, the format aside.
type saved struct {
	Enabled  bool           `json:"enabled"`
	Current  bool           `json:"current"`
	Position int            `json:"position"`
	Allow    []string       `json:"allow"`
	Services []savedService `json:"services"`
	Live     savedLive      `json:"live"`
}

type savedService struct {
	Name     string   `json:"name"`
	Type     string   `json:"type"`
	Version  string   `json:"version"`
	Enabled  bool     `json:"enabled"`
	Digest   string   `json:"digest"`
	Depends  []string `json:"depends"`
	Contents []string `json:"contents"`
}

type savedLive struct {
	Initialized bool               `json:"initialized"`
	Services    []savedLiveService `json:"services"`
}

// savedLiveService is a service's live state: whether it is up, and its
// process, which must stay the same. Uptime moves on and is not kept.
type savedLiveService struct {
	Name        string `json:"name"`
	Up          bool   `json:"up"`
	Unmonitored bool   `json:"unmonitored,omitempty"`
	Pid         int    `json:"pid"`
}

// saveOf is what a transition keeps of a tree's status. The strings are
// copies: a saved state is held for the whole run, the records it was cut
// from are not.
func saveOf(ts TreeStatus) saved {
	d := ts.Detached()
	s := saved{Enabled: d.Enabled, Current: d.Current, Position: d.Position, Allow: d.Allow,
		Services: make([]savedService, len(d.Services)), Live: savedLive{Initialized: d.Live.Initialized, Services: []savedLiveService{}}}
	for i, x := range d.Services {
		s.Services[i] = savedService{Name: x.Name, Type: x.Type, Version: x.Version, Enabled: x.Enabled, Digest: x.Digest,
			Depends: x.Depends, Contents: x.Contents}
	}
	for _, x := range d.Live.Services {
		s.Live.Services = append(s.Live.Services, savedLiveService{Name: x.Name, Up: x.Up, Unmonitored: x.Unmonitored, Pid: x.Pid})
	}
	return s
}

// writeJournal records j atomically and durably. Saved states make it large
// (megabytes at 10,000 services): it is written a tree at a time, one line
// each, so only one tree's entry is ever encoded in memory.
func (e *Engine) writeJournal(j *journal) error {
	return e.Store.WriteJournal(journalEntry, func(w io.Writer) error {
		head, err := json.Marshal(struct {
			Schema  int       `json:"schema"`
			Started time.Time `json:"started"`
		}{j.Schema, j.Started})
		if err != nil {
			return err
		}
		w.Write(head[:len(head)-1])
		io.WriteString(w, `,"trees":[`)
		for i, x := range j.Trees {
			b, err := json.Marshal(x)
			if err != nil {
				return err
			}
			if i > 0 {
				io.WriteString(w, ",")
			}
			io.WriteString(w, "\n")
			w.Write(b)
		}
		_, err = io.WriteString(w, "\n]}\n")
		return err
	})
}

// readJournal returns the open journal, or nil. A journal that does not
// read, or whose entries name trees, generations or live directories no
// run could have written, is refused: recovering from it could touch files
// outside the system and live directories.
func (e *Engine) readJournal() (*journal, error) {
	names, err := e.Store.Journals()
	if err != nil || len(names) == 0 {
		return nil, err
	}
	bad := func(why string) error {
		return &InconsistentError{fmt.Sprintf("%s: %s: not a journal treeshift can read: remove it only after checking the trees by hand",
			e.Host(e.Store.JournalPath(journalEntry)), why)}
	}
	for _, n := range names {
		if n != journalEntry && n != applyEntry {
			return nil, &InconsistentError{fmt.Sprintf("%s: unexpected journal entry: remove it only after checking the trees by hand",
				e.Host(e.Store.JournalPath(n)))}
		}
	}
	if !slices.Contains(names, journalEntry) {
		return nil, nil
	}
	b, err := e.Store.ReadJournal(journalEntry)
	if err != nil {
		return nil, err
	}
	var j journal
	if err := json.Unmarshal(b, &j); err != nil {
		return nil, bad(err.Error())
	}
	if j.Schema != 1 && j.Schema != journalSchema {
		return nil, bad(fmt.Sprintf("schema %d (this treeshift reads 1 and %d)", j.Schema, journalSchema))
	}
	seen := map[string]bool{}
	for i, x := range j.Trees {
		switch {
		case model.CheckName(x.Tree) != nil:
			return nil, bad(fmt.Sprintf("entry %d: bad tree name %q", i+1, x.Tree))
		case seen[x.Tree]:
			return nil, bad(fmt.Sprintf("entry %d: tree %s listed twice", i+1, x.Tree))
		case x.Gen < 1:
			return nil, bad(fmt.Sprintf("entry %d: tree %s: generation %d", i+1, x.Tree, x.Gen))
		case e.Registry.Version(x.From) == nil || e.Registry.Version(x.To) == nil:
			return nil, bad(fmt.Sprintf("entry %d: tree %s: format %d to %d", i+1, x.Tree, x.From, x.To))
		case x.Live && (x.LiveDir == "" || !path.IsAbs(x.LiveDir) || path.Clean(x.LiveDir) != x.LiveDir):
			return nil, bad(fmt.Sprintf("entry %d: tree %s: live directory %q", i+1, x.Tree, x.LiveDir))
		}
		seen[x.Tree] = true
	}
	return &j, nil
}

// Pending lists the trees of an interrupted run, for other commands to warn
// about or refuse to touch.
func (e *Engine) Pending() ([]string, error) {
	j, err := e.readJournal()
	if err != nil || j == nil {
		return nil, err
	}
	var names []string
	for _, x := range j.Trees {
		names = append(names, x.Tree)
	}
	return names, nil
}
