// Package system is an owner's whole service system: the trees in the system
// directory, their live parts, and the supervisor backend. It carries out the
// tree commands (create, enable, init, start, ...) and reports status, the
// snapshot every transition must preserve.
package system

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"syscall"
	"time"

	"github.com/treeshift/treeshift/format"
	"github.com/treeshift/treeshift/internal/compile"
	"github.com/treeshift/treeshift/internal/durable"
	"github.com/treeshift/treeshift/internal/frontend"
	"github.com/treeshift/treeshift/internal/fserr"
	"github.com/treeshift/treeshift/internal/model"
	"github.com/treeshift/treeshift/internal/owner"
	"github.com/treeshift/treeshift/internal/suggest"
	"github.com/treeshift/treeshift/internal/supervisor"
	"github.com/treeshift/treeshift/internal/supervisor/s6"
	"github.com/treeshift/treeshift/livedb"
	"github.com/treeshift/treeshift/tree"
)

// System is one owner's trees and live state.
type System struct {
	Owner owner.Owner
	Store *tree.Store
	Live  livedb.Dir
	// LiveDir is the live directory inside the root (-l).
	LiveDir string
	Backend supervisor.Backend
	// Suggest writes the commands messages tell the user to run, with the
	// --root and -l this system was opened with.
	Suggest suggest.Prefix
	// Log receives progress messages ("info"), if set.
	Log func(level int, format string, args ...any)
}

// UsageError is a request that cannot be carried out as asked: an unknown
// tree or service, a bad name, a definition or dependency error. The command
// line reports it with exit code 100.
type UsageError struct{ Err error }

func (e *UsageError) Error() string { return e.Err.Error() }
func (e *UsageError) Unwrap() error { return e.Err }

func usage(format string, args ...any) error {
	return &UsageError{Err: fmt.Errorf(format, args...)}
}

// New returns the system of owner o with its live directory at live, a path
// inside the root that must be absolute.
func New(o owner.Owner, live string) (*System, error) {
	if !filepath.IsAbs(live) {
		return nil, usage("live directory %q is not an absolute path", live)
	}
	s := &System{
		Owner:   o,
		Store:   tree.Open(o.Host(o.SystemDir())),
		Live:    livedb.Dir{Path: o.Host(live), UID: o.UID},
		LiveDir: filepath.Clean(live),
		Backend: supervisor.Files{},
		Suggest: suggest.Prefix{Root: o.Root, Live: filepath.Clean(live)},
	}
	s.Live.AreaHint = s.Suggest.Cmd("scandir", "create", "--owner", o.Name)
	// Whoever owns the root directory owns everything staged under it: the
	// live directory's shared parts may be theirs as well as root's.
	if fi, err := os.Stat(o.Root); err == nil {
		if st, ok := fi.Sys().(*syscall.Stat_t); ok && st.Uid != 0 {
			s.Live.Trusted = []int{int(st.Uid)}
		}
	}
	// An owner's live part that someone else controls is refused before
	// anything is read from it: its links and states could be anything.
	if err := s.Live.Check(); err != nil {
		return nil, err
	}
	name, err := s.Live.Backend()
	if err != nil {
		return nil, err
	}
	if name == "s6" {
		if err := s6.Check(); err != nil {
			return nil, err
		}
		s.Backend = &s6.Backend{Scan: s.Live.ScanDir(), Timeout: ServiceTimeout, Suggest: s.Suggest}
	}
	return s, nil
}

// ServiceTimeout bounds each wait for a supervised service to change state.
const ServiceTimeout = 10 * time.Second

func (s *System) info(format string, args ...any) {
	if s.Log != nil {
		s.Log(2, format, args...)
	}
}

// Lock takes the owner lock for a command that changes anything.
func (s *System) Lock(wait time.Duration) (*tree.Lock, error) { return s.Store.Lock(wait, true, nil) }

// checkName validates a tree or service name given on the command line.
func checkName(what, name string) error {
	if err := model.CheckName(name); err != nil {
		return usage("bad %s name: %v", what, err)
	}
	return nil
}

// Load loads tree name, reporting a missing tree as a usage error.
func (s *System) Load(name string) (*tree.Tree, error) {
	if err := checkName("tree", name); err != nil {
		return nil, err
	}
	t, err := s.Store.Load(name)
	var nf *tree.NotFoundError
	if errors.As(err, &nf) {
		return nil, &UsageError{Err: err}
	}
	if err != nil {
		return nil, err
	}
	if err := s.checkLiveDir(name); err != nil {
		return nil, err
	}
	return t, nil
}

// CheckTree reports a usage error if name is not a valid name of an
// existing tree of the owner, or is live in another live directory.
func (s *System) CheckTree(name string) error {
	if err := checkName("tree", name); err != nil {
		return err
	}
	if ok, err := s.Store.Exists(name); err != nil {
		return err
	} else if !ok {
		return &UsageError{Err: &tree.NotFoundError{Name: name}}
	}
	return s.checkLiveDir(name)
}

// checkLiveDir refuses a tree live in another live directory: its link is
// one this command cannot see, and working on the tree could remove the
// database that link uses.
func (s *System) checkLiveDir(name string) error {
	if rec, err := s.Store.LiveRecord(name); err != nil {
		return err
	} else if rec != "" && rec != s.LiveDir {
		return usage("tree %s is live in %s, not in %s: give -l %s", name, rec, s.LiveDir, rec)
	}
	return nil
}

// Ordered lists the owner's trees in start order: enabled trees in their
// order, then the others by name.
func (s *System) Ordered() ([]string, error) {
	names, err := s.Store.Names()
	if err != nil {
		return nil, err
	}
	st, err := s.Store.ReadState()
	if err != nil {
		return nil, err
	}
	out := slices.Clone(st.Order)
	for _, n := range names {
		if !slices.Contains(out, n) {
			out = append(out, n)
		}
	}
	return out, nil
}

// Replace writes t in format v as the next generation of old, makes it the
// current one, moves the live link to it if the tree is live, and then
// removes every generation that neither the tree nor the live link uses,
// including leftovers of an interrupted earlier change.
func (s *System) Replace(old *tree.Tree, t *model.Tree, v int) (*tree.Tree, error) {
	nt, err := s.Store.Stage(t, v)
	if err != nil {
		return nil, err
	}
	if err := s.Store.Commit(nt); err != nil {
		return nil, err
	}
	lt := s.Live.Tree(t.Name)
	live, err := lt.Initialized()
	if err != nil {
		return nil, err
	}
	if live {
		if err := lt.Link(nt.CompiledDir()); err != nil {
			return nil, err
		}
		if err := s.Backend.Init(lt, nt.CompiledDir(), nt.Index); err != nil {
			return nil, err
		}
	}
	return nt, s.Collect(t.Name)
}

// Collect removes the generations of tree name that nothing points at:
// neither the tree's link nor its live link.
func (s *System) Collect(name string) error {
	keep := map[string]bool{}
	gen, err := s.Store.CurrentGen(name)
	if err != nil {
		return err
	}
	keep[s.Store.GenDir(name, gen)] = true
	lt := s.Live.Tree(name)
	if live, err := lt.Initialized(); err != nil {
		return err
	} else if live {
		if target, err := lt.Target(); err == nil {
			keep[filepath.Dir(target)] = true
		}
	}
	gens, err := s.Store.Generations(name)
	if err != nil {
		return err
	}
	for _, g := range gens {
		if dir := s.Store.GenDir(name, g); !keep[dir] {
			if err := s.Store.RemoveGen(name, g); err != nil {
				return err
			}
		}
	}
	// What crashed link swaps left, beside the tree's link and its live link.
	if err := durable.SweepSymlink(filepath.Dir(s.Store.Pointer(name)), name); err != nil {
		return err
	}
	return durable.SweepSymlink(lt.Dir, "compiled")
}

// CreateOptions are the settings of a new tree.
type CreateOptions struct {
	Format  int
	Current bool
	Enable  bool
	Allow   []string
	// After, if set, enables the tree and starts it after that tree.
	After string
}

// CreateTree creates an empty tree.
func (s *System) CreateTree(name string, o CreateOptions) error {
	if err := checkName("tree", name); err != nil {
		return err
	}
	if _, err := format.Get(o.Format); err != nil {
		return &UsageError{Err: err}
	}
	if ok, err := s.Store.Exists(name); err != nil {
		return err
	} else if ok {
		return usage("tree %s already exists", name)
	}
	st, err := s.Store.ReadState()
	if err != nil {
		return err
	}
	if o.After != "" {
		if err := checkName("tree", o.After); err != nil {
			return err
		}
		if ok, _ := st.Enabled(o.After); !ok {
			return usage("cannot start %s after %s: tree %s is not enabled", name, o.After, o.After)
		}
	}
	allow := slices.Clone(o.Allow)
	if len(allow) == 0 {
		allow = []string{s.Owner.Name}
	}
	for _, u := range allow {
		if err := checkName("user", u); err != nil {
			return err
		}
	}
	slices.Sort(allow)
	t := &model.Tree{Name: name, Allow: slices.Compact(allow)}
	nt, err := s.Store.Stage(t, o.Format)
	if err != nil {
		return err
	}
	if err := s.Store.Commit(nt); err != nil {
		return err
	}
	if st.Stamp == 0 {
		// A new system directory is stamped with the format its first tree
		// is written in; update moves the stamp when it moves the trees.
		st.Stamp = o.Format
	}
	if o.Enable || o.After != "" {
		st.Order = insertAfter(st.Order, name, o.After)
	}
	if o.Current {
		st.Current = name
	}
	if err := s.Store.WriteState(st); err != nil {
		return err
	}
	s.info("created tree %s in format %d", name, o.Format)
	return nil
}

// insertAfter puts name into order right after after, or at the end when
// after is empty.
func insertAfter(order []string, name, after string) []string {
	order = slices.DeleteFunc(slices.Clone(order), func(n string) bool { return n == name })
	if after == "" {
		return append(order, name)
	}
	i := slices.Index(order, after)
	return slices.Insert(order, i+1, name)
}

// DestroyTree removes a tree and its live part. A tree with services up is
// refused: destroying it would orphan running services.
func (s *System) DestroyTree(name string) error {
	t, err := s.Load(name)
	if err != nil {
		return err
	}
	lt := s.Live.Tree(name)
	if live, err := lt.Initialized(); err != nil {
		return err
	} else if live {
		up, err := s.up(lt, t)
		if err != nil {
			return err
		}
		if names := upNames(t, up); len(names) > 0 {
			return fmt.Errorf("tree %s has services up (%s): stop them first with: %s",
				name, join(names), s.Suggest.Cmd(append([]string{"stop", "-t", name}, names...)...))
		}
	}
	st, err := s.Store.ReadState()
	if err != nil {
		return err
	}
	st.Order = slices.DeleteFunc(st.Order, func(n string) bool { return n == name })
	if st.Current == name {
		st.Current = ""
	}
	// The state first: a crash then leaves an unlisted tree, which is still
	// complete, rather than a listed tree that is half gone.
	if err := s.Store.WriteState(st); err != nil {
		return err
	}
	if live, _ := lt.Initialized(); live {
		if err := s.Backend.Uninit(lt, t.Index); err != nil {
			return err
		}
	}
	if err := lt.Remove(); err != nil {
		return err
	}
	if err := s.Store.ClearLiveRecord(name); err != nil {
		return err
	}
	if err := s.Store.Destroy(name); err != nil {
		return err
	}
	s.info("destroyed tree %s", name)
	return nil
}

// SetTree changes a tree's place in the system state: enabled or not,
// current, or start position (after another tree).
func (s *System) SetTree(name string, change func(st *tree.State) error) error {
	if _, err := s.Load(name); err != nil {
		return err
	}
	st, err := s.Store.ReadState()
	if err != nil {
		return err
	}
	before := st.Clone()
	if err := change(&st); err != nil {
		return err
	}
	if st.Equal(before) {
		return nil // nothing to write: not even a timestamp changes
	}
	return s.Store.WriteState(st)
}

// EnableTree appends the tree to the start order.
func EnableTree(name string) func(*tree.State) error {
	return func(st *tree.State) error {
		if ok, _ := st.Enabled(name); !ok {
			st.Order = append(st.Order, name)
		}
		return nil
	}
}

// DisableTree removes the tree from the start order.
func DisableTree(name string) func(*tree.State) error {
	return func(st *tree.State) error {
		st.Order = slices.DeleteFunc(st.Order, func(n string) bool { return n == name })
		return nil
	}
}

// CurrentTree makes the tree the current one.
func CurrentTree(name string) func(*tree.State) error {
	return func(st *tree.State) error { st.Current = name; return nil }
}

// OrderTree moves an enabled tree to start right after another.
func OrderTree(name, after string) func(*tree.State) error {
	return func(st *tree.State) error {
		if err := checkName("tree", after); err != nil {
			return err
		}
		if name == after {
			return usage("cannot start tree %s after itself", name)
		}
		if ok, _ := st.Enabled(name); !ok {
			return usage("tree %s is not enabled: enable it first", name)
		}
		if ok, _ := st.Enabled(after); !ok {
			return usage("tree %s is not enabled", after)
		}
		st.Order = insertAfter(st.Order, name, after)
		return nil
	}
}

// FindDefinition returns the host path of service name's definition, the
// first found in the owner's service directories.
func (s *System) FindDefinition(name string) (string, error) {
	dirs := s.Owner.ServiceDirs()
	for _, d := range dirs {
		p := s.Owner.Host(filepath.Join(d, name))
		fi, err := os.Stat(p)
		if err == nil && fi.Mode().IsRegular() {
			return p, nil
		}
		if err == nil {
			return "", usage("%s: service definition is not a regular file", p)
		}
		if !errors.Is(err, os.ErrNotExist) {
			return "", fmt.Errorf("%s: %w", p, unwrap(err))
		}
	}
	return "", usage("service %s: no definition in %s", name, join(dirs))
}

// EnableServices parses the definitions of names and of everything they
// depend on, enables them in tree tname, and recompiles its database, keeping
// the tree's format.
func (s *System) EnableServices(tname string, names []string) error {
	old, err := s.Load(tname)
	if err != nil {
		return err
	}
	t := cloneTree(old.Tree)
	queue := slices.Clone(names)
	seen := map[string]bool{}
	for len(queue) > 0 {
		n := queue[0]
		queue = queue[1:]
		if seen[n] {
			continue
		}
		seen[n] = true
		if err := checkName("service", n); err != nil {
			return err
		}
		p, err := s.FindDefinition(n)
		if err != nil {
			return err
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return fmt.Errorf("read %s: %w", p, unwrap(err))
		}
		svc, err := frontend.Parse(n, s.Owner.Inside(p), data)
		if err != nil {
			return &UsageError{Err: err}
		}
		svc.Enabled = true
		t.Put(svc)
		queue = append(queue, svc.Depends...)
		queue = append(queue, svc.Contents...)
	}
	if err := s.recompile(old, t); err != nil {
		return err
	}
	s.info("enabled in tree %s: %s", tname, join(names))
	return nil
}

// DisableServices disables names in tree tname. A service still needed by an
// enabled service that stays enabled, or one that is up, is refused.
func (s *System) DisableServices(tname string, names []string) error {
	old, err := s.Load(tname)
	if err != nil {
		return err
	}
	t := cloneTree(old.Tree)
	for _, n := range names {
		if err := checkName("service", n); err != nil {
			return err
		}
		if t.Service(n) == nil {
			return usage("service %s is not in tree %s", n, tname)
		}
	}
	for _, svc := range t.Services {
		if !svc.Enabled || slices.Contains(names, svc.Name) {
			continue
		}
		for _, d := range append(slices.Clone(svc.Depends), svc.Contents...) {
			if slices.Contains(names, d) {
				return usage("service %s of tree %s depends on %s: disable %s too", svc.Name, tname, d, svc.Name)
			}
		}
	}
	lt := s.Live.Tree(tname)
	if live, err := lt.Initialized(); err != nil {
		return err
	} else if live {
		up, err := s.up(lt, old)
		if err != nil {
			return err
		}
		var running []string
		for _, n := range names {
			if up[n] {
				running = append(running, n)
			}
		}
		if len(running) > 0 {
			return fmt.Errorf("service(s) %s of tree %s are up: stop them first with: %s",
				join(running), tname, s.Suggest.Cmd(append([]string{"stop", "-t", tname}, running...)...))
		}
	}
	for _, n := range names {
		svc := *t.Service(n)
		svc.Enabled = false
		t.Put(svc)
	}
	if err := s.recompile(old, t); err != nil {
		return err
	}
	s.info("disabled in tree %s: %s", tname, join(names))
	return nil
}

// recompile computes t's index and replaces old with it in old's format.
func (s *System) recompile(old *tree.Tree, t *model.Tree) error {
	x, err := compile.Index(t)
	if err != nil {
		return &UsageError{Err: fmt.Errorf("tree %s: %w", t.Name, err)}
	}
	t.Index = x
	_, err = s.Replace(old, t, old.Format)
	return err
}

// Init makes tree name live: its compiled link points at its database.
func (s *System) Init(name string) error {
	t, err := s.Load(name)
	if err != nil {
		return err
	}
	lt := s.Live.Tree(name)
	live, err := lt.Initialized()
	if err != nil {
		return err
	}
	if live {
		if target, err := lt.Target(); err == nil && target == t.CompiledDir() {
			s.info("tree %s is already initialized", name)
			// The backend's part is repeatable: services enabled since are
			// placed under supervision, a restarted supervisor rescans.
			return s.Backend.Init(lt, t.CompiledDir(), t.Index)
		}
	}
	// The record first: a record without a link is harmless, a link without
	// a record is not.
	if err := s.Store.SetLiveRecord(name, s.LiveDir); err != nil {
		return err
	}
	if err := lt.Link(t.CompiledDir()); err != nil {
		return err
	}
	if err := s.Backend.Init(lt, t.CompiledDir(), t.Index); err != nil {
		return err
	}
	s.info("initialized tree %s", name)
	return s.Collect(name)
}

// Uninit makes tree name not live: its live part is removed. A tree with
// services up is refused, since their supervision would be lost.
func (s *System) Uninit(name string) error {
	c, err := s.Condition(name)
	if err != nil {
		return err
	}
	if !c.Live {
		s.info("tree %s is not initialized", name)
		return nil
	}
	if len(c.Up) > 0 {
		return fmt.Errorf("tree %s has services up (%s): stop them first with: %s",
			name, join(c.Up), s.Suggest.Cmd(append([]string{"stop", "-t", name}, c.Up...)...))
	}
	t, err := s.Load(name)
	if err != nil {
		return err
	}
	if err := s.Backend.Uninit(s.Live.Tree(name), t.Index); err != nil {
		return err
	}
	if err := s.Live.Tree(name).Remove(); err != nil {
		return err
	}
	if err := s.Store.ClearLiveRecord(name); err != nil {
		return err
	}
	s.info("uninitialized tree %s", name)
	return s.Collect(name)
}

// Condition is what the migration core checks tunability against: how live
// a tree is right now.
type Condition struct {
	Tree    string
	Enabled bool
	// Live: the tree is initialized (its compiled link exists).
	Live bool
	// Up lists the services up, in start order; UpSupervised those of them
	// a supervisor watches (longruns and classics).
	Up, UpSupervised []string
}

// Condition reports the current condition of tree name.
func (s *System) Condition(name string) (Condition, error) {
	t, err := s.Load(name)
	if err != nil {
		return Condition{}, err
	}
	return s.ConditionOf(t)
}

// ConditionOf reports the current condition of a loaded tree.
func (s *System) ConditionOf(t *tree.Tree) (Condition, error) {
	name := t.Name
	st, err := s.Store.ReadState()
	if err != nil {
		return Condition{}, err
	}
	c := Condition{Tree: name}
	c.Enabled, _ = st.Enabled(name)
	lt := s.Live.Tree(name)
	if c.Live, err = lt.Initialized(); err != nil || !c.Live {
		return c, err
	}
	up, err := s.up(lt, t)
	if err != nil {
		return Condition{}, err
	}
	for _, e := range t.Index.Entries {
		if up[e.Name] {
			c.Up = append(c.Up, e.Name)
			if e.Type == model.Longrun || e.Type == model.Classic {
				c.UpSupervised = append(c.UpSupervised, e.Name)
			}
		}
	}
	return c, nil
}

// liveTree loads an initialized tree for start and stop.
func (s *System) liveTree(name string) (*tree.Tree, *livedb.Tree, error) {
	t, err := s.Load(name)
	if err != nil {
		return nil, nil, err
	}
	lt := s.Live.Tree(name)
	live, err := lt.Initialized()
	if err != nil {
		return nil, nil, err
	}
	if !live {
		return nil, nil, fmt.Errorf("tree %s is not initialized: run %s", name, s.Suggest.Cmd("init", name))
	}
	return t, lt, nil
}

// Start brings names and everything they depend on up, in start order.
func (s *System) Start(tname string, names []string) error {
	t, lt, err := s.liveTree(tname)
	if err != nil {
		return err
	}
	need, err := closure(t, names, func(e model.IndexEntry) []string { return e.Deps })
	if err != nil {
		return err
	}
	up, err := s.up(lt, t)
	if err != nil {
		return err
	}
	for _, e := range t.Index.Entries {
		if need[e.Name] && !up[e.Name] {
			if err := s.Backend.Start(lt, e); err != nil {
				return err
			}
			s.info("started %s of tree %s", e.Name, tname)
		}
	}
	return nil
}

// Stop brings names and everything depending on them down, in reverse start
// order.
func (s *System) Stop(tname string, names []string) error {
	t, lt, err := s.liveTree(tname)
	if err != nil {
		return err
	}
	users := map[string][]string{}
	for _, e := range t.Index.Entries {
		for _, d := range e.Deps {
			users[d] = append(users[d], e.Name)
		}
	}
	need, err := closure(t, names, func(e model.IndexEntry) []string { return users[e.Name] })
	if err != nil {
		return err
	}
	up, err := s.up(lt, t)
	if err != nil {
		return err
	}
	for i := len(t.Index.Entries) - 1; i >= 0; i-- {
		e := t.Index.Entries[i]
		if need[e.Name] && up[e.Name] {
			if err := s.Backend.Stop(lt, e); err != nil {
				return err
			}
			s.info("stopped %s of tree %s", e.Name, tname)
		}
	}
	return nil
}

// closure returns names and everything next reaches from them.
func closure(t *tree.Tree, names []string, next func(model.IndexEntry) []string) (map[string]bool, error) {
	need := map[string]bool{}
	queue := slices.Clone(names)
	for len(queue) > 0 {
		n := queue[0]
		queue = queue[1:]
		if need[n] {
			continue
		}
		if err := checkName("service", n); err != nil {
			return nil, err
		}
		e := t.Index.Entry(n)
		if e == nil {
			if t.Service(n) != nil {
				return nil, usage("service %s of tree %s is not enabled", n, t.Name)
			}
			return nil, usage("service %s is not in tree %s", n, t.Name)
		}
		need[n] = true
		queue = append(queue, next(*e)...)
	}
	return need, nil
}

// up reports which services of t are up.
func (s *System) up(lt *livedb.Tree, t *tree.Tree) (map[string]bool, error) {
	states, err := s.Backend.States(lt, t.Index)
	if err != nil {
		return nil, err
	}
	up := map[string]bool{}
	for n, st := range states {
		up[n] = st.Up
	}
	return up, nil
}

func upNames(t *tree.Tree, up map[string]bool) []string {
	var out []string
	for _, e := range t.Index.Entries {
		if up[e.Name] {
			out = append(out, e.Name)
		}
	}
	return out
}

func cloneTree(t *model.Tree) *model.Tree {
	c := *t
	c.Services = slices.Clone(t.Services)
	c.Allow = slices.Clone(t.Allow)
	return &c
}

func join(s []string) string {
	out := ""
	for i, x := range s {
		if i > 0 {
			out += " "
		}
		out += x
	}
	return out
}

func unwrap(err error) error { return fserr.Cause(err) }
