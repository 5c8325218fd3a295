package migrate

import (
	"fmt"
	"github.com/treeshift/treeshift/format"
	"path"
	"reflect"

	"github.com/treeshift/treeshift/tree"
)

// A cluster member whose roll is undone goes back to its tagged copy: each
// tree's tagged generation is cloned in as a new generation beside the
// current one and made current through the same journaled transition as a
// change of format, verified against the tagged tree.

// restoreBuild is the build that restores tree t from the tagged store.
type restoreBuild struct {
	e      *Engine
	name   string
	orig   int
	next   int // the generation to make
	src    *tree.Store
	srcGen int
	format int
	staged *tree.Tree
	want   *tree.Tree
}

// restoreBuild returns the build restoring t from tagged, and the state the
// restored tree must have: the tagged tree's services, with t's place in
// the system state and t's live state.
func (e *Engine) restoreBuild(t *tree.Tree, tagged *tree.Store, ts TreeStatus, newGen int) (*restoreBuild, saved, error) {
	gen, err := tagged.CurrentGen(t.Name)
	if err != nil {
		return nil, saved{}, fmt.Errorf("tagged copy of tree %s: %w", t.Name, err)
	}
	tt, err := tagged.LoadGen(t.Name, gen)
	if err != nil {
		return nil, saved{}, fmt.Errorf("tagged copy of tree %s: %w", t.Name, err)
	}
	if !reflect.DeepEqual(tt.Index, t.Index) {
		return nil, saved{}, &InconsistentError{fmt.Sprintf("tree %s: its enabled services differ from its tagged copy's: restoring it would change what runs", t.Name)}
	}
	want := saveOf(ts)
	id := identity(tt.Tree)
	want.Allow = id.Allow
	want.Services = saveOf(TreeStatus{Services: serviceStatuses(id)}).Services
	b := &restoreBuild{e: e, name: t.Name, orig: t.Gen, next: newGen, src: tagged, srcGen: gen, format: tt.Format,
		want: &tree.Tree{Tree: id, Format: tt.Format}}
	return b, want, nil
}

func (b *restoreBuild) Steps() []Step      { return []Step{b} }
func (b *restoreBuild) Staged() *tree.Tree { return b.staged }
func (b *restoreBuild) Orig() int          { return b.orig }

func (b *restoreBuild) Describe() string {
	return fmt.Sprintf("restore tree %s from its tagged copy, format %s", b.name, format.Name(b.format))
}

func (b *restoreBuild) Apply() error {
	st := b.e.Store
	dir := st.GenDir(b.name, b.next)
	if err := st.FS.CloneTree(b.src.GenDir(b.name, b.srcGen), dir); err != nil {
		st.FS.RemoveAll(dir)
		return err
	}
	t, err := st.LoadGen(b.name, b.next)
	if err != nil {
		st.RemoveGen(b.name, b.next)
		return err
	}
	if !reflect.DeepEqual(identity(t.Tree), b.want.Tree) {
		st.RemoveGen(b.name, b.next)
		return fmt.Errorf("tree %s: the restored generation %s does not read back as its tagged copy", b.name, path.Base(dir))
	}
	b.staged = &tree.Tree{Tree: identity(t.Tree), Format: t.Format, Gen: t.Gen, Dir: t.Dir}
	return nil
}

func (b *restoreBuild) Undo() error {
	if b.staged == nil {
		return nil
	}
	err := b.e.Store.RemoveGen(b.name, b.staged.Gen)
	b.staged = nil
	return err
}

// Restore moves every tree of the owner back to its generation in the
// tagged copy of version v, through the journaled transition, and moves the
// stamp to v. Trees the tagged copy does not hold are refused.
func (e *Engine) Restore(v int) (*UpdateReport, error) {
	if !e.Store.HasTag(v) {
		return nil, fmt.Errorf("no tagged copy of format %d at %s", v, e.Host(e.Store.TagDir(v)))
	}
	unlock, err := e.Lock()
	if err != nil {
		return nil, err
	}
	defer unlock()
	report := &UpdateReport{Schema: 1, DryRun: e.DryRun, To: v, Recovered: []string{}, Trees: []Result{}}
	recovered, err := e.Recover()
	report.Recovered = append(report.Recovered, recovered...)
	if err != nil {
		return report, err
	}
	names, err := e.Ordered()
	if err != nil {
		return report, err
	}
	tagged := e.Store.Tagged(v)
	report.Trees = e.transition(names, target{to: v, tagged: tagged})
	var bad []string
	for _, r := range report.Trees {
		if r.Error != "" {
			bad = append(bad, r.Tree)
		}
	}
	if len(bad) > 0 {
		return report, &NotUpdatedError{Trees: bad}
	}
	return report, e.stamp(v, false)
}

// Tag makes the tagged copy of version v of the owner's trees (see
// tree.Store.Tag), under the owner lock.
func (e *Engine) Tag(v int) error {
	unlock, err := e.LockTrees()
	if err != nil {
		return err
	}
	defer unlock()
	return e.Store.Tag(v)
}

// Untag removes the tagged copy of version v, under the owner lock.
func (e *Engine) Untag(v int) error {
	unlock, err := e.LockTrees()
	if err != nil {
		return err
	}
	defer unlock()
	return e.Store.Untag(v)
}
