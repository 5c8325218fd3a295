package cluster

import (
	"bytes"
	"fmt"
	"os"
	"reflect"
	"strings"
	"time"

	"github.com/treeshift/treeshift/format"
	"github.com/treeshift/treeshift/internal/durable"
	"github.com/treeshift/treeshift/internal/owner"
	"github.com/treeshift/treeshift/internal/version"
	"github.com/treeshift/treeshift/migrate"
)

// Report is what a member's own disk holds, read by the member: its agent,
// or with a directory store the stage command on the member's root.
// Switch, clean and postinstall decide on reports, not on the record.
type Report struct {
	Member string `json:"member"`
	Host   string `json:"host"`
	// Version is the treeshift that read the disk (internal/version).
	Version string    `json:"version"`
	Root    string    `json:"root"`
	Time    time.Time `json:"time"`
	// Refresh is the refresh request this report answers (etcd: the
	// revision of PREFIX/refresh it saw).
	Refresh int64 `json:"refresh"`
	// Stamp is the system's format stamp, 0 when it has none.
	Stamp  int          `json:"stamp"`
	Trees  []TreeReport `json:"trees"`
	Tagged []TagReport  `json:"tagged"`
	// Pending lists the trees of an interrupted transition.
	Pending []string `json:"pending"`
	// Healthy: the system reads, no transition is interrupted, and every
	// live tree's link resolves to its current database. Problems says
	// what is not.
	Healthy  bool     `json:"healthy"`
	Problems []string `json:"problems"`
	// Shared reports the cluster-shared trees this member holds, if any.
	Shared *SharedReport `json:"shared,omitempty"`
	// Task is the sequence number of the task the member is carrying out,
	// 0 when idle.
	Task int `json:"task"`
	// Check answers a refresh that asked whether the member may move to
	// a version (check setup).
	Check *CheckReport `json:"check,omitempty"`
	// Changed answers a refresh that asked what changed on the member
	// since its roll (undo).
	Changed *ChangedReport `json:"changed,omitempty"`
}

// ChangedReport is what changed on a member since its roll: what a restore
// from its tagged copy of format Since would drop.
type ChangedReport struct {
	Since   int      `json:"since"`
	Changes []string `json:"changes"`
	Error   string   `json:"error,omitempty"`
}

// CheckReport is what keeps a member from moving to version To.
type CheckReport struct {
	To       int      `json:"to"`
	Problems []string `json:"problems"`
}

// TreeReport is one tree of a member.
type TreeReport struct {
	Name   string `json:"name"`
	Format int    `json:"format"`
	// Live: the tree is initialized and its live link resolves to its
	// current database.
	Live bool `json:"live"`
	// Up is how many of its services are up.
	Up int `json:"up"`
}

// TagReport is one tagged copy a member holds.
type TagReport struct {
	Version int `json:"version"`
	// Dir is where it is, inside the member's root.
	Dir string `json:"dir"`
	// Removable: no tree runs in the copy's format and no transition (a
	// restore from it, say) is interrupted: removing it loses nothing
	// the member may still need.
	Removable bool   `json:"removable"`
	Why       string `json:"why,omitempty"`
}

// SharedReport is the cluster-shared trees a member holds.
type SharedReport struct {
	Root  string       `json:"root"`
	Stamp int          `json:"stamp"`
	Trees []TreeReport `json:"trees"`
}

// View is a member as the store sees it: whether it is up, and its last
// report.
type View struct {
	Up bool `json:"up"`
	// Agent is the agent's presence (etcd), nil when down or with a
	// directory store.
	Agent  *Presence `json:"agent,omitempty"`
	Report *Report   `json:"report,omitempty"`
	// Down says why a member is down, for messages.
	Down string `json:"-"`
}

// site is a member's disk as this process reaches it: the root, and how
// its engines are opened.
type site struct {
	member string
	root   string
	shared string
	live   string
	wait   time.Duration
	report migrate.Reporter
	getenv func(string) string
	// config reads a stored cluster configuration by its id.
	config func(id string) ([]byte, error)
	// wrap, if set, wraps the file system of the member's engines: an
	// agent's fence (fence.go).
	wrap func(durable.FS) durable.FS
}

func (s *site) engineAt(root string) (*migrate.Engine, error) {
	getenv := s.getenv
	if getenv == nil {
		getenv = os.Getenv
	}
	o, err := owner.Current(root, getenv)
	if err != nil {
		return nil, err
	}
	return migrate.Open(o, migrate.Options{Live: s.live, Wait: s.wait, Report: s.report, WrapFS: s.wrap})
}

func (s *site) engine() (*migrate.Engine, error) { return s.engineAt(s.root) }

// observe reads the member's disk. It never fails: what cannot be read is
// a problem in the report, which makes the member unhealthy.
func (s *site) observe() *Report {
	r := &Report{Member: s.member, Host: hostName, Version: version.String(), Root: s.root, Time: time.Now().UTC(),
		Trees: []TreeReport{}, Tagged: []TagReport{}, Pending: []string{}, Problems: []string{}}
	e, err := s.engineAt(s.root)
	if err != nil {
		r.Problems = append(r.Problems, err.Error())
		return r
	}
	stamp, trees, problems := readTrees(e)
	r.Stamp, r.Trees = stamp, trees
	r.Problems = append(r.Problems, problems...)
	if p, err := e.Pending(); err != nil {
		r.Problems = append(r.Problems, err.Error())
	} else if len(p) > 0 {
		r.Pending = p
		r.Problems = append(r.Problems, fmt.Sprintf("the transition of tree(s) %s was interrupted", strings.Join(p, " ")))
	}
	for v := 0; v <= format.Newest(); v++ { // 0: the unstamped legacy format
		if !e.Store.HasTag(v) {
			continue
		}
		t := TagReport{Version: v, Dir: e.Store.TagDir(v), Removable: true}
		for _, tr := range r.Trees {
			if tr.Format == v {
				t.Removable, t.Why = false, fmt.Sprintf("tree %s runs in format %d", tr.Name, v)
				break
			}
		}
		if t.Removable && len(r.Pending) > 0 {
			t.Removable, t.Why = false, "a transition is interrupted"
		}
		r.Tagged = append(r.Tagged, t)
	}
	if s.shared != "" {
		sr := &SharedReport{Root: s.shared, Trees: []TreeReport{}}
		if se, err := s.engineAt(s.shared); err != nil {
			r.Problems = append(r.Problems, "shared trees: "+err.Error())
		} else {
			var problems []string
			sr.Stamp, sr.Trees, problems = readTrees(se)
			for _, p := range problems {
				r.Problems = append(r.Problems, "shared trees: "+p)
			}
		}
		r.Shared = sr
	}
	r.Healthy = len(r.Problems) == 0
	return r
}

// readTrees is a system's stamp and trees, and what could not be read.
func readTrees(e *migrate.Engine) (int, []TreeReport, []string) {
	trees := []TreeReport{}
	st, err := e.Status(nil)
	if st == nil {
		return 0, trees, []string{err.Error()}
	}
	// A tree that cannot be read is a problem of its own, with its reason;
	// the others are still reported.
	var problems []string
	for _, t := range st.Trees {
		if t.Error != "" {
			problems = append(problems, fmt.Sprintf("tree %s cannot be read: %s", t.Name, t.Error))
			continue
		}
		tr := TreeReport{Name: t.Name, Format: t.Format}
		if t.Live.Initialized {
			if t.Live.Compiled == e.Store.Pointer(t.Name)+"/compiled" {
				tr.Live = true
			} else {
				problems = append(problems, fmt.Sprintf("tree %s: its live link points at %s, not its current database", t.Name, t.Live.Compiled))
			}
			for _, s := range t.Live.Services {
				if s.Up {
					tr.Up++
				}
			}
		}
		trees = append(trees, tr)
	}
	return st.Stamp, trees, problems
}

// execute carries out a task on the member's disk, through its engine.
// resumed: the task was started before and cut short. A restore returns
// what it dropped.
func (s *site) execute(t *Task, resumed bool) ([]string, error) {
	if t.Action == ActShared {
		if s.shared == "" {
			return nil, fmt.Errorf("member %s holds no shared trees", s.member)
		}
		e, err := s.engineAt(s.shared)
		if err != nil {
			return nil, fmt.Errorf("shared trees: %w", err)
		}
		if _, err := e.Update(nil, t.Version); err != nil {
			return nil, fmt.Errorf("shared trees: %w", err)
		}
		return nil, nil
	}
	e, err := s.engine()
	if err != nil {
		return nil, err
	}
	switch t.Action {
	case ActTag:
		err = e.Tag(t.Version)
	case ActVerify:
		err = verifyTagged(e, t.Version)
	case ActUpdate:
		err = s.update(e, t)
	case ActRestore:
		return s.restore(e, t, resumed)
	case ActUntag:
		err = untag(e, t.Version)
	default:
		err = fmt.Errorf("unknown task %q", t.Action)
	}
	return nil, err
}

// update moves the member's trees to t.Version, applying the cluster
// configuration t.Config in the same run.
func (s *site) update(e *migrate.Engine, t *Task) error {
	// A member set up for this upgrade holds its tagged copy: one
	// without it is not the system that was set up (a root lost and
	// made anew, say), and moving it would report a roll of nothing.
	if t.Tagged != 0 {
		if err := setUp(e, t.Tagged); err != nil {
			return err
		}
		if err := retag(e, t.Tagged); err != nil {
			return fmt.Errorf("tagged copy of format %d: %w", t.Tagged, err)
		}
	}
	var cfg *migrate.Config
	name := ""
	if t.Config != "" {
		if s.config == nil {
			return fmt.Errorf("cluster configuration %s: no store to read it from", t.Config)
		}
		doc, err := s.config(t.Config)
		if err != nil {
			return fmt.Errorf("cluster configuration %s: %w", t.Config, err)
		}
		name = "cluster configuration " + t.Config
		if cfg, err = migrate.ReadConfig(name, bytes.NewReader(doc)); err != nil {
			return err
		}
	}
	if _, err := e.UpdateWith(cfg, name, nil, t.Version); err != nil {
		return err
	}
	if cfg != nil && t.Tagged != 0 {
		// The configuration's changes are the roll's: what changes after
		// it is measured from here (undo.go).
		return e.Tag(t.Version)
	}
	return nil
}

// untag removes the tagged copy of version v, and the snapshot a roll
// left of the format the member runs now.
func untag(e *migrate.Engine, v int) error {
	// A member added after switch has none.
	if e.Store.HasTag(v) {
		if err := e.Untag(v); err != nil {
			return err
		}
	}
	st, err := e.Store.ReadState()
	if err != nil {
		return err
	}
	if st.Stamp != v && e.Store.HasTag(st.Stamp) {
		return e.Untag(st.Stamp)
	}
	return nil
}

// setUp checks that the member holds the tagged copy of version v (made
// by setup) and trees.
func setUp(e *migrate.Engine, v int) error {
	names, err := e.Store.Names()
	if err != nil {
		return err
	}
	switch {
	case len(names) == 0 && !e.Store.HasTag(v):
		return fmt.Errorf("its system %s holds no trees and no tagged copy: it is not the system that was set up (root lost or replaced?)", e.Store.Dir)
	case !e.Store.HasTag(v):
		return fmt.Errorf("no tagged copy at %s: it is not the system that was set up", e.Store.TagDir(v))
	case len(names) == 0:
		return fmt.Errorf("its system %s holds no trees", e.Store.Dir)
	}
	return nil
}

// verifyTagged checks that every tree has a tagged copy that decodes to the
// same tree.
func verifyTagged(s *migrate.Engine, v int) error {
	if !s.Store.HasTag(v) {
		return fmt.Errorf("no tagged copy at %s", s.Host(s.Store.TagDir(v)))
	}
	tagged := s.Store.Tagged(v)
	names, err := s.Store.Names()
	if err != nil {
		return err
	}
	for _, n := range names {
		cur, err := s.Store.Load(n)
		if err != nil {
			return err
		}
		tc, err := tagged.Load(n)
		if err != nil {
			return fmt.Errorf("tagged copy: %w", err)
		}
		if tc.Format != cur.Format || !reflect.DeepEqual(tc.Tree, cur.Tree) {
			return fmt.Errorf("tagged copy of tree %s differs from the tree", n)
		}
	}
	return nil
}

// at says whether a report shows every tree (at least one) at version v
// with the stamp at v, healthy; otherwise what it shows instead.
func (r *Report) at(v int) (bool, string) {
	if r == nil {
		return false, "no report"
	}
	var off []string
	for _, t := range r.Trees {
		if t.Format != v {
			off = append(off, fmt.Sprintf("tree %s in format %d", t.Name, t.Format))
		}
	}
	switch {
	case len(r.Problems) > 0 && len(r.Trees) == 0:
		return false, strings.Join(r.Problems, "; ")
	case len(r.Trees) == 0:
		return false, fmt.Sprintf("no trees, stamp %d", r.Stamp)
	case len(off) > 0:
		return false, strings.Join(off, ", ") + fmt.Sprintf(", stamp %d", r.Stamp)
	case r.Stamp != v:
		return false, fmt.Sprintf("stamp %d", r.Stamp)
	case !r.Healthy:
		return false, strings.Join(r.Problems, "; ")
	}
	return true, ""
}
