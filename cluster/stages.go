package cluster

import (
	"fmt"
	"io/fs"
	"path/filepath"
	"reflect"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/treeshift/treeshift/format"
	"github.com/treeshift/treeshift/internal/model"
	"github.com/treeshift/treeshift/migrate"
)

// InitOptions describe a new cluster.
type InitOptions struct {
	Members    []Member
	QuorumVote bool
	// Active is the format the members' trees are in; 0 finds it.
	Active int
}

// Init creates the cluster record and the shared trees.
func (c *Cluster) Init(o InitOptions) error {
	unlock, err := c.Store.Lock(c.wait())
	if err != nil {
		return err
	}
	defer unlock()
	if _, err := c.Store.Load(); err == nil {
		return refuse("a cluster record exists already")
	}
	if len(o.Members) == 0 {
		return &migrate.UsageError{Err: fmt.Errorf("a cluster needs members: --member ID=ROOT[:VOTES]")}
	}
	seen := map[string]bool{}
	for _, m := range o.Members {
		if err := model.CheckName(m.ID); err != nil {
			return &migrate.UsageError{Err: fmt.Errorf("member id: %v", err)}
		}
		if seen[m.ID] {
			return &migrate.UsageError{Err: fmt.Errorf("member %s given twice", m.ID)}
		}
		seen[m.ID] = true
	}
	st := &State{Schema: 1, Members: o.Members, QuorumVote: o.QuorumVote, Active: o.Active}
	for i := range st.Members {
		s, err := c.engine(&st.Members[i])
		if err != nil {
			return err
		}
		names, err := s.Store.Names()
		if err != nil {
			return err
		}
		for _, n := range names {
			v, err := s.Store.PeekFormat(n)
			if err != nil {
				return fmt.Errorf("member %s: %w", st.Members[i].ID, err)
			}
			if st.Active == 0 {
				st.Active = v
			} else if v != st.Active {
				return refuse("member %s: tree %s is in format %d, the cluster in %d: bring every member to one format first", st.Members[i].ID, n, v, st.Active)
			}
		}
	}
	if st.Active == 0 {
		st.Active = format.Newest()
	}
	sh, err := c.shared()
	if err != nil {
		return err
	}
	if ok, _ := sh.Store.Exists("cluster"); !ok {
		unlock, err := sh.LockTrees("cluster")
		if err != nil {
			return err
		}
		err = sh.CreateTree("cluster", migrate.CreateOptions{Format: st.Active, Enable: true})
		unlock()
		if err != nil {
			return err
		}
	}
	st.record("init", "finish", "")
	c.say("cluster of %d members, active format %d", len(st.Members), st.Active)
	return c.Store.Save(st)
}

// CheckSetup checks, changing nothing, that an upgrade to version to led by
// lead can roll: every member's trees decode, a path exists, tunability
// allows it with services running, and each member has room for its tagged
// copies. It returns the problems found.
func (c *Cluster) CheckSetup(lead string, to int) ([]string, error) {
	st, err := c.load()
	if err != nil {
		return nil, err
	}
	if st.member(lead) == nil {
		return nil, &migrate.UsageError{Err: fmt.Errorf("no member %s", lead)}
	}
	if err := st.expect(Setup); err != nil {
		return nil, err
	}
	var problems []string
	if migrate.Default().Version(to) == nil {
		return nil, &migrate.UsageError{Err: fmt.Errorf("unknown format version %d", to)}
	}
	for i := range st.Members {
		m := &st.Members[i]
		s, err := c.engine(m)
		if err != nil {
			problems = append(problems, err.Error())
			continue
		}
		names, err := s.Store.Names()
		if err != nil {
			problems = append(problems, fmt.Sprintf("member %s: %v", m.ID, err))
			continue
		}
		for _, n := range names {
			p, err := s.Plan(n, to)
			switch {
			case err != nil:
				problems = append(problems, fmt.Sprintf("member %s: %v", m.ID, err))
			case !p.OK():
				problems = append(problems, fmt.Sprintf("member %s: %v", m.ID, &migrate.RefusedError{Plan: p}))
			}
		}
		need, err := dirSize(s.Host(s.Store.Dir))
		if err != nil {
			problems = append(problems, fmt.Sprintf("member %s: %v", m.ID, err))
			continue
		}
		var fs unix.Statfs_t
		if err := unix.Statfs(m.Root, &fs); err == nil {
			if free := int64(fs.Bavail) * int64(fs.Bsize); free < need {
				problems = append(problems, fmt.Sprintf("member %s: %d bytes free on %s, tagged copies need %d", m.ID, free, m.Root, need))
			}
		}
	}
	return problems, nil
}

// dirSize adds up the sizes of the regular files below dir.
func dirSize(dir string) (int64, error) {
	var n int64
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Type().IsRegular() {
			if info, err := d.Info(); err == nil {
				n += info.Size()
			}
		}
		return nil
	})
	return n, err
}

// SetupStage records the target and lead and makes the tagged copies.
func (c *Cluster) SetupStage(lead string, to int) error {
	if problems, err := c.CheckSetup(lead, to); err != nil {
		return err
	} else if len(problems) > 0 {
		return refuse("setup refused:\n  %s", strings.Join(problems, "\n  "))
	}
	return c.stage(Setup, func(st *State) error {
		st.Lead, st.New, st.Old = lead, to, st.Active
		st.record(Setup, "start", lead)
		if err := c.Store.Save(st); err != nil {
			return err
		}
		for i := range st.Members {
			m := &st.Members[i]
			s, err := c.engine(m)
			if err != nil {
				return err
			}
			if err := s.Tag(st.Active); err != nil {
				return fmt.Errorf("member %s: %w", m.ID, err)
			}
			c.say("member %s: tagged copy %s", m.ID, s.Store.TagDir(st.Active))
			st.record(Setup, "finish", m.ID)
		}
		return nil
	})
}

// PreinstallStage verifies the lead's tagged copies against its trees.
func (c *Cluster) PreinstallStage() error {
	return c.stage(Preinstall, func(st *State) error {
		m := st.member(st.Lead)
		s, err := c.engine(m)
		if err != nil {
			return err
		}
		if err := verifyTagged(s, st.Active); err != nil {
			return fmt.Errorf("member %s: %w", m.ID, err)
		}
		c.say("member %s: tagged copies verified", m.ID)
		st.record(Preinstall, "finish", m.ID)
		return nil
	})
}

// verifyTagged checks that every tree has a tagged copy that decodes to the
// same tree.
func verifyTagged(s *migrate.Engine, v int) error {
	if !s.Store.HasTag(v) {
		return fmt.Errorf("no tagged copy at %s", s.Host(s.Store.TagDir(v)))
	}
	tagged := s.Store.Tagged(v)
	names, err := s.Store.Names()
	if err != nil {
		return err
	}
	for _, n := range names {
		cur, err := s.Store.Load(n)
		if err != nil {
			return err
		}
		tc, err := tagged.Load(n)
		if err != nil {
			return fmt.Errorf("tagged copy: %w", err)
		}
		if tc.Format != cur.Format || !reflect.DeepEqual(tc.Tree, cur.Tree) {
			return fmt.Errorf("tagged copy of tree %s differs from the tree", n)
		}
	}
	return nil
}

// transition moves one member's trees to version to, through the member's
// engine: recovery of an interrupted run first, then the journaled
// transition, then the stamp.
func (c *Cluster) transition(m *Member, to int) error {
	s, err := c.engine(m)
	if err != nil {
		return err
	}
	if _, err := s.Update(nil, to); err != nil {
		return fmt.Errorf("member %s: %w", m.ID, err)
	}
	return nil
}

// InstallStage transitions the lead member.
func (c *Cluster) InstallStage() error {
	return c.stage(Install, func(st *State) error {
		m := st.member(st.Lead)
		st.record(Install, "start", m.ID)
		if err := c.Store.Save(st); err != nil {
			return err
		}
		if err := c.transition(m, st.New); err != nil {
			return err
		}
		m.Rolled = true
		st.record(Install, "finish", m.ID)
		c.say("member %s: trees in format %d", m.ID, st.New)
		return nil
	})
}

// PostinstallStage checks that the lead is at the new format and healthy.
func (c *Cluster) PostinstallStage() error {
	return c.stage(Postinstall, func(st *State) error {
		m := st.member(st.Lead)
		if err := c.healthy(m, st.New); err != nil {
			return err
		}
		c.say("member %s: format %d, healthy", m.ID, st.New)
		st.record(Postinstall, "finish", m.ID)
		return nil
	})
}

// healthy checks that every tree of a member is at version v, decodes, has
// no interrupted transition, and that its live links resolve.
func (c *Cluster) healthy(m *Member, v int) error {
	s, err := c.engine(m)
	if err != nil {
		return err
	}
	if p, err := s.Pending(); err != nil || len(p) > 0 {
		return fmt.Errorf("member %s: an interrupted update of %v: %v", m.ID, p, err)
	}
	st, err := s.Status(nil)
	if err != nil {
		return fmt.Errorf("member %s: %w", m.ID, err)
	}
	for _, t := range st.Trees {
		if t.Format != v {
			return fmt.Errorf("member %s: tree %s is in format %d, not %d", m.ID, t.Name, t.Format, v)
		}
	}
	return nil
}

// quorum reports whether the cluster keeps quorum while the members in
// rolling are down: the votes of the others, and the quorum vote, must be
// more than half of all votes.
// SwitchStage moves the active version: the cluster-shared trees are
// migrated to it through the migration core.
func (c *Cluster) SwitchStage() error {
	return c.stage(Switch, func(st *State) error {
		st.record(Switch, "start", "")
		if err := c.Store.Save(st); err != nil {
			return err
		}
		sh, err := c.shared()
		if err != nil {
			return err
		}
		if _, err := sh.Update(nil, st.New); err != nil {
			return fmt.Errorf("shared trees: %w", err)
		}
		from := st.Active
		st.Active = st.New
		st.record(Switch, "finish", "")
		c.say("active format %d (was %d)", st.Active, from)
		return nil
	})
}

// CleanStage removes the tagged copies: the upgrade is complete.
func (c *Cluster) CleanStage() error {
	return c.transaction(func(st *State) error {
		if err := st.expect(Clean); err != nil {
			return err
		}
		for i := range st.Members {
			m := &st.Members[i]
			s, err := c.engine(m)
			if err != nil {
				return err
			}
			if err := s.Untag(st.Old); err != nil {
				return err
			}
			m.Rolled = false
		}
		st.record(Clean, "finish", "")
		st.Stage, st.New, st.Old, st.Lead = Idle, 0, 0, ""
		c.say("tagged copies removed: the upgrade to format %d is complete", st.Active)
		return c.Store.Save(st)
	})
}

// Undo undoes the most recent stage: a member's roll, postinstall, install,
// preinstall or setup, never anything from switch on.
func (c *Cluster) Undo(stage, member string) error {
	return c.transaction(func(st *State) error {
		switch {
		case st.Stage == Switch:
			return refuse("the active version was switched: nothing can be undone after %s", Switch)
		case st.Stage == Idle:
			return refuse("no upgrade under way: nothing to undo")
		case stage != st.Stage:
			return refuse("only the most recent stage can be undone: that is %s", st.Stage)
		}
		switch stage {
		case Roll:
			m := st.member(member)
			if m == nil || member == st.Lead || !m.Rolled {
				return refuse("give a rolled member to undo its roll: undo roll MEMBER (rolled: %s)", strings.Join(st.rolledOthers(), " "))
			}
			if err := c.restore(m, st.Active); err != nil {
				return err
			}
			m.Rolled = false
			if len(st.rolledOthers()) == 0 {
				st.Stage = Postinstall
			}
		case Postinstall:
			st.Stage = Install
		case Install:
			m := st.member(st.Lead)
			if err := c.restore(m, st.Active); err != nil {
				return err
			}
			m.Rolled = false
			st.Stage = Preinstall
		case Preinstall:
			st.Stage = Setup
		case Setup:
			for i := range st.Members {
				s, err := c.engine(&st.Members[i])
				if err != nil {
					return err
				}
				if err := s.Untag(st.Active); err != nil {
					return err
				}
			}
			st.Stage, st.New, st.Old, st.Lead = Idle, 0, 0, ""
		default:
			return refuse("stage %s cannot be undone", stage)
		}
		st.record(stage, "undo", member)
		c.say("undid %s%s", stage, map[bool]string{true: " of member " + member, false: ""}[member != ""])
		return c.Store.Save(st)
	})
}

func (st *State) rolledOthers() []string {
	var out []string
	for _, m := range st.Members {
		if m.Rolled && m.ID != st.Lead {
			out = append(out, m.ID)
		}
	}
	return out
}

// restore puts a member's trees back as its tagged copy of version v holds
// them, through the member's engine: a journaled transition back to each
// tree's tagged generation, verified, with the stamp moved back to v.
func (c *Cluster) restore(m *Member, v int) error {
	s, err := c.engine(m)
	if err != nil {
		return err
	}
	if _, err := s.Restore(v); err != nil {
		return fmt.Errorf("member %s: %w", m.ID, err)
	}
	c.say("member %s: restored from %s", m.ID, s.Store.TagDir(v))
	return nil
}
