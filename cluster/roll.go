package cluster

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/treeshift/treeshift/migrate"
)

// quorum counts the votes the cluster keeps while the members in rolling
// are down: those of the members that are up and not rolling, plus the
// quorum vote, against all expected votes. A member that is down counts
// for nothing, rolling or not.
func (st *State) quorum(up map[string]bool, rolling []string) (have, total int, ok bool) {
	for _, m := range st.Members {
		total += m.Votes
		if up[m.ID] && !slices.Contains(rolling, m.ID) {
			have += m.Votes
		}
	}
	if st.QuorumVote {
		total++
		have++
	}
	return have, total, 2*have > total
}

// rolling lists the members whose roll is asked for and not over.
func (st *State) rolling() []string {
	var out []string
	for _, m := range st.Members {
		if m.Task.Outstanding() && m.Task.Action == ActUpdate && m.Task.Stage == Roll {
			out = append(out, m.ID)
		}
	}
	return out
}

// mayRoll lists the members that could begin their roll now, alongside
// those rolling.
func (st *State) mayRoll(up map[string]bool, rolling []string) []string {
	var out []string
	for _, id := range st.unrolled() {
		if !up[id] || slices.Contains(rolling, id) {
			continue
		}
		if _, _, ok := st.quorum(up, append(slices.Clone(rolling), id)); ok {
			out = append(out, id)
		}
	}
	return out
}

// RollStage rolls members: the next unrolled one that is up when ids is
// empty. With parallel they roll together, and quorum must hold with all
// of them (and every member already rolling) down; otherwise one after
// another. The quorum check and the request are one change of the record:
// two operators rolling members from two hosts at once each see the
// other's roll, or retry on the record that has it.
//
// With etcd the long-stage lock is held only while the rolls are asked
// for: the wait for the agents is without it, so other operators may roll
// other members meanwhile. With a directory store this process carries the
// rolls out itself, under the lock.
func (c *Cluster) RollStage(ctx context.Context, ids []string, parallel bool) error {
	unlock, err := c.Store.Lock(ctx, c.wait())
	if err != nil {
		return err
	}
	locked := true
	defer func() {
		if locked {
			unlock()
		}
	}()
	st, _, err := c.load(ctx)
	if err != nil {
		return err
	}
	if st.Stage != Postinstall && st.Stage != Roll {
		return st.expect(Roll)
	}
	views, err := c.views(ctx, st, false)
	if err != nil {
		return err
	}
	up := map[string]bool{}
	for id, v := range views {
		up[id] = v.Up
	}
	if len(ids) == 0 && c.op != nil {
		// The members a coordinator before this one picked.
		for _, m := range st.Members {
			if m.Task != nil && m.Task.Op == c.op.id && m.Task.Stage == Roll && m.Task.Action == ActUpdate {
				ids = append(ids, m.ID)
			}
		}
	}
	if len(ids) == 0 {
		un := st.unrolled()
		if len(un) == 0 {
			return refuse("every member is rolled: the next stage is %s", Switch)
		}
		ids = un[:1]
		for _, id := range un {
			if up[id] && !slices.Contains(st.rolling(), id) {
				ids = []string{id}
				break
			}
		}
	}
	groups := [][]string{ids}
	if !parallel {
		groups = nil
		for _, id := range ids {
			groups = append(groups, []string{id})
		}
	}
	_, agents := c.Store.(*EtcdStore)
	for gi, g := range groups {
		if !locked {
			if unlock, err = c.Store.Lock(ctx, c.wait()); err != nil {
				return err
			}
			locked = true
			// Liveness may have changed while the last group rolled.
			if views, err = c.views(ctx, st, false); err != nil {
				return err
			}
			for id, v := range views {
				up[id] = v.Up
			}
		}
		seqs, err := c.request(ctx, Roll, wants(g, st), func(t *tx) error {
			if err := t.st.mayBegin(g, up, views); err != nil {
				return err
			}
			// The roll stage begins with its first roll.
			t.st.Stage = Roll
			return nil
		})
		if err != nil {
			return err
		}
		if st, _, err = c.load(ctx); err != nil {
			return err
		}
		rolling := st.rolling()
		for _, id := range g {
			c.say("member %s: rolling to format %d", id, st.New)
		}
		left := 0
		for _, id := range st.unrolled() {
			if !slices.Contains(rolling, id) {
				left++
			}
		}
		switch {
		case left == 0 && len(g) == 1:
			c.say("this is the last member requiring a roll")
		case left == 0:
			c.say("these are the last members requiring a roll")
		case len(st.mayRoll(up, rolling)) > 0 && gi == len(groups)-1:
			c.say("you may now begin the roll of another member")
		}
		if agents {
			// The agents roll; wait for them without the lock, so
			// that other operators may roll other members meanwhile.
			unlock()
			locked = false
		}
		if err := c.carry(ctx, seqs); err != nil {
			return err
		}
		c.rolled(g, st.New)
	}
	st, _, err = c.load(ctx)
	if err != nil {
		return err
	}
	if st.allRolled() {
		c.say("every member is rolled: the next stage is %s", Switch)
	}
	return nil
}

func (c *Cluster) rolled(g []string, v int) {
	for _, id := range g {
		c.say("member %s: rolled to format %d", id, v)
	}
}

func wants(g []string, st *State) []want {
	var ws []want
	for _, id := range g {
		ws = append(ws, want{member: id, action: ActUpdate, version: st.New, tagged: st.Old})
	}
	return ws
}

// mayBegin refuses the roll of group g unless each member exists, is not
// the lead nor rolled, is up, and quorum holds with g and every member
// already rolling down.
func (st *State) mayBegin(g []string, up map[string]bool, views map[string]*View) error {
	if st.Stage != Postinstall && st.Stage != Roll {
		return st.expect(Roll)
	}
	rolling := st.rolling()
	for _, id := range g {
		m := st.member(id)
		switch {
		case m == nil:
			return &migrate.UsageError{Err: fmt.Errorf("no member %s", id)}
		case id == st.Lead:
			return refuse("member %s is the lead: it was upgraded by the install stage", id)
		case m.Rolled:
			return refuse("member %s is rolled already", id)
		case !up[id]:
			return refuse("%s: it cannot be rolled", view(views, id).Down)
		}
	}
	all := slices.Clone(rolling)
	for _, id := range g {
		if !slices.Contains(all, id) {
			all = append(all, id)
		}
	}
	if have, total, ok := st.quorum(up, all); !ok {
		var may []string
		for _, id := range st.unrolled() {
			if !up[id] || slices.Contains(rolling, id) {
				continue
			}
			if _, _, ok := st.quorum(up, append(slices.Clone(rolling), id)); ok {
				may = append(may, id)
			}
		}
		hint := "none: the cluster cannot lose any more votes"
		if len(may) > 0 {
			hint = strings.Join(may, " ") + " (one at a time)"
		}
		var why []string
		if others := without(rolling, g); len(others) > 0 {
			why = append(why, "rolling now: "+strings.Join(others, " "))
		}
		for _, m := range st.Members {
			if !up[m.ID] {
				why = append(why, view(views, m.ID).Down)
			}
		}
		extra := ""
		if len(why) > 0 {
			extra = " (" + strings.Join(why, "; ") + ")"
		}
		return refuse("rolling %s would leave %d of %d votes, no quorum (more than half needed)%s; members that may roll now: %s",
			strings.Join(g, " "), have, total, extra, hint)
	}
	return nil
}

func without(a, b []string) []string {
	var out []string
	for _, x := range a {
		if !slices.Contains(b, x) {
			out = append(out, x)
		}
	}
	return out
}
