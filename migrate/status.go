package migrate

import (
	"errors"
	"fmt"
	"path"
	"strings"

	"github.com/treeshift/treeshift/internal/model"
	"github.com/treeshift/treeshift/livedb"
	"github.com/treeshift/treeshift/tree"
)

// StatusSchema is the version of the status document. It changes only when a
// field changes meaning or goes away; new fields may be added within a
// version.
const StatusSchema = 1

// Status is everything a transition must preserve about an owner's system.
// It is the document `treeshift status --json` prints (docs/JSON.md).
type Status struct {
	Schema    int         `json:"schema"`
	Owner     OwnerStatus `json:"owner"`
	SystemDir string      `json:"system_dir"`
	Stamp     int         `json:"stamp"`
	// Supervisor is the owner's supervisor backend: files or s6.
	Supervisor string       `json:"supervisor"`
	Trees      []TreeStatus `json:"trees"`
}

// OwnerStatus names whose trees these are.
type OwnerStatus struct {
	UID  int    `json:"uid"`
	Name string `json:"name"`
}

// TreeStatus is one tree.
type TreeStatus struct {
	Name     string          `json:"name"`
	Format   int             `json:"format"`
	Enabled  bool            `json:"enabled"`
	Current  bool            `json:"current"`
	Position int             `json:"position"`
	Allow    []string        `json:"allow"`
	Services []ServiceStatus `json:"services"`
	Live     LiveStatus      `json:"live"`
	// Error, when set, says why the tree could not be read; the other
	// fields are then only what the system state says of it.
	Error string `json:"error,omitempty"`
}

// ServiceStatus is one resolve record of a tree.
type ServiceStatus struct {
	Name     string   `json:"name"`
	Type     string   `json:"type"`
	Enabled  bool     `json:"enabled"`
	Version  string   `json:"version"`
	Digest   string   `json:"digest"`
	Depends  []string `json:"depends"`
	Contents []string `json:"contents"`
}

// LiveStatus is the live part of a tree.
type LiveStatus struct {
	Initialized bool `json:"initialized"`
	// Compiled is the database the live link resolves to, inside the root:
	// SYSTEM_DIR/tree/NAME/compiled when it is the tree's current database.
	Compiled string              `json:"compiled"`
	Services []LiveServiceStatus `json:"services"`
}

// LiveServiceStatus is the live state of one enabled service.
type LiveServiceStatus struct {
	Name string `json:"name"`
	Up   bool   `json:"up"`
	// Unmonitored: up, and its supervisor would not restart it if it
	// stopped (supervision paused).
	Unmonitored bool `json:"unmonitored"`
	// State is up, down, or for a bundle partial: a bundle is up when all
	// its contents are, whatever was last recorded for the bundle itself
	// (its contents may be started and stopped one by one).
	State string `json:"state"`
	// Pid is the supervised process, 0 if down or not a process (a oneshot,
	// a bundle, or the embedded backend).
	Pid int `json:"pid"`
	// Uptime is how long the process has been up or down, in seconds, when
	// the backend knows.
	Uptime int `json:"uptime"`
}

// Status reports the trees names (all of the owner's, in start order, when
// names is empty).
func (s *Engine) Status(names []string) (*Status, error) {
	st, err := s.Store.ReadState()
	if err != nil {
		return nil, err
	}
	if len(names) == 0 {
		if names, err = s.Ordered(); err != nil {
			return nil, err
		}
	}
	out := &Status{
		Schema:     StatusSchema,
		Owner:      OwnerStatus{UID: s.Owner.UID, Name: s.Owner.Name},
		SystemDir:  s.Owner.SystemDir(),
		Stamp:      st.Stamp,
		Supervisor: s.Backend.Name(),
		Trees:      []TreeStatus{},
	}
	var bad []string
	for _, n := range names {
		ts, err := s.treeStatus(n, st)
		if err != nil {
			var ue *UsageError
			if errors.As(err, &ue) {
				return nil, err // an unknown or badly named tree asked for
			}
			// One unreadable tree does not hide the others: it is shown
			// with what is wrong, and the status as a whole fails.
			enabled, pos := st.Enabled(n)
			ts = TreeStatus{Name: n, Enabled: enabled, Current: st.Current == n, Position: pos, Allow: []string{},
				Services: []ServiceStatus{}, Live: LiveStatus{Services: []LiveServiceStatus{}}, Error: err.Error()}
			bad = append(bad, n)
		}
		out.Trees = append(out.Trees, ts)
	}
	if len(bad) > 0 {
		return out, s.unreadable(bad)
	}
	return out, nil
}

// UnreadableError reports trees that could not be read; the document
// printed holds each one's reason.
type UnreadableError struct {
	Trees []string
	// Destroy is the command that removes the first of them.
	Destroy string
}

func (e *UnreadableError) Error() string {
	return fmt.Sprintf("tree(s) %s cannot be read (see above); a tree no treeshift can read is removed with: %s",
		strings.Join(e.Trees, " "), e.Destroy)
}

func (s *Engine) unreadable(bad []string) error {
	return &UnreadableError{Trees: bad, Destroy: s.Suggest.Cmd("tree", "destroy", bad[0])}
}

func (s *Engine) treeStatus(name string, st tree.State) (TreeStatus, error) {
	t, err := s.Load(name)
	if err != nil {
		return TreeStatus{}, err
	}
	return s.TreeStatus(t, st)
}

// TreeStatus reports a loaded tree, st being the system state.
func (s *Engine) TreeStatus(t *tree.Tree, st tree.State) (TreeStatus, error) {
	enabled, pos := st.Enabled(t.Name)
	ts := TreeStatus{
		Name: t.Name, Format: t.Format, Enabled: enabled, Current: st.Current == t.Name, Position: pos,
		Allow: nonNil(t.Allow), Services: []ServiceStatus{},
		Live: LiveStatus{Services: []LiveServiceStatus{}},
	}
	ts.Services = serviceStatuses(t.Tree)
	lt := s.Live.Tree(t.Name)
	live, err := lt.Initialized()
	if err != nil || !live {
		return ts, err
	}
	ts.Live.Initialized = true
	ts.Live.Compiled, err = s.compiledName(t, lt)
	if err != nil {
		return ts, err
	}
	states, err := s.Backend.States(lt, t.Index)
	if err != nil {
		return ts, err
	}
	// The index is in start order: a bundle's contents come before it, so
	// a bundle of bundles sees its contents' states already derived.
	up := map[string]bool{}
	for _, e := range t.Index.Entries {
		st := states[e.Name]
		s := state(e, st.Up, up)
		up[e.Name] = s == "up"
		ts.Live.Services = append(ts.Live.Services, LiveServiceStatus{Name: e.Name, Up: st.Up, Unmonitored: st.Unmonitored, State: s, Pid: st.Pid, Uptime: st.Uptime})
	}
	return ts, nil
}

// serviceStatuses is the status of t's resolve records.
func serviceStatuses(t *model.Tree) []ServiceStatus {
	out := make([]ServiceStatus, 0, len(t.Services))
	for _, svc := range t.Services {
		out = append(out, ServiceStatus{
			Name: svc.Name, Type: svc.Type, Enabled: svc.Enabled, Version: svc.Version, Digest: svc.Digest,
			Depends: nonNil(svc.Depends), Contents: nonNil(svc.Contents),
		})
	}
	return out
}

// state is a service's State: recorded for a service, derived for a
// bundle from its contents' states, up (a bundle's index entry lists its
// contents as its dependencies).
func state(e model.IndexEntry, recorded bool, up map[string]bool) string {
	if e.Type != model.Bundle || len(e.Deps) == 0 {
		if recorded {
			return "up"
		}
		return "down"
	}
	n := 0
	for _, c := range e.Deps {
		if up[c] {
			n++
		}
	}
	switch n {
	case len(e.Deps):
		return "up"
	case 0:
		return "down"
	}
	return "partial"
}

// compiledName names the live database inside the root. The tree's current
// database is named through the tree's own link, which is stable across
// generations; anything else (a transition's temporary copy, a database left
// behind by a crash) by its real path.
func (s *Engine) compiledName(t *tree.Tree, lt *livedb.Tree) (string, error) {
	target, err := lt.Target()
	if err != nil {
		return "", err
	}
	if target == t.CompiledDir() {
		return path.Join(s.Store.Pointer(t.Name), path.Base(t.CompiledDir())), nil
	}
	return target, nil
}

// Detached returns a copy of ts that shares no memory with the tree it was
// made from. A status is made of strings cut from the tree's records, which
// it keeps alive; one kept for long (an update holds one per tree for its
// whole run) should not keep every record read.
func (ts TreeStatus) Detached() TreeStatus {
	d := ts
	d.Name = strings.Clone(ts.Name)
	d.Allow = cloned(ts.Allow)
	d.Services = make([]ServiceStatus, len(ts.Services))
	for i, s := range ts.Services {
		d.Services[i] = ServiceStatus{Name: strings.Clone(s.Name), Type: strings.Clone(s.Type), Enabled: s.Enabled,
			Version: strings.Clone(s.Version), Digest: strings.Clone(s.Digest),
			Depends: cloned(s.Depends), Contents: cloned(s.Contents)}
	}
	d.Live.Compiled = strings.Clone(ts.Live.Compiled)
	d.Live.Services = make([]LiveServiceStatus, len(ts.Live.Services))
	for i, s := range ts.Live.Services {
		s.Name = strings.Clone(s.Name)
		d.Live.Services[i] = s
	}
	return d
}

func cloned(s []string) []string {
	c := make([]string, len(s))
	for i, v := range s {
		c[i] = strings.Clone(v)
	}
	return c
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}
