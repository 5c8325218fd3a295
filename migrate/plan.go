package migrate

import (
	"fmt"
	"github.com/treeshift/treeshift/format"

	"github.com/treeshift/treeshift/internal/suggest"
)

// Hop is one step of a plan: convert the tree from format From to format To.
type Hop struct {
	From       int        `json:"from"`
	To         int        `json:"to"`
	Tunability Tunability `json:"tunability"`
	// Declared is false when the hop takes the WHEN_UNMANAGED default.
	Declared bool `json:"declared"`
	// Satisfied: the tree's condition allows the hop now.
	Satisfied bool `json:"satisfied"`
	// Advice says what to do first when the hop is not satisfied.
	Advice string `json:"advice,omitempty"`
}

// Plan is the path of one tree from its format to a target, checked against
// the tree's condition when planned. It is data: nothing has been done.
type Plan struct {
	Tree string `json:"tree"`
	From int    `json:"from"`
	To   int    `json:"to"`
	Hops []Hop  `json:"hops"`
	// Recreate holds the commands that rebuild the tree in the target format
	// when a hop is AT_CREATION.
	Recreate []string `json:"recreate,omitempty"`
	// Error says why the tree could not be planned (it could not be read).
	Error string `json:"error,omitempty"`
	// Drift lists the enabled services whose definitions changed since
	// their records were built.
	Drift []Drift `json:"drift"`
}

// OK reports whether every hop is satisfied (an empty plan is, unless the
// tree could not be read).
func (p *Plan) OK() bool {
	if p.Error != "" {
		return false
	}
	for _, h := range p.Hops {
		if !h.Satisfied {
			return false
		}
	}
	return true
}

// RefusedError is a plan that cannot proceed, with what to do about it.
type RefusedError struct{ Plan *Plan }

func (e *RefusedError) Error() string {
	for _, h := range e.Plan.Hops {
		if !h.Satisfied {
			return fmt.Sprintf("tree %s: format %s to %s is %s: %s", e.Plan.Tree, format.Name(h.From), format.Name(h.To), h.Tunability, h.Advice)
		}
	}
	return "tree " + e.Plan.Tree + ": refused"
}

// NewPlan plans the move of a tree from format from to format to, checking
// each hop against condition c; cmd writes the commands its advice names.
func (r *Registry) NewPlan(c Condition, from, to int, cmd suggest.Prefix) (*Plan, error) {
	if r.Version(from) == nil {
		return nil, fmt.Errorf("tree %s is in format %s, which this treeshift does not know: refused", c.Tree, format.Name(from))
	}
	if r.Version(to) == nil {
		return nil, fmt.Errorf("unknown target format %d", to)
	}
	p := &Plan{Tree: c.Tree, From: from, To: to, Hops: []Hop{}}
	for _, h := range r.Path(from, to) {
		h.Satisfied, h.Advice = h.Tunability.Check(c, cmd)
		p.Hops = append(p.Hops, h)
	}
	return p, nil
}
