package migrate

import (
	"errors"
	"fmt"
	"slices"

	"github.com/treeshift/treeshift/format"
	"github.com/treeshift/treeshift/internal/model"
	"github.com/treeshift/treeshift/tree"
)

// checkName validates a tree or service name given on the command line.
func checkName(what, name string) error {
	if err := model.CheckName(name); err != nil {
		return usage("bad %s name: %v", what, err)
	}
	return nil
}

// Load loads tree name, reporting a missing tree as a usage error.
func (e *Engine) Load(name string) (*tree.Tree, error) {
	if err := checkName("tree", name); err != nil {
		return nil, err
	}
	t, err := e.Store.Load(name)
	var nf *tree.NotFoundError
	if errors.As(err, &nf) {
		return nil, &UsageError{Err: err}
	}
	if err != nil {
		return nil, err
	}
	if err := e.checkLiveDir(name); err != nil {
		return nil, err
	}
	return t, nil
}

// CheckTree reports a usage error if name is not a valid name of an
// existing tree of the owner, or is live in another live directory.
func (e *Engine) CheckTree(name string) error {
	if err := checkName("tree", name); err != nil {
		return err
	}
	if ok, err := e.Store.Exists(name); err != nil {
		return err
	} else if !ok {
		return &UsageError{Err: &tree.NotFoundError{Name: name}}
	}
	return e.checkLiveDir(name)
}

// checkLiveDir refuses a tree live in another live directory: its link is
// one this command cannot see, and working on the tree could remove the
// database that link uses.
func (e *Engine) checkLiveDir(name string) error {
	if rec, err := e.Store.LiveRecord(name); err != nil {
		return err
	} else if rec != "" && rec != e.LiveDir {
		return usage("tree %s is live in %s, not in %s: give -l %s", name, rec, e.LiveDir, rec)
	}
	return nil
}

// Ordered lists the owner's trees in start order: enabled trees in their
// order, then the others by name.
func (e *Engine) Ordered() ([]string, error) {
	names, err := e.Store.Names()
	if err != nil {
		return nil, err
	}
	st, err := e.Store.ReadState()
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

// CreateOptions are the settings of a new tree.
type CreateOptions struct {
	Format  int
	Current bool
	Enable  bool
	Allow   []string
	// After, if set, enables the tree and starts it after that tree.
	After string
}

// CreateTree creates an empty tree. A new system directory is stamped with
// the format its first tree is written in.
func (e *Engine) CreateTree(name string, o CreateOptions) error {
	if err := checkName("tree", name); err != nil {
		return err
	}
	if _, err := format.Get(o.Format); err != nil {
		return &UsageError{Err: err}
	}
	if ok, err := e.Store.Exists(name); err != nil {
		return err
	} else if ok {
		return usage("tree %s already exists", name)
	}
	st, err := e.Store.ReadState()
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
		allow = []string{e.Owner.Name}
	}
	for _, u := range allow {
		if err := checkName("user", u); err != nil {
			return err
		}
	}
	slices.Sort(allow)
	t := &model.Tree{Name: name, Allow: slices.Compact(allow)}
	nt, err := e.Store.Stage(t, o.Format, 0)
	if err != nil {
		return err
	}
	if err := e.Store.Sync(); err != nil {
		return err
	}
	if err := e.Store.Commit(name, nt.Gen, true); err != nil {
		return err
	}
	if st.Stamp == 0 {
		st.Stamp = o.Format
	}
	if o.Enable || o.After != "" {
		st.Order = insertAfter(st.Order, name, o.After)
	}
	if o.Current {
		st.Current = name
	}
	if err := e.Store.WriteState(st); err != nil {
		return err
	}
	e.note(2, "created tree %s in format %s", name, format.Name(o.Format))
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
// refused: destroying it would orphan running services. A tree whose
// records cannot be read can be destroyed once it is not live: that is the
// way out of a tree no treeshift can use. A live one is refused, saying
// how to take its live part down by hand: without its records, which of
// its services run cannot be told.
func (e *Engine) DestroyTree(name string) error {
	if err := e.CheckTree(name); err != nil {
		return err
	}
	t, loadErr := e.Store.Load(name)
	lt := e.Live.Tree(name)
	live, err := lt.Initialized()
	if err != nil {
		return err
	}
	if live && loadErr != nil {
		// uninit needs the records too (which services to let go of):
		// the way out is the supervisor's, then the live part by hand.
		return fmt.Errorf("tree %s is live and its records cannot be read (%v): treeshift cannot tell which of its services run; stop them with the supervisor, remove its live part (rm -r %s; with s6, also its services' links in %s), then run %s again",
			name, loadErr, e.Host(lt.Dir), e.Host(e.Live.ScanDir()), e.Suggest.Cmd("tree", "destroy", name))
	}
	if live {
		up, err := e.up(lt, t)
		if err != nil {
			return err
		}
		if names := upNames(t, up); len(names) > 0 {
			return fmt.Errorf("tree %s has services up (%s): stop them first with: %s",
				name, join(names), e.Suggest.Cmd(append([]string{"stop", "-t", name}, names...)...))
		}
	}
	st, err := e.Store.ReadState()
	if err != nil {
		return err
	}
	st.Order = slices.DeleteFunc(st.Order, func(n string) bool { return n == name })
	if st.Current == name {
		st.Current = ""
	}
	// The state first: a crash then leaves an unlisted tree, which is still
	// complete, rather than a listed tree that is half gone.
	if err := e.Store.WriteState(st); err != nil {
		return err
	}
	if live {
		if err := e.Backend.Uninit(lt, t.Index); err != nil {
			return err
		}
	}
	if err := lt.Remove(); err != nil {
		return err
	}
	if err := e.Store.ClearLiveRecord(name); err != nil {
		return err
	}
	if err := e.Store.Destroy(name); err != nil {
		return err
	}
	// A tree stuck in an unfinished update is destroyed whole: its
	// private copy and its journal entry go too.
	if err := lt.RemoveTemp(); err != nil {
		return err
	}
	if err := e.dropFromJournal(name); err != nil {
		return err
	}
	e.note(2, "destroyed tree %s", name)
	return nil
}

// SetTree changes a tree's place in the system state: enabled or not,
// current, or start position (after another tree).
func (e *Engine) SetTree(name string, change func(st *tree.State) error) error {
	if _, err := e.Load(name); err != nil {
		return err
	}
	st, err := e.Store.ReadState()
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
	return e.Store.WriteState(st)
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
