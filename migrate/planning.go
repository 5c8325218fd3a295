package migrate

import (
	"errors"

	"github.com/treeshift/treeshift/tree"
)

// Plan plans tree name's move to format to, checking its current condition.
// A hop that is AT_CREATION comes with the commands that recreate the tree.
func (e *Engine) Plan(name string, to int) (*Plan, error) {
	t, err := e.Load(name)
	if err != nil {
		return nil, err
	}
	return e.planLoaded(t, to)
}

// planLoaded is Plan for a tree the caller has loaded.
func (e *Engine) planLoaded(t *tree.Tree, to int) (*Plan, error) {
	c, err := e.ConditionOf(t)
	if err != nil {
		return nil, err
	}
	p, err := e.Registry.NewPlan(c, t.Format, to, e.Suggest)
	if err != nil {
		return nil, err
	}
	p.Drift = nonNilDrift(e.Drift(t))
	for _, h := range p.Hops {
		if h.Tunability == AtCreation {
			state, err := e.Store.ReadState()
			if err != nil {
				return nil, err
			}
			ts, err := e.TreeStatus(t, state)
			if err != nil {
				return nil, err
			}
			p.Recreate = Recreate(ts, state.Order, to, e.Suggest)
			break
		}
	}
	return p, nil
}

func nonNilDrift(d []Drift) []Drift {
	if d == nil {
		return []Drift{}
	}
	return d
}

// Plans plans the move of the trees names (all, in start order, when there
// are none) to format to.
func (e *Engine) Plans(names []string, to int) ([]*Plan, error) {
	// What update would refuse, plan does not approve.
	if p := e.StampProblem(); p != "" {
		return nil, errors.New(p)
	}
	if len(names) == 0 {
		var err error
		if names, err = e.Ordered(); err != nil {
			return nil, err
		}
	}
	plans := []*Plan{}
	var bad []string
	for _, n := range names {
		p, err := e.Plan(n, to)
		if err != nil {
			var ue *UsageError
			if errors.As(err, &ue) {
				return nil, err
			}
			// An unreadable tree is planned as what it is: not movable.
			p = &Plan{Tree: n, To: to, Hops: []Hop{}, Error: err.Error(), Drift: []Drift{}}
			bad = append(bad, n)
		}
		plans = append(plans, p)
	}
	if len(bad) > 0 {
		return plans, e.unreadable(bad)
	}
	return plans, nil
}
