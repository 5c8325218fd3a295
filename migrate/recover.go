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
		if x.Committed {
			e.act("complete interrupted transition of tree: %s to format %s", x.Tree, format.Name(x.To))
		} else {
			e.act("roll back interrupted transition of tree: %s to format %s", x.Tree, format.Name(x.From))
		}
	}
	errs := e.finish(j)
	var names []string
	for _, x := range j.Trees {
		if errs[x.Tree] != nil {
			continue
		}
		names = append(names, x.Tree)
		if x.Committed {
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

// finish ends a run from its journal: a committed tree keeps its new
// generation (its live link on it), any other goes back to the generation
// it was at, its tree link first, then its live link; then copies and
// unused generations go. Each tree is finished on its own, and the errors
// of those that could not be are returned by tree name; the journal is then
// rewritten with just those, or closed when there are none. Every step can
// be repeated, so a crash during finish is handled by finishing again.
func (e *Engine) finish(j *journal) map[string]error {
	errs := map[string]error{}
	for _, x := range j.Trees {
		if err := e.finishTree(x); err != nil {
			errs[x.Tree] = err
		}
	}
	cleanup := make([]error, len(j.Trees))
	e.parallel(len(j.Trees), func(i int, _ *lines) {
		x := j.Trees[i]
		if errs[x.Tree] != nil {
			return
		}
		if cleanup[i] = e.Live.Tree(x.Tree).RemoveTemp(); cleanup[i] == nil {
			cleanup[i] = e.Collect(x.Tree)
		}
	})
	for i, err := range cleanup {
		if err != nil {
			errs[j.Trees[i].Tree] = err
		}
	}
	if len(errs) == 0 {
		if err := e.Store.RemoveJournal(journalEntry); err != nil {
			for _, x := range j.Trees {
				errs[x.Tree] = err
			}
			return errs
		}
		e.note(4, "removed temporary copies and unused generations of %d tree(s); closed the journal", len(j.Trees))
		return errs
	}
	kept := *j
	kept.Trees = nil
	for _, x := range j.Trees {
		if errs[x.Tree] != nil {
			kept.Trees = append(kept.Trees, x)
		}
	}
	if err := e.writeJournal(&kept); err != nil {
		for _, x := range kept.Trees {
			errs[x.Tree] = fmt.Errorf("%w; and the journal could not be rewritten: %v", errs[x.Tree], err)
		}
	}
	return errs
}

// finishTree puts one tree's links where its journal entry says.
func (e *Engine) finishTree(x entry) error {
	// A tree live in another live directory has a link this run cannot
	// see: moving or collecting anything could leave that link dangling.
	if x.Live && x.LiveDir != e.LiveDir {
		p := e.Suggest
		p.Live = x.LiveDir
		return &InconsistentError{fmt.Sprintf("tree %s was live in %s when its update was interrupted: recover with: %s",
			x.Tree, x.LiveDir, p.Cmd("update"))}
	}
	lt := e.Live.Tree(x.Tree)
	// After a reboot a live directory on tmpfs is empty: a tree not
	// initialized again has no link to move.
	live, err := lt.Initialized()
	if err != nil {
		return err
	}
	if x.Committed {
		if !live {
			return nil
		}
		gen, err := e.Store.CurrentGen(x.Tree)
		if err != nil {
			return err
		}
		compiled := e.Store.CompiledDir(x.Tree, gen)
		if cur, err := lt.Target(); err == nil && cur == compiled {
			return nil
		}
		return e.relink(lt, compiled, true)
	}
	if _, err := e.Store.LoadGen(x.Tree, x.Gen); err != nil {
		return &InconsistentError{fmt.Sprintf("the generation it was at before the interrupted transition is unusable: %v: "+
			"keep its newest readable generation with %s, or remove the tree with %s",
			err, e.Suggest.Cmd("update", "--abandon", x.Tree), e.Suggest.Cmd("tree", "destroy", x.Tree))}
	}
	if err := e.Store.Commit(x.Tree, x.Gen, true); err != nil {
		return err
	}
	if live {
		return e.relink(lt, e.Store.CompiledDir(x.Tree, x.Gen), true)
	}
	return nil
}

// dropFromJournal removes tree name's entry from the open journal, closing
// the journal when it was the last.
func (e *Engine) dropFromJournal(name string) error {
	j, err := e.readJournal()
	if err != nil || j == nil {
		return err
	}
	kept := *j
	kept.Trees = nil
	for _, x := range j.Trees {
		if x.Tree != name {
			kept.Trees = append(kept.Trees, x)
		}
	}
	if len(kept.Trees) == len(j.Trees) {
		return nil
	}
	if len(kept.Trees) == 0 {
		return e.Store.RemoveJournal(journalEntry)
	}
	return e.writeJournal(&kept)
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
		if err := e.relink(lt, keep.CompiledDir(), true); err != nil {
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
