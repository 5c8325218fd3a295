package migrate

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"path"
	"slices"
	"time"

	"github.com/treeshift/treeshift/internal/model"
)

// The journal of an update run is the system directory's journal entry
// "update" while the run is under way, renamed "update.committed" when the
// run commits: the rename is the commit, one atomic step whose data a sync
// made durable before (docs/DURABILITY.md). It is written one line per tree
// (schema 3):
//
//	{"schema":3,"started":"…","stamp":{"from":1,"to":3}}
//	{"tree":"a","from":1,"to":3,"gen":2,"new_gen":3,"live":true,…,"saved":{…}}
//	…
//	{"end":2,"sha256":"…"}
//
// The last line counts the tree lines and sums every byte before it. A run
// writes its journal without a sync of its own, and the run's first barrier
// makes it durable before anything it describes is pointed at: a power loss
// before that barrier can cut the journal short, which is seen from the
// missing last line, and every tree line before the cut is rolled back
// (nothing was moved yet). Journals of schema 1 and 2 (treeshift 0.4 and
// 0.5: one JSON document, the entry "update" only) are still read.
const (
	journalEntry   = "update"
	committedEntry = "update.committed"
	journalSchema  = 3
)

// journal is what a run records before it changes anything, so the next
// run can finish or roll back an interrupted one. Generations, not paths,
// are recorded, so a root moved between a crash and the next run is still
// understood. The trees' saved states are on disk only: a run keeps a sum
// of each, and reads one back when it must say what differs.
type journal struct {
	Schema  int
	Started time.Time
	// Stamp is the move of the format stamp the run makes if every tree
	// commits; a run that is rolled back puts the stamp back.
	Stamp *stampMove
	Trees []entry
	// File is the entry the journal is: journalEntry, or committedEntry,
	// in which every tree counts as committed.
	File string
	// Torn: the journal was cut short (see above); its trees are rolled
	// back.
	Torn bool
}

type stampMove struct {
	From int `json:"from"`
	To   int `json:"to"`
}

type entry struct {
	Tree string `json:"tree"`
	From int    `json:"from"`
	To   int    `json:"to"`
	// Gen is the generation the tree was at; it is not removed before the
	// transition commits. NewGen is the one the run stages (schema 3).
	Gen    int `json:"gen"`
	NewGen int `json:"new_gen,omitempty"`
	// Live: the tree was live, its link pointing at generation Gen, in the
	// live directory LiveDir (inside the root).
	Live    bool   `json:"live"`
	LiveDir string `json:"live_dir,omitempty"`
	// Committed: the new database is current, live and verified, and that
	// is durable; what is left is cleanup. In the committed entry every
	// tree is committed, whatever this says.
	Committed bool `json:"committed"`
}

// committed reports whether x, a tree of j, is committed.
func (j *journal) committed(x entry) bool { return x.Committed || j.File == committedEntry }

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

// saveOf is what a transition keeps of a tree's status.
func saveOf(ts TreeStatus) saved {
	s := saved{Enabled: ts.Enabled, Current: ts.Current, Position: ts.Position, Allow: nonNil(ts.Allow),
		Services: make([]savedService, len(ts.Services)), Live: savedLive{Initialized: ts.Live.Initialized, Services: []savedLiveService{}}}
	for i, x := range ts.Services {
		s.Services[i] = savedService{Name: x.Name, Type: x.Type, Version: x.Version, Enabled: x.Enabled, Digest: x.Digest,
			Depends: nonNil(x.Depends), Contents: nonNil(x.Contents)}
	}
	for _, x := range ts.Live.Services {
		s.Live.Services = append(s.Live.Services, savedLiveService{Name: x.Name, Up: x.Up, Unmonitored: x.Unmonitored, Pid: x.Pid})
	}
	return s
}

// savedJSON is a saved state as the journal holds it, and the sum verify
// compares.
func savedJSON(s saved) ([]byte, [32]byte, error) {
	b, err := json.Marshal(s)
	return b, sha256.Sum256(b), err
}

// journalWriter writes a journal a line at a time, summing what it writes.
type journalWriter struct {
	w   io.Writer
	h   hash.Hash
	n   int
	err error
}

type journalHeader struct {
	Schema  int        `json:"schema"`
	Started time.Time  `json:"started"`
	Stamp   *stampMove `json:"stamp,omitempty"`
}

type journalTrailer struct {
	End    int    `json:"end"`
	SHA256 string `json:"sha256"`
}

func newJournalWriter(w io.Writer, j *journal) *journalWriter {
	jw := &journalWriter{w: w, h: sha256.New()}
	b, err := json.Marshal(journalHeader{Schema: journalSchema, Started: j.Started, Stamp: j.Stamp})
	jw.err = err
	jw.put(b)
	return jw
}

func (jw *journalWriter) put(parts ...[]byte) {
	for _, b := range append(parts, []byte{'\n'}) {
		if jw.err != nil {
			return
		}
		jw.h.Write(b)
		_, jw.err = jw.w.Write(b)
	}
}

// line writes tree x with its saved state (JSON).
func (jw *journalWriter) line(x entry, saved []byte) {
	b, err := json.Marshal(x)
	if err != nil && jw.err == nil {
		jw.err = err
	}
	if len(saved) == 0 {
		saved = []byte("{}")
	}
	jw.n++
	jw.put(b[:len(b)-1], []byte(`,"saved":`), saved, []byte("}"))
}

// close writes the last line.
func (jw *journalWriter) close() error {
	b, err := json.Marshal(journalTrailer{End: jw.n, SHA256: hex.EncodeToString(jw.h.Sum(nil))})
	if err != nil {
		return err
	}
	jw.put(b)
	return jw.err
}

// rawEntry is a tree line with its saved state kept as it is.
type rawEntry struct {
	entry
	Saved json.RawMessage `json:"saved"`
}

// parsedJournal is a journal and each tree's line as read.
type parsedJournal struct {
	journal
	raw []rawEntry
}

// schema3 is how a journal of schema 3 starts.
var schema3 = []byte(`{"schema":3,`)

// parseJournal reads the bytes of journal entry file.
func parseJournal(b []byte, file string, keepRaw bool) (*parsedJournal, error) {
	p := &parsedJournal{journal: journal{File: file}}
	first, _, complete := bytes.Cut(b, []byte("\n"))
	var head struct {
		journalHeader
		Trees []json.RawMessage `json:"trees"`
	}
	switch {
	case !complete && (bytes.HasPrefix(first, schema3) || bytes.HasPrefix(schema3, first)):
		// Cut within its first line: it names no tree.
		p.Schema, p.Torn = journalSchema, true
		return p, nil
	case complete && json.Unmarshal(first, &head.journalHeader) == nil && head.Schema == journalSchema:
		return p, p.parseLines(b, keepRaw)
	}
	// Schemas 1 and 2: one document.
	if err := json.Unmarshal(b, &head); err != nil {
		return nil, err
	}
	if head.Schema != 1 && head.Schema != 2 {
		return nil, fmt.Errorf("schema %d (this treeshift reads 1 to %d)", head.Schema, journalSchema)
	}
	if file != journalEntry {
		return nil, fmt.Errorf("schema %d in %s, which only schema %d journals are", head.Schema, file, journalSchema)
	}
	p.Schema, p.Started = head.Schema, head.Started
	for i, t := range head.Trees {
		r, err := decodeEntry(t, keepRaw)
		if err != nil {
			return nil, fmt.Errorf("entry %d: %v", i+1, err)
		}
		p.add(r, keepRaw)
	}
	return p, nil
}

// decodeEntry reads a tree's line; its saved state only with keepRaw, as
// it is most of the journal, and recovery does not need it.
func decodeEntry(b []byte, keepRaw bool) (rawEntry, error) {
	var r rawEntry
	if keepRaw {
		return r, json.Unmarshal(b, &r)
	}
	return r, json.Unmarshal(b, &r.entry)
}

func (p *parsedJournal) add(r rawEntry, keepRaw bool) {
	p.Trees = append(p.Trees, r.entry)
	if keepRaw {
		p.raw = append(p.raw, r)
	}
}

// parseLines reads a schema 3 journal: the header, the tree lines, the
// last line. Only a journal cut short at its end is read as torn: every
// line before the cut must read.
func (p *parsedJournal) parseLines(b []byte, keepRaw bool) error {
	h := sha256.New()
	rest := b
	var head journalHeader
	for n := 0; ; n++ {
		line, after, complete := bytes.Cut(rest, []byte("\n"))
		if !complete {
			if len(line) > 0 && p.File == committedEntry {
				return fmt.Errorf("line %d: cut short, in a committed journal", n+1)
			}
			p.Torn = true
			return nil
		}
		switch {
		case n == 0:
			if err := json.Unmarshal(line, &head); err != nil {
				return fmt.Errorf("line 1: %v", err)
			}
			p.Schema, p.Started, p.Stamp = head.Schema, head.Started, head.Stamp
		case bytes.HasPrefix(line, []byte(`{"end":`)):
			var tr journalTrailer
			if err := json.Unmarshal(line, &tr); err != nil {
				return fmt.Errorf("line %d: %v", n+1, err)
			}
			if tr.End != len(p.Trees) || tr.SHA256 != hex.EncodeToString(h.Sum(nil)) || len(after) > 0 {
				return fmt.Errorf("line %d: the journal does not match its last line (%d tree(s) and a checksum): it was changed after it was written", n+1, tr.End)
			}
			return nil
		default:
			r, err := decodeEntry(line, keepRaw)
			if err != nil {
				return fmt.Errorf("line %d: %v", n+1, err)
			}
			p.add(r, keepRaw)
		}
		h.Write(line)
		h.Write([]byte{'\n'})
		rest = after
	}
}

// readJournal returns the open journal of an update, or nil. A journal
// that does not read, or whose entries name trees, generations or live
// directories no run could have written, is refused: recovering from it
// could touch files outside the system and live directories.
func (e *Engine) readJournal() (*journal, error) {
	p, err := e.readJournalRaw(false)
	if p == nil || err != nil {
		return nil, err
	}
	return &p.journal, nil
}

// readJournalRaw is readJournal with each tree's line as read, with keepRaw.
func (e *Engine) readJournalRaw(keepRaw bool) (*parsedJournal, error) {
	names, err := e.Store.Journals()
	if err != nil || len(names) == 0 {
		return nil, err
	}
	for _, n := range names {
		if n != journalEntry && n != committedEntry && n != applyEntry {
			return nil, &InconsistentError{fmt.Sprintf("%s: unexpected journal entry: remove it only after checking the trees by hand",
				e.Host(e.Store.JournalPath(n)))}
		}
	}
	// Both are there only when a run carried the trees of a committed
	// journal into its own and did not get to remove it: "update" holds
	// them, and is the one.
	file := journalEntry
	if !slices.Contains(names, journalEntry) {
		if !slices.Contains(names, committedEntry) {
			return nil, nil
		}
		file = committedEntry
	}
	b, err := e.Store.ReadJournal(file)
	if err != nil {
		return nil, err
	}
	bad := func(why string) error {
		return &InconsistentError{fmt.Sprintf("%s: %s: not a journal treeshift can read: remove it only after checking the trees by hand",
			e.Host(e.Store.JournalPath(file)), why)}
	}
	p, err := parseJournal(b, file, keepRaw)
	if err != nil {
		return nil, bad(err.Error())
	}
	seen := map[string]bool{}
	for i, x := range p.Trees {
		switch {
		case model.CheckName(x.Tree) != nil:
			return nil, bad(fmt.Sprintf("entry %d: bad tree name %q", i+1, x.Tree))
		case seen[x.Tree]:
			return nil, bad(fmt.Sprintf("entry %d: tree %s listed twice", i+1, x.Tree))
		case x.Gen < 1:
			return nil, bad(fmt.Sprintf("entry %d: tree %s: generation %d", i+1, x.Tree, x.Gen))
		case p.Schema == journalSchema && (x.NewGen < 1 || x.NewGen == x.Gen):
			return nil, bad(fmt.Sprintf("entry %d: tree %s: new generation %d", i+1, x.Tree, x.NewGen))
		case e.Registry.Version(x.From) == nil || e.Registry.Version(x.To) == nil:
			return nil, bad(fmt.Sprintf("entry %d: tree %s: format %d to %d", i+1, x.Tree, x.From, x.To))
		case x.Live && (x.LiveDir == "" || !path.IsAbs(x.LiveDir) || path.Clean(x.LiveDir) != x.LiveDir):
			return nil, bad(fmt.Sprintf("entry %d: tree %s: live directory %q", i+1, x.Tree, x.LiveDir))
		}
		seen[x.Tree] = true
	}
	if s := p.Stamp; s != nil && (e.Registry.Version(s.From) == nil || e.Registry.Version(s.To) == nil) {
		return nil, bad(fmt.Sprintf("stamp %d to %d", s.From, s.To))
	}
	return p, nil
}

// rewriteJournal replaces the journal entry file with the trees keep of
// it, each line as it was but for its committed flag, which committed
// gives, durably: what is left of a run that could not be finished, or a
// run's commit when some of its trees failed.
func (e *Engine) rewriteJournal(file string, keep, committed func(x entry) bool) error {
	p, err := e.readJournalRaw(true)
	if err != nil {
		return err
	}
	if p == nil {
		return errors.New("the journal is gone")
	}
	return e.Store.WriteJournal(file, func(w io.Writer) error {
		jw := newJournalWriter(w, &p.journal)
		for _, r := range p.raw {
			if keep(r.entry) {
				r.Committed = committed(r.entry)
				jw.line(r.entry, r.Saved)
			}
		}
		return jw.close()
	})
}

// savedOf reads tree name's saved state back from the journal.
func (e *Engine) savedOf(name string) (saved, error) {
	p, err := e.readJournalRaw(true)
	if err != nil || p == nil {
		return saved{}, fmt.Errorf("read the saved state of tree %s from the journal: %v", name, err)
	}
	for _, r := range p.raw {
		if r.Tree == name {
			var s saved
			return s, json.Unmarshal(r.Saved, &s)
		}
	}
	return saved{}, fmt.Errorf("the journal holds no saved state of tree %s", name)
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
