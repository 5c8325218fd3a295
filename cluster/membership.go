package cluster

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	"github.com/treeshift/treeshift/internal/model"
	"github.com/treeshift/treeshift/migrate"
)

// Membership changes during an upgrade, as clu_upgrade allows them: a
// member that died may be deleted, so that the roll can finish without
// it; a member may be added, and is brought to the stage the cluster is at
// (its tagged copy, then its roll) before switch, so that switch still
// finds every member at the new format. Both are recorded like stages
// (stage "membership", events add and delete) and shown by status.

// MaxVotes bounds a member's votes.
const MaxVotes = 64

// CheckMember checks a member's id and votes, as given on a command line.
func CheckMember(m Member) error {
	if err := model.CheckName(m.ID); err != nil {
		return &migrate.UsageError{Err: fmt.Errorf("member id: %v", err)}
	}
	if m.Votes < 0 || m.Votes > MaxVotes {
		return &migrate.UsageError{Err: fmt.Errorf("member %s: %d votes: a member has 0 to %d", m.ID, m.Votes, MaxVotes)}
	}
	return nil
}

// Membership is the stage records of changes of membership are filed
// under.
const Membership = "membership"

// AddMember adds member m to the cluster. Its trees must be in the
// cluster's active format (unrolled members run it until switch), and it
// must be up. During an upgrade it makes its tagged copy, and once the
// lead is installed (postinstall or roll) it rolls, as any member would,
// if quorum allows: otherwise it is added and set up, and `roll ID` rolls
// it later.
func (c *Cluster) AddMember(ctx context.Context, m Member) error {
	if err := c.checkAdd(m); err != nil {
		return err
	}
	var st *State
	err := c.locked(ctx, func() error {
		var err error
		if st, _, err = c.load(ctx); err != nil {
			return err
		}
		added, err := c.finishedFor(ctx, Membership, "add", m.ID)
		if err != nil {
			return err
		}
		if !added {
			if st.member(m.ID) != nil {
				return &migrate.UsageError{Err: fmt.Errorf("member %s is in the cluster already", m.ID)}
			}
			if err := checkRoots(append(slices.Clone(st.Members), m)); err != nil {
				return refuse("%v", err)
			}
			if err := c.canJoin(ctx, st, m); err != nil {
				return err
			}
			st, err = c.change(ctx, func(t *tx) error {
				if t.st.member(m.ID) != nil {
					return &migrate.UsageError{Err: fmt.Errorf("member %s is in the cluster already", m.ID)}
				}
				t.st.Members = append(t.st.Members, Member{ID: m.ID, Root: m.Root, Votes: m.Votes})
				t.rec(Membership, "add", m.ID).Votes = m.Votes
				return nil
			})
			if err != nil {
				return err
			}
			need, total := st.votes()
			c.say("member %s added (%d vote(s)): quorum is now %d of %d votes", m.ID, m.Votes, need, total)
		}
		if !st.settingUp() {
			return nil
		}
		// The cluster is being upgraded: the member is set up as the
		// others were.
		if err := c.carryAll(ctx, Setup, []want{{member: m.ID, action: ActTag, version: st.Old}}); err != nil {
			return err
		}
		c.say("member %s: tagged copy of format %d made", m.ID, st.Old)
		return nil
	})
	if err != nil || (st.Stage != Postinstall && st.Stage != Roll) {
		return err
	}
	if mm := st.member(m.ID); mm != nil && mm.Rolled {
		return nil
	}
	if err := c.RollStage(ctx, []string{m.ID}, false); err != nil {
		return fmt.Errorf("member %s added and set up, not rolled: %w; roll it later: %s", m.ID, err, c.cmd(Roll, m.ID))
	}
	return nil
}

// checkAdd checks a member to add as given, before anything is read.
func (c *Cluster) checkAdd(m Member) error {
	if err := CheckMember(m); err != nil {
		return err
	}
	_, dir := c.Store.(*DirStore)
	if dir && m.Root == "" {
		return &migrate.UsageError{Err: fmt.Errorf("member %s: a directory store needs the member's root: expected ID=ROOT[:VOTES]", m.ID)}
	}
	if !dir && m.Root != "" {
		return &migrate.UsageError{Err: fmt.Errorf("member %s: with an etcd store a member's root is its agent's --root, on its host: ID[:VOTES]", m.ID)}
	}
	return nil
}

// settingUp reports whether an upgrade is under way whose members hold
// tagged copies: from setup until switch.
func (st *State) settingUp() bool {
	switch st.Stage {
	case Setup, Preinstall, Install, Postinstall, Roll:
		return true
	}
	return false
}

// votes is the votes of every member and the quorum vote, and how many
// are needed for quorum.
func (st *State) votes() (need, total int) {
	for _, m := range st.Members {
		total += m.Votes
	}
	if st.QuorumVote {
		total++
	}
	return total/2 + 1, total
}

// canJoin refuses a member that is down or whose trees are not in the
// cluster's active format.
func (c *Cluster) canJoin(ctx context.Context, st *State, m Member) error {
	var v *View
	if es, ok := c.Store.(*EtcdStore); ok {
		views, err := c.refreshed(ctx, es, refreshRequest{Members: []string{m.ID}})
		if err != nil {
			return err
		}
		v = view(views, m.ID)
	} else {
		r := c.site(&m).observe()
		v = &View{Report: r, Up: true}
		if len(r.Trees) == 0 && len(r.Problems) > 0 {
			v.Up, v.Down = false, fmt.Sprintf("member %s is down: %s", m.ID, r.Problems[0])
		}
	}
	if !v.Up {
		return refuse("member %s cannot be added: it %s", m.ID, strings.TrimPrefix(v.Down, "member "+m.ID+" "))
	}
	if off := offFormat(m.ID, v.Report, st.Active); len(off) > 0 {
		return refuse("member %s cannot be added: %s", m.ID, strings.TrimPrefix(off[0], "member "+m.ID+": "))
	}
	if len(v.Report.Pending) > 0 || !v.Report.Healthy {
		return refuse("member %s cannot be added: %s", m.ID, strings.Join(v.Report.Problems, "; "))
	}
	return nil
}

// DeleteMember removes member id from the cluster: only when it is down
// (a member up is working; stop its agent, or lose it, first). A task it
// had not finished is abandoned, and said so in the record. The lead may
// not go while it is being installed: undo to setup, or bring it back.
func (c *Cluster) DeleteMember(ctx context.Context, id string) error {
	if err := model.CheckName(id); err != nil {
		return &migrate.UsageError{Err: fmt.Errorf("member id: %v", err)}
	}
	return c.locked(ctx, func() error {
		st, _, err := c.load(ctx)
		if err != nil {
			return err
		}
		m := st.member(id)
		if m == nil {
			return &migrate.UsageError{Err: fmt.Errorf("no member %s (members: %s)", id, strings.Join(ids(st), " "))}
		}
		if len(st.Members) == 1 {
			return refuse("member %s is the cluster's only member: a cluster needs one", id)
		}
		if id == st.Lead && (st.Stage == Setup || st.Stage == Preinstall || st.Stage == Install) {
			return refuse("member %s is the lead of the upgrade under way, not yet installed: bring it back up, or undo the upgrade to %s first", id, Setup)
		}
		views, err := c.views(ctx, st, false)
		if err != nil {
			return err
		}
		if v := view(views, id); v.Up {
			when := ""
			if v.Report != nil {
				when = fmt.Sprintf(" (it reported from %s at %s)", v.Report.Host, v.Report.Time.Format("15:04:05"))
			}
			// With a directory store a member is up while its root
			// reads: there is no agent to stop.
			how := "stop its agent first"
			if _, dir := c.Store.(*DirStore); dir {
				how = "its root " + view(views, id).reportOrEmpty().Root + " still reads as a system"
			}
			return refuse("member %s is up%s: only a member that is down can be deleted; %s", id, when, how)
		}
		var left []string
		st, err = c.change(ctx, func(t *tx) error {
			m := t.st.member(id)
			if m == nil {
				return &migrate.UsageError{Err: fmt.Errorf("no member %s", id)}
			}
			left = nil
			if tk := m.Task; tk.Outstanding() {
				left = append(left, fmt.Sprintf("its %s to format %d (task %d, %s) is abandoned", label(tk.Stage, tk.Action), tk.Version, tk.Seq, tk.State))
			}
			r := t.rec(Membership, "delete", id)
			r.Votes, r.Changes = m.Votes, left
			t.st.Members = slices.DeleteFunc(t.st.Members, func(x Member) bool { return x.ID == id })
			return nil
		})
		if err != nil {
			return err
		}
		need, total := st.votes()
		c.say("member %s deleted (%d vote(s)): quorum is now %d of %d votes", id, m.Votes, need, total)
		for _, l := range left {
			c.say("member %s: %s", id, l)
		}
		if st.Stage == Roll && st.allRolled() {
			c.say("every member is rolled: the next stage is %s", Switch)
		}
		return nil
	})
}

// ConfigID is the id of a configuration document: the first 12 hex digits
// of the SHA-256 of its canonical form (as encoding/json writes it).
func ConfigID(doc []byte) string {
	sum := sha256.Sum256(doc)
	return hex.EncodeToString(sum[:])[:12]
}

// Configure stores configuration cfg (read and checked from file) in the
// cluster record: every member applies it when it rolls, in the same run
// as its move to the new format (migrate.Engine.UpdateWith). Members that
// rolled before keep the configuration they applied, and status says
// which.
func (c *Cluster) Configure(ctx context.Context, cfg *migrate.Config, file string) (*ConfigRef, error) {
	doc, err := json.Marshal(cfg)
	if err != nil {
		return nil, err
	}
	id := ConfigID(doc)
	if _, _, err := c.load(ctx); err != nil {
		return nil, err
	}
	if err := c.Store.PutConfig(ctx, id, doc); err != nil {
		return nil, err
	}
	var ref *ConfigRef
	_, err = c.change(ctx, func(t *tx) error {
		ref = &ConfigRef{ID: id, File: file, Writer: t.w}
		t.st.Config = ref
		t.rec("configure", "configure", "").Config = id
		return nil
	})
	if err != nil {
		return nil, err
	}
	c.say("configuration %s stored from %s: members apply it when they roll", id, file)
	return ref, nil
}
