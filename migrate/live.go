package migrate

import (
	"fmt"
	"path"

	"github.com/treeshift/treeshift/internal/model"
	"github.com/treeshift/treeshift/internal/supervisor/s6"
	"github.com/treeshift/treeshift/livedb"
	"github.com/treeshift/treeshift/tree"
)

// relink points a live tree's compiled link at the database target. It is
// the only code that moves a live link: init, a recompile of a live tree,
// every step of a transition, and recovery all call it. A link already
// there is left alone, so a rollback or a recovery that finds the link
// where it belongs writes nothing; moved says whether it moved. With
// synced the move is durable on return; otherwise the caller syncs the
// live directory.
func (e *Engine) relink(lt *livedb.Tree, target string, synced bool) (moved bool, err error) {
	if cur, err := lt.Target(); err == nil && cur == target {
		return false, nil
	}
	if err := lt.Link(target, synced); err != nil {
		return true, err
	}
	e.note(4, "live link %s now points at %s", lt.LinkPath(), target)
	return true, nil
}

// replace writes t in format v as the next generation of old, makes it the
// current one, moves the live link to it if the tree is live, and then
// removes every generation that neither the tree nor the live link uses,
// including leftovers of an interrupted earlier change.
func (e *Engine) replace(old *tree.Tree, t *model.Tree, v int) (*tree.Tree, error) {
	nt, err := e.Store.Stage(t, v, 0)
	if err != nil {
		return nil, err
	}
	if err := e.Store.Sync(); err != nil {
		e.Store.RemoveGen(nt.Name, nt.Gen)
		return nil, err
	}
	if err := e.Store.Commit(nt.Name, nt.Gen, true); err != nil {
		return nil, err
	}
	lt := e.Live.Tree(t.Name)
	live, err := lt.Initialized()
	if err != nil {
		return nil, err
	}
	if live {
		if _, err := e.relink(lt, nt.CompiledDir(), true); err != nil {
			return nil, err
		}
		if err := e.Backend.Init(lt, nt.CompiledDir(), nt.Index); err != nil {
			return nil, err
		}
	}
	return nt, e.Collect(t.Name)
}

// Collect removes the generations of tree name that nothing points at:
// neither the tree's link nor its live link; and what interrupted link
// swaps left beside both links.
// It empties the trash a transition left (tree.Store.TrashDir).
func (e *Engine) Collect(name string) error {
	e.sweepTrash()
	l, err := e.Store.List()
	if err != nil {
		return err
	}
	return e.collect(name, l, false)
}

// sweepTrash empties the trash a transition left. Nothing in it is used,
// so a failure to remove it (an entry made immutable, a disk error) is
// said and left for later, never a reason to fail: garbage that belongs to
// no tree must not hold any.
func (e *Engine) sweepTrash() {
	if err := e.Store.SweepTrash(); err != nil {
		e.warn("the trash %s could not be emptied (%v): nothing in it is used; remove it by hand once the cause is fixed", e.Host(e.Store.TrashDir()), err)
	}
}

// collect is Collect with the trees directory as listed in l, for a run
// over many trees, which lists it once; with trash, generations are moved
// into the trash rather than removed.
func (e *Engine) collect(name string, l *tree.Listing, trash bool) error {
	keep := map[string]bool{}
	gen, err := e.Store.CurrentGen(name)
	if err != nil {
		return err
	}
	keep[e.Store.GenDir(name, gen)] = true
	lt := e.Live.Tree(name)
	if live, err := lt.Initialized(); err != nil {
		return err
	} else if live {
		if target, err := lt.Target(); err == nil {
			keep[path.Dir(target)] = true
		}
	}
	for _, g := range l.Gens[name] {
		if dir := e.Store.GenDir(name, g); !keep[dir] {
			remove := e.Store.RemoveGen
			if trash {
				remove = e.Store.TrashGen
			}
			if err := remove(name, g); err != nil {
				return err
			}
		}
	}
	if err := e.Store.SweepSwaps(l, name); err != nil {
		return err
	}
	return lt.Sweep()
}

// Init makes tree name live: its compiled link points at its database.
func (e *Engine) Init(name string) error {
	t, err := e.Load(name)
	if err != nil {
		return err
	}
	lt := e.Live.Tree(name)
	live, err := lt.Initialized()
	if err != nil {
		return err
	}
	if live {
		if target, err := lt.Target(); err == nil && target == t.CompiledDir() {
			e.note(2, "tree %s is already initialized", name)
			// The backend's part is repeatable: services enabled since are
			// placed under supervision, a restarted supervisor rescans.
			return e.Backend.Init(lt, t.CompiledDir(), t.Index)
		}
	}
	// The record first: a record without a link is harmless, a link without
	// a record is not.
	if err := e.Store.SetLiveRecord(name, e.LiveDir); err != nil {
		return err
	}
	if _, err := e.relink(lt, t.CompiledDir(), true); err != nil {
		return err
	}
	if err := e.Backend.Init(lt, t.CompiledDir(), t.Index); err != nil {
		return err
	}
	e.note(2, "initialized tree %s", name)
	return e.Collect(name)
}

// Uninit makes tree name not live: its live part is removed. A tree with
// services up is refused, since their supervision would be lost.
func (e *Engine) Uninit(name string) error {
	t, err := e.Load(name)
	if err != nil {
		return err
	}
	c, err := e.ConditionOf(t)
	if err != nil {
		return err
	}
	if !c.Live {
		e.note(2, "tree %s is not initialized", name)
		return nil
	}
	if len(c.Up) > 0 {
		return fmt.Errorf("tree %s has services up (%s): stop them first with: %s",
			name, join(c.Up), e.Suggest.Cmd(append([]string{"stop", "-t", name}, c.Up...)...))
	}
	lt := e.Live.Tree(name)
	if err := e.Backend.Uninit(lt, t.Index); err != nil {
		return err
	}
	if err := lt.Remove(); err != nil {
		return err
	}
	if err := e.Store.ClearLiveRecord(name); err != nil {
		return err
	}
	e.note(2, "uninitialized tree %s", name)
	return e.Collect(name)
}

// Condition is what tunability is checked against: how live a tree is
// right now. It is a plain value, so the planner can be tested without a
// system.
type Condition struct {
	Tree    string
	Enabled bool
	// Live: the tree is initialized (its compiled link exists).
	Live bool
	// Up lists the services up, in start order; Monitored those of them
	// whose supervisor would restart them if they stopped (longruns and
	// classics not unmonitored).
	Up, Monitored []string
}

// ConditionOf reports the current condition of a loaded tree.
func (e *Engine) ConditionOf(t *tree.Tree) (Condition, error) {
	st, err := e.Store.ReadState()
	if err != nil {
		return Condition{}, err
	}
	c := Condition{Tree: t.Name}
	c.Enabled, _ = st.Enabled(t.Name)
	lt := e.Live.Tree(t.Name)
	if c.Live, err = lt.Initialized(); err != nil || !c.Live {
		return c, err
	}
	states, err := e.Backend.States(lt, t.Index)
	if err != nil {
		return Condition{}, err
	}
	for _, x := range t.Index.Entries {
		if st := states[x.Name]; st.Up {
			c.Up = append(c.Up, x.Name)
			if (x.Type == model.Longrun || x.Type == model.Classic) && !st.Unmonitored {
				c.Monitored = append(c.Monitored, x.Name)
			}
		}
	}
	return c, nil
}

// Unmonitor pauses the supervision of services names of tree tname, which
// keep running: what a WHEN_UNMONITORED hop asks for. Services that are
// down, or that no supervisor watches (oneshots, bundles), are left alone.
func (e *Engine) Unmonitor(tname string, names []string) error { return e.monitor(tname, names, false) }

// Monitor resumes the supervision of services names of tree tname.
func (e *Engine) Monitor(tname string, names []string) error { return e.monitor(tname, names, true) }

func (e *Engine) monitor(tname string, names []string, on bool) error {
	t, lt, err := e.liveTree(tname)
	if err != nil {
		return err
	}
	need, err := closure(t, names, func(model.IndexEntry) []string { return nil })
	if err != nil {
		return err
	}
	states, err := e.Backend.States(lt, t.Index)
	if err != nil {
		return err
	}
	for _, x := range t.Index.Entries {
		st := states[x.Name]
		if !need[x.Name] || !st.Up || (x.Type != model.Longrun && x.Type != model.Classic) || st.Unmonitored != on {
			continue
		}
		if on {
			err = e.Backend.Monitor(lt, x)
		} else {
			err = e.Backend.Unmonitor(lt, x)
		}
		if err != nil {
			return err
		}
		if on {
			e.note(2, "resumed supervision of %s of tree %s", x.Name, tname)
		} else {
			e.note(2, "paused supervision of %s of tree %s (it keeps running)", x.Name, tname)
		}
	}
	return nil
}

// StartSupervisor makes name ("files" or "s6") the owner's supervisor
// backend, starting an s6-svscan on the owner's scan directory for s6, and
// returns its pid. Switching while trees are live under the current one is
// refused: their services would be lost track of.
func (e *Engine) StartSupervisor(name string) (int, error) {
	cur, err := e.Live.Backend()
	if err != nil {
		return 0, err
	}
	if cur != name {
		names, err := e.Store.Names()
		if err != nil {
			return 0, err
		}
		for _, n := range names {
			if live, err := e.Live.Tree(n).Initialized(); err != nil {
				return 0, err
			} else if live {
				return 0, fmt.Errorf("trees are live under the %s supervisor: stop their services and uninit them before switching to %s", cur, name)
			}
		}
	}
	pid := 0
	if name == "s6" {
		if err := e.Live.PrepareScan(); err != nil {
			return 0, err
		}
		if pid, err = s6.StartScan(e.Host(e.Live.ScanDir()), ServiceTimeout); err != nil {
			return 0, err
		}
	}
	return pid, e.Live.SetBackend(name)
}

// StopSupervisor stops the owner's s6-svscan, bringing its services down,
// and reports whether there was one.
func (e *Engine) StopSupervisor() (bool, error) {
	name, err := e.Live.Backend()
	if err != nil || name != "s6" {
		return false, err
	}
	return true, s6.StopScan(e.Host(e.Live.ScanDir()), ServiceTimeout)
}
