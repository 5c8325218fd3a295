package migrate

import (
	"errors"
	"fmt"
	"reflect"

	"github.com/treeshift/treeshift/system"
	"github.com/treeshift/treeshift/tree"
)

// Step is one undoable action of a migration.
type Step interface {
	// Describe says what the step does, for dry runs and tracing.
	Describe() string
	// Apply performs the step. Applying a step whose effect is already in
	// place does nothing.
	Apply() error
	// Undo reverts whatever Apply did, completely or in part: a step can
	// fail after its effect is in place (a rename done, its directory sync
	// failed), so Undo works from the state on disk, and undoing a step that
	// did nothing does nothing.
	Undo() error
}

// Run applies steps in order. When one fails, it and every step before it
// are undone in reverse order, and the error says what failed (and what
// could not be undone, if anything).
func Run(steps []Step, trace func(string)) error {
	for i, s := range steps {
		if trace != nil {
			trace(s.Describe())
		}
		if err := s.Apply(); err != nil {
			errs := []error{err}
			for j := i; j >= 0; j-- {
				if trace != nil {
					trace("undo: " + steps[j].Describe())
				}
				if uerr := steps[j].Undo(); uerr != nil {
					errs = append(errs, fmt.Errorf("undo %q: %w", steps[j].Describe(), uerr))
				}
			}
			return errors.Join(errs...)
		}
	}
	return nil
}

// convert is a hop: write the tree in format To as a new generation, check
// that it decodes to exactly the tree it was made from, and make it current.
type convert struct {
	store    *tree.Store
	name     string
	from, to int
	// set by Apply
	prev, next *tree.Tree
}

func (c *convert) Describe() string {
	return fmt.Sprintf("convert tree %s from format %d to format %d", c.name, c.from, c.to)
}

func (c *convert) Apply() error {
	cur, err := c.store.Load(c.name)
	if err != nil {
		return err
	}
	if cur.Format == c.to {
		return nil // already done: a re-run after a crash
	}
	if cur.Format != c.from {
		return fmt.Errorf("tree %s is in format %d, expected %d", c.name, cur.Format, c.from)
	}
	c.prev = cur
	next, err := c.store.Stage(cur.Tree, c.to)
	if err != nil {
		return err // Stage leaves nothing behind
	}
	c.next = next
	check, err := c.store.LoadGen(c.name, next.Gen)
	if err != nil {
		return err
	}
	if !reflect.DeepEqual(check.Tree, cur.Tree) {
		return fmt.Errorf("tree %s: format %d generation %s does not read back as the tree it was written from", c.name, c.to, next.Dir)
	}
	return c.store.Commit(next)
}

func (c *convert) Undo() error {
	if c.next == nil {
		return nil
	}
	// Point the tree back first, whether or not the commit happened, and
	// only then delete the new generation: the link never dangles.
	if err := c.store.Commit(c.prev); err != nil {
		return err
	}
	return c.store.RemoveGen(c.name, c.next.Gen)
}

// relink moves a live tree's compiled link to the tree's current database.
type relink struct {
	sys  *system.System
	name string
	prev string // the link's target before Apply
}

func (r *relink) Describe() string {
	return fmt.Sprintf("switch live database of tree %s to its new compiled database", r.name)
}

func (r *relink) Apply() error {
	cur, err := r.sys.Store.Load(r.name)
	if err != nil {
		return err
	}
	lt := r.sys.Live.Tree(r.name)
	if r.prev, err = lt.Target(); err != nil {
		return err
	}
	if r.prev == cur.CompiledDir() {
		return nil
	}
	return lt.Link(cur.CompiledDir())
}

func (r *relink) Undo() error {
	if r.prev == "" {
		return nil
	}
	return r.sys.Live.Tree(r.name).Link(r.prev)
}
