package migrate

import (
	"strconv"
	"strings"

	"github.com/treeshift/treeshift/internal/suggest"

	"github.com/treeshift/treeshift/system"
	"github.com/treeshift/treeshift/tree"
)

// Migrator plans and runs format changes of one owner's trees.
type Migrator struct {
	Sys      *system.System
	Registry *Registry
	// Trace receives each step as it runs, if set.
	Trace func(string)
}

// Plan plans tree name's move to format to, checking its current condition.
// A hop that is AT_CREATION comes with the commands that recreate the tree.
func (m *Migrator) Plan(name string, to int) (*Plan, error) {
	t, err := m.Sys.Load(name)
	if err != nil {
		return nil, err
	}
	return m.PlanLoaded(t, to)
}

// PlanLoaded is Plan for a tree the caller has loaded.
func (m *Migrator) PlanLoaded(t *tree.Tree, to int) (*Plan, error) {
	name := t.Name
	c, err := m.Sys.ConditionOf(t)
	if err != nil {
		return nil, err
	}
	p, err := m.Registry.NewPlan(c, t.Format, to, m.Sys.Suggest)
	if err != nil {
		return nil, err
	}
	for _, h := range p.Hops {
		if h.Tunability == AtCreation {
			st, err := m.Sys.Status([]string{name})
			if err != nil {
				return nil, err
			}
			state, err := m.Sys.Store.ReadState()
			if err != nil {
				return nil, err
			}
			p.Recreate = Recreate(st.Trees[0], state.Order, to, m.Sys.Suggest)
			break
		}
	}
	return p, nil
}

// Conversion is the steps that change a tree's format: one per hop, the
// last staging the new generation, and the commit that makes it current.
type Conversion struct {
	Hops   []Step
	Commit Step
	ch     *chain
}

// Staged returns the new generation once the last hop has run, or nil. It
// is the generation as read back from disk, and it carries what a status
// shows (system.TreeStatus): each service's identity, the index, the tree's
// users. Definitions and scripts are let go once the read-back matched, so a
// run over many trees does not hold every tree whole between its phases.
func (c Conversion) Staged() *tree.Tree { return c.ch.next }

// Convert returns the conversion steps of plan p. The first hop reads
// generation gen of the tree, the one the plan was made from; gen 0 means
// whichever generation is current when the hop runs (after a crash, that
// may already be the target). With unsynced, the staged generation is not
// synced: the caller syncs the store (Store.Sync) between the hops and the
// commit.
func (m *Migrator) Convert(p *Plan, gen int, unsynced bool) Conversion {
	ch := &chain{gen: gen}
	var c Conversion
	for i, h := range p.Hops {
		c.Hops = append(c.Hops, &convert{store: m.Sys.Store, name: p.Tree, from: h.From, to: h.To,
			target: p.To, last: i == len(p.Hops)-1, unsynced: unsynced, ch: ch})
	}
	c.Commit = &commit{store: m.Sys.Store, name: p.Tree, ch: ch, unsynced: unsynced}
	c.ch = ch
	return c
}

// Relink returns the step that moves tree name's live link to the tree's
// current database; unsynced leaves the link's directory for the caller to
// sync.
func (m *Migrator) Relink(name string, unsynced bool) Step {
	return &relink{sys: m.Sys, name: name, unsynced: unsynced}
}

// Steps returns the steps that carry out plan p: one conversion per hop,
// the commit, then, for a live tree, the switch of its live link to the new
// database.
func (m *Migrator) Steps(p *Plan) ([]Step, error) {
	if len(p.Hops) == 0 {
		return nil, nil
	}
	c := m.Convert(p, 0, false)
	steps := append(c.Hops, c.Commit)
	live, err := m.Sys.Live.Tree(p.Tree).Initialized()
	if err != nil {
		return nil, err
	}
	if live {
		steps = append(steps, &relink{sys: m.Sys, name: p.Tree})
	}
	return steps, nil
}

// Migrate moves tree name to format to: plan, refuse before any change if a
// hop is not allowed now, run the steps (undoing them all if one fails), and
// remove the generations nothing uses any more.
func (m *Migrator) Migrate(name string, to int) (*Plan, error) {
	p, err := m.Plan(name, to)
	if err != nil {
		return nil, err
	}
	if !p.OK() {
		return p, &RefusedError{Plan: p}
	}
	steps, err := m.Steps(p)
	if err != nil {
		return p, err
	}
	if err := Run(steps, m.Trace); err != nil {
		return p, err
	}
	return p, m.Sys.Collect(name)
}

// Recreate returns the commands that rebuild tree ts from scratch in format
// v, with its services, start position, current flag, allowed users and
// live state; order is the owner's start order of enabled trees, and cmd
// writes each command.
func Recreate(ts system.TreeStatus, order []string, v int, cmd suggest.Prefix) []string {
	T := ts.Name
	var cmds []string
	if up := upServices(ts); len(up) > 0 {
		cmds = append(cmds, cmd.Cmd(append([]string{"stop", "-t", T}, up...)...))
	}
	if ts.Live.Initialized {
		cmds = append(cmds, cmd.Cmd("uninit", T))
	}
	cmds = append(cmds, cmd.Cmd("tree", "destroy", T))
	create := Creation(ts, order, v, cmd)
	cmds = append(cmds, create[0])
	// A first tree is re-created last in the order; move the others back
	// behind it, one after another.
	if ts.Enabled && ts.Position == 1 {
		prev := T
		for _, n := range order[1:] {
			cmds = append(cmds, cmd.Cmd("tree", "order", n, "--after", prev))
			prev = n
		}
	}
	return append(cmds, create[1:]...)
}

// Creation returns the commands that create tree ts in format v as it is
// now, on a system where the trees before it in the start order (order)
// exist already: tree create with its flags, enable of its enabled
// services, init if it is live, start of its services that are up; cmd
// writes each command.
func Creation(ts system.TreeStatus, order []string, v int, cmd suggest.Prefix) []string {
	T := ts.Name
	create := []string{"tree", "create", "--format", strconv.Itoa(v)}
	if ts.Enabled {
		if ts.Position > 1 {
			create = append(create, "-S", order[ts.Position-2])
		} else {
			create = append(create, "-E")
		}
	}
	if ts.Current {
		create = append(create, "-c")
	}
	if len(ts.Allow) > 0 {
		create = append(create, "-a", strings.Join(ts.Allow, ","))
	}
	cmds := []string{cmd.Cmd(append(create, T)...)}
	var enabled []string
	for _, s := range ts.Services {
		if s.Enabled {
			enabled = append(enabled, s.Name)
		}
	}
	if len(enabled) > 0 {
		cmds = append(cmds, cmd.Cmd(append([]string{"enable", "-t", T}, enabled...)...))
	}
	if ts.Live.Initialized {
		cmds = append(cmds, cmd.Cmd("init", T))
	}
	if up := upServices(ts); len(up) > 0 {
		cmds = append(cmds, cmd.Cmd(append([]string{"start", "-t", T}, up...)...))
	}
	return cmds
}

func upServices(ts system.TreeStatus) []string {
	var up []string
	for _, s := range ts.Live.Services {
		if s.Up {
			up = append(up, s.Name)
		}
	}
	return up
}
