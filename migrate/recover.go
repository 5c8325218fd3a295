package migrate

import (
	"fmt"
	"github.com/treeshift/treeshift/format"
	"sort"
	"strings"

	"github.com/treeshift/treeshift/tree"
)

// StuckError reports trees an interrupted run could not be finished or
// rolled back for, each with what stopped it and the way out. The other
// trees of that run were dealt with.
type StuckError struct {
	Trees map[string]error
	Cmd   func(args ...string) string
}

func (e *StuckError) Error() string {
	names := make([]string, 0, len(e.Trees))
	for n := range e.Trees {
		names = append(names, n)
	}
	sort.Strings(names)
	var b strings.Builder
	for i, n := range names {
		if i > 0 {
			b.WriteString("\n")
		}
		fmt.Fprintf(&b, "recover tree %s: %v", n, e.Trees[n])
	}
	return b.String()
}

// Recover finishes or rolls back an interrupted run, and returns the trees
// it dealt with. Each tree is finished on its own: one that cannot be is
// reported (a *StuckError) and stays in the journal, and the others are
// done with.
func (e *Engine) Recover() ([]string, error) {
	j, err := e.readJournal()
	if err != nil || j == nil {
		return nil, err
	}
	for _, x := range j.Trees {
		if j.committed(x) {
			e.act("complete interrupted transition of tree: %s to format %s", x.Tree, format.Name(x.To))
		} else {
			e.act("roll back interrupted transition of tree: %s to format %s", x.Tree, format.Name(x.From))
		}
	}
	// What the interrupted run moved may be in the page cache only (the
	// process was killed, the power stayed): a barrier makes it durable
	// before anything is removed, whatever this recovery moves itself.
	errs := e.finish(j, true)
	var names []string
	for _, x := range j.Trees {
		if errs[x.Tree] != nil {
			continue
		}
		names = append(names, x.Tree)
		if j.committed(x) {
			e.note(2, "completed the interrupted transition of tree %s to format %s", x.Tree, format.Name(x.To))
		} else {
			e.note(2, "rolled back the interrupted transition of tree %s: it is in format %s again", x.Tree, format.Name(x.From))
		}
	}
	if len(errs) > 0 {
		return names, &StuckError{Trees: errs}
	}
	return names, nil
}

// finish ends a run from its journal: a committed tree is put on its new
// generation (tree link, then live link), any other back on the one it
// was at; once the links are durably where they belong, copies and unused
// generations go, and a rolled back run's stamp is put back. Each tree is
// finished on its own, and the errors of those that could not be are
// returned by tree name; the journal is then rewritten with just those, or
// removed when there are none. Every step can be repeated, so a crash
// during finish is handled by finishing again.
//
// Links moved here are made durable by a barrier before anything is
// removed, and so are the links moved since the run's last barrier with
// force: a removal that survived a power loss the move did not would leave
// a link on nothing.
func (e *Engine) finish(j *journal, force bool) map[string]error {
	errs := map[string]error{}
	moved, back := force, false
	for _, x := range j.Trees {
		committed := j.committed(x) && !j.Torn
		m, err := e.finishTree(x, committed)
		moved = moved || m
		if err != nil {
			errs[x.Tree] = err
			continue
		}
		back = back || !committed
	}
	if moved {
		if err := e.barrier(); err != nil {
			for _, x := range j.Trees {
				if errs[x.Tree] == nil {
					errs[x.Tree] = err
				}
			}
			return errs
		}
	}
	if back && j.Stamp != nil {
		if err := e.restoreStamp(j.Stamp); err != nil {
			for _, x := range j.Trees {
				if errs[x.Tree] == nil {
					errs[x.Tree] = err
				}
			}
			return errs
		}
	}
	// What is no longer used goes into the trash, for the next change to
	// remove (the previous run's, emptied here): a rename per tree rather
	// than a removal per file. A private copy on another filesystem than
	// the trash's (a live directory on tmpfs) is removed.
	e.sweepTrash()
	l, err := e.Store.List()
	sep := false
	if err == nil {
		sep, err = e.separateLive()
	}
	cleanup := make([]error, len(j.Trees))
	e.parallel(len(j.Trees), func(i int, _ *lines) {
		x := j.Trees[i]
		if errs[x.Tree] != nil {
			return
		}
		if cleanup[i] = err; cleanup[i] == nil {
			if lt := e.Live.Tree(x.Tree); sep {
				cleanup[i] = lt.RemoveTemp()
			} else {
				cleanup[i] = lt.MoveTemp(e.Store.Trash)
			}
		}
		if cleanup[i] == nil {
			cleanup[i] = e.collect(x.Tree, l, true)
		}
	})
	for i, err := range cleanup {
		if err != nil {
			errs[j.Trees[i].Tree] = err
		}
	}
	if len(errs) == 0 {
		// Unsynced: a journal that comes back is finished again, the same
		// way; a command that changes a tree syncs the journal directory
		// first, so that none comes back after the tree changed.
		for _, f := range []string{journalEntry, committedEntry} {
			if err := e.Store.DropJournal(f); err != nil {
				for _, x := range j.Trees {
					errs[x.Tree] = err
				}
				return errs
			}
		}
		if err := e.Store.DropStagedState(); err != nil {
			for _, x := range j.Trees {
				errs[x.Tree] = err
			}
			return errs
		}
		e.note(4, "removed temporary copies and unused generations of %d tree(s); closed the journal", len(j.Trees))
		return errs
	}
	keep := func(x entry) bool { return errs[x.Tree] != nil }
	if err := e.rewriteJournal(j.File, keep, j.committed); err != nil {
		for _, x := range j.Trees {
			if errs[x.Tree] != nil {
				errs[x.Tree] = fmt.Errorf("%w; and the journal could not be rewritten: %v", errs[x.Tree], err)
			}
		}
	}
	return errs
}

// restoreStamp puts back the format stamp a rolled back run moved.
func (e *Engine) restoreStamp(m *stampMove) error {
	st, err := e.Store.ReadState()
	if err != nil || st.Stamp != m.To {
		return err
	}
	e.act("put back format stamp of %s to: %d", e.Store.Dir, m.From)
	st.Stamp = m.From
	return e.Store.WriteState(st)
}

// finishTree puts one tree's links where its journal entry says, unsynced,
// and says whether it moved one.
func (e *Engine) finishTree(x entry, committed bool) (moved bool, err error) {
	// A tree live in another live directory has a link this run cannot
	// see: moving or collecting anything could leave that link dangling.
	if x.Live && x.LiveDir != e.LiveDir {
		p := e.Suggest
		p.Live = x.LiveDir
		return false, &InconsistentError{fmt.Sprintf("tree %s was live in %s when its update was interrupted: recover with: %s",
			x.Tree, x.LiveDir, p.Cmd("update"))}
	}
	lt := e.Live.Tree(x.Tree)
	// After a reboot a live directory on tmpfs is empty: a tree not
	// initialized again has no link to move.
	live, err := lt.Initialized()
	if err != nil {
		return false, err
	}
	gen := x.Gen
	if committed {
		// A journal of schema 2 was committed once the links were durably
		// on the new generation, which it did not name.
		if gen = x.NewGen; gen == 0 {
			if gen, err = e.Store.CurrentGen(x.Tree); err != nil {
				return false, err
			}
		} else if fi, err := e.FS.Lstat(e.Store.GenDir(x.Tree, gen)); err != nil || !fi.IsDir() {
			return false, &InconsistentError{fmt.Sprintf("the generation its committed transition staged is missing: %s: "+
				"keep its newest readable generation with %s, or remove the tree with %s",
				e.Host(e.Store.GenDir(x.Tree, gen)), e.Suggest.Cmd("update", "--abandon", x.Tree), e.Suggest.Cmd("tree", "destroy", x.Tree))}
		}
	} else if _, err := e.Store.LoadGen(x.Tree, x.Gen); err != nil {
		return false, &InconsistentError{fmt.Sprintf("the generation it was at before the interrupted transition is unusable: %v: "+
			"keep its newest readable generation with %s, or remove the tree with %s",
			err, e.Suggest.Cmd("update", "--abandon", x.Tree), e.Suggest.Cmd("tree", "destroy", x.Tree))}
	}
	if cur, err := e.Store.CurrentGen(x.Tree); err != nil || cur != gen {
		moved = true
		if err := e.Store.Commit(x.Tree, gen, false); err != nil {
			return moved, err
		}
	}
	if live {
		m, err := e.relink(lt, e.Store.CompiledDir(x.Tree, gen), false)
		return moved || m, err
	}
	return moved, nil
}

// dropFromJournal removes tree name's entry from the open journal, closing
// the journal when it was the last.
func (e *Engine) dropFromJournal(name string) error {
	j, err := e.readJournal()
	if err != nil || j == nil {
		return err
	}
	others := 0
	for _, x := range j.Trees {
		if x.Tree != name {
			others++
		}
	}
	if others == len(j.Trees) {
		return nil
	}
	if others == 0 {
		if err := e.Store.DropStagedState(); err != nil {
			return err
		}
		return e.Store.RemoveJournal(j.File)
	}
	return e.rewriteJournal(j.File, func(x entry) bool { return x.Tree != name }, j.committed)
}

// Abandon gives up the interrupted transition of tree name, when it cannot
// be finished or rolled back (the generation it was at is damaged): the
// newest generation of the tree that reads and passes every check becomes
// current, the live link moves to it, and the tree leaves the journal. It
// returns that generation.
func (e *Engine) Abandon(name string) (*tree.Tree, error) {
	if err := checkName("tree", name); err != nil {
		return nil, err
	}
	unlock, err := e.Lock()
	if err != nil {
		return nil, err
	}
	defer unlock()
	j, err := e.readJournal()
	if err != nil {
		return nil, err
	}
	found := false
	if j != nil {
		for _, x := range j.Trees {
			found = found || x.Tree == name
		}
	}
	if !found {
		return nil, usage("tree %s has no interrupted transition to abandon", name)
	}
	gens, err := e.Store.Generations(name)
	if err != nil {
		return nil, err
	}
	var keep *tree.Tree
	var errs []string
	for i := len(gens) - 1; i >= 0; i-- {
		t, err := e.Store.LoadGen(name, gens[i])
		if err == nil {
			keep = t
			break
		}
		errs = append(errs, err.Error())
	}
	if keep == nil {
		return nil, fmt.Errorf("tree %s: no generation of it can be read (%s): remove it with %s",
			name, strings.Join(errs, "; "), e.Suggest.Cmd("tree", "destroy", name))
	}
	e.act("abandon interrupted transition of tree %s: keep generation %d, format %s", name, keep.Gen, format.Name(keep.Format))
	if err := e.Store.Commit(name, keep.Gen, true); err != nil {
		return nil, err
	}
	lt := e.Live.Tree(name)
	if live, err := lt.Initialized(); err != nil {
		return nil, err
	} else if live {
		if _, err := e.relink(lt, keep.CompiledDir(), true); err != nil {
			return nil, err
		}
		if err := e.Backend.Init(lt, keep.CompiledDir(), keep.Index); err != nil {
			return nil, err
		}
	}
	if err := e.dropFromJournal(name); err != nil {
		return nil, err
	}
	if err := lt.RemoveTemp(); err != nil {
		return nil, err
	}
	return keep, e.Collect(name)
}
