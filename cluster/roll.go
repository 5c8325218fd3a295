package cluster

import (
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/treeshift/treeshift/migrate"
)

func (st *State) quorum(rolling []string) (have, total int, ok bool) {
	for _, m := range st.Members {
		total += m.Votes
		if !slices.Contains(rolling, m.ID) {
			have += m.Votes
		}
	}
	if st.QuorumVote {
		total++
		have++
	}
	return have, total, 2*have > total
}

// RollStage rolls members: the next unrolled one when ids is empty. With
// parallel they roll together, and quorum must hold with all of them down;
// otherwise one after another.
func (c *Cluster) RollStage(ids []string, parallel bool) error {
	return c.transaction(func(st *State) error {
		if st.Stage != Postinstall && st.Stage != Roll {
			return st.expect(Roll)
		}
		if len(ids) == 0 {
			un := st.unrolled()
			if len(un) == 0 {
				return refuse("every member is rolled: the next stage is %s", Switch)
			}
			ids = un[:1]
		}
		for _, id := range ids {
			m := st.member(id)
			switch {
			case m == nil:
				return &migrate.UsageError{Err: fmt.Errorf("no member %s", id)}
			case id == st.Lead:
				return refuse("member %s is the lead: it was upgraded by the install stage", id)
			case m.Rolled:
				return refuse("member %s is rolled already", id)
			}
		}
		groups := [][]string{ids}
		if !parallel {
			groups = nil
			for _, id := range ids {
				groups = append(groups, []string{id})
			}
		}
		for _, g := range groups {
			if have, total, ok := st.quorum(g); !ok {
				var may []string
				for _, id := range st.unrolled() {
					if _, _, ok := st.quorum([]string{id}); ok {
						may = append(may, id)
					}
				}
				hint := "none: the cluster cannot lose any member's votes"
				if len(may) > 0 {
					hint = strings.Join(may, " ") + " (one at a time)"
				}
				return refuse("rolling %s would leave %d of %d votes, no quorum (more than half needed); members that may roll now: %s",
					strings.Join(g, " "), have, total, hint)
			}
		}
		for _, g := range groups {
			for _, id := range g {
				st.record(Roll, "start", id)
			}
			if err := c.Store.Save(st); err != nil {
				return err
			}
			errs := make([]error, len(g))
			var wg sync.WaitGroup
			for i, id := range g {
				wg.Add(1)
				go func() {
					defer wg.Done()
					errs[i] = c.transition(st.member(id), st.New)
				}()
			}
			wg.Wait()
			for i, id := range g {
				if errs[i] != nil {
					c.Store.Save(st)
					return errs[i]
				}
				st.member(id).Rolled = true
				st.record(Roll, "finish", id)
				c.say("member %s: rolled to format %d", id, st.New)
			}
			st.Stage = Roll
			if err := c.Store.Save(st); err != nil {
				return err
			}
		}
		if st.allRolled() {
			c.say("every member is rolled: the next stage is %s", Switch)
		}
		return nil
	})
}
