package migrate

import (
	"errors"
	"fmt"
	"path/filepath"
	"reflect"

	"github.com/treeshift/treeshift/format"
	"github.com/treeshift/treeshift/internal/compile"
	"github.com/treeshift/treeshift/internal/model"
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

// chain carries a tree through the hops of one plan. Only the last hop
// writes: the intermediate formats are encoded and decoded in memory, which
// proves each conversion lossless without a generation on disk per hop.
type chain struct {
	gen  int         // the generation to start from; 0: the current one
	orig *tree.Tree  // the tree on disk when the first hop ran
	cur  *model.Tree // the tree as the previous hop left it
	next *tree.Tree  // the generation the last hop staged
	done bool        // the tree was already in the plan's target format
}

// convert is a hop: convert the tree to format To and check that the result
// decodes to exactly the tree it was made from. The last hop writes it as a
// new generation beside the current one and checks it as read back from
// disk; the commit step then makes that generation current.
type convert struct {
	store    *tree.Store
	name     string
	from, to int
	target   int  // the plan's target format
	last     bool // stage the result
	unsynced bool // leave the staged generation for the caller to sync
	ch       *chain
}

func (c *convert) Describe() string {
	return fmt.Sprintf("convert tree %s from format %d to format %d", c.name, c.from, c.to)
}

func (c *convert) Apply() error {
	if c.ch.orig == nil {
		var cur *tree.Tree
		var err error
		if c.ch.gen != 0 {
			cur, err = c.store.LoadGen(c.name, c.ch.gen)
		} else {
			cur, err = c.store.Load(c.name)
		}
		if err != nil {
			return err
		}
		c.ch.orig, c.ch.cur = cur, cur.Tree
		c.ch.done = c.ch.gen == 0 && cur.Format == c.target // a re-run after a crash
		if !c.ch.done && cur.Format != c.from {
			return fmt.Errorf("tree %s is in format %d, expected %d", c.name, cur.Format, c.from)
		}
	}
	if c.ch.done {
		return nil
	}
	if !c.last {
		codec, err := format.Get(c.to)
		if err != nil {
			return err
		}
		files, err := codec.Encode(c.ch.cur)
		if err != nil {
			return err
		}
		got, _, err := format.ReadFiles(files)
		if err != nil {
			return fmt.Errorf("tree %s: format %d does not read back: %w", c.name, c.to, err)
		}
		if !reflect.DeepEqual(got, c.ch.cur) {
			return fmt.Errorf("tree %s: format %d does not read back as the tree it was written from", c.name, c.to)
		}
		c.ch.cur = got
		return nil
	}
	stage := c.store.Stage
	if c.unsynced {
		stage = c.store.StageUnsynced
	}
	next, err := stage(c.ch.cur, c.to)
	if err != nil {
		return err // staging leaves nothing behind
	}
	c.ch.next = next
	check, err := c.store.LoadGen(c.name, next.Gen)
	if err != nil {
		return err
	}
	if !reflect.DeepEqual(check.Tree, c.ch.orig.Tree) {
		return fmt.Errorf("tree %s: format %d generation %s does not read back as the tree it was written from", c.name, c.to, next.Dir)
	}
	c.ch.next = &tree.Tree{Tree: identity(check.Tree), Format: check.Format, Gen: check.Gen, Dir: check.Dir}
	// What is left to do (commit, undo) needs the original generation's
	// number, not its tree: let the tree go.
	orig := *c.ch.orig
	orig.Tree = &model.Tree{Name: orig.Name}
	c.ch.orig, c.ch.cur = &orig, nil
	return nil
}

// identity is t without what only a conversion needs: service definitions'
// descriptions, users, sources and scripts. What is left is what a status
// compares (system.TreeStatus).
func identity(t *model.Tree) *model.Tree {
	id := &model.Tree{Name: t.Name, Allow: t.Allow, Index: t.Index, Services: make([]model.Service, len(t.Services))}
	for i, s := range t.Services {
		id.Services[i] = model.Service{Name: s.Name, Type: s.Type, Version: s.Version, Enabled: s.Enabled,
			Digest: s.Digest, Depends: s.Depends, Contents: s.Contents}
	}
	return id
}

func (c *convert) Undo() error {
	if !c.last || c.ch.next == nil {
		return nil
	}
	err := c.store.RemoveGen(c.name, c.ch.next.Gen)
	c.ch.next = nil
	return err
}

// commit makes the staged generation the tree's current one.
type commit struct {
	store    *tree.Store
	name     string
	ch       *chain
	unsynced bool
	done     bool
}

func (c *commit) Describe() string {
	return "update db: make the new generation of tree " + c.name + " current"
}

func (c *commit) Apply() error {
	if c.ch.done || c.ch.next == nil {
		return nil
	}
	c.done = true // even a failed rename may have happened; Undo checks
	if c.unsynced {
		return c.store.CommitUnsynced(c.ch.next)
	}
	return c.store.Commit(c.ch.next)
}

// Undo points the tree back at the generation it was at. The staged
// generation stays until its own step is undone or it is collected, so the
// link never dangles.
func (c *commit) Undo() error {
	if !c.done {
		return nil
	}
	if c.unsynced {
		return c.store.CommitUnsynced(c.ch.orig)
	}
	return c.store.Commit(c.ch.orig)
}

// relink moves a live tree's compiled link to the tree's current database.
type relink struct {
	sys      *system.System
	name     string
	unsynced bool
	prev     string // the link's target before Apply
}

func (r *relink) link(target string) error {
	lt := r.sys.Live.Tree(r.name)
	if r.unsynced {
		return lt.LinkUnsynced(target)
	}
	return lt.Link(target)
}

func (r *relink) Describe() string {
	lt := r.sys.Live.Tree(r.name)
	return fmt.Sprintf("update %s to: %s", r.sys.Owner.Inside(lt.LinkPath()),
		filepath.Join(r.sys.Owner.SystemDir(), "tree", r.name, "compiled"))
}

func (r *relink) Apply() error {
	gen, err := r.sys.Store.CurrentGen(r.name)
	if err != nil {
		return err
	}
	compiled := filepath.Join(r.sys.Store.GenDir(r.name, gen), compile.Dir)
	lt := r.sys.Live.Tree(r.name)
	if r.prev, err = lt.Target(); err != nil {
		return err
	}
	if r.prev == compiled {
		return nil
	}
	return r.link(compiled)
}

func (r *relink) Undo() error {
	if r.prev == "" {
		return nil
	}
	return r.link(r.prev)
}
