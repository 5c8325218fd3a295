package cluster

import (
	"context"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/treeshift/treeshift/format"
	"github.com/treeshift/treeshift/migrate"
)

// InitOptions describe a new cluster.
type InitOptions struct {
	Members    []Member
	QuorumVote bool
	// Active is the format the members' trees are in; 0 finds it.
	Active int
}

// locked runs fn holding the store's long-stage lock.
func (c *Cluster) locked(ctx context.Context, fn func() error) error {
	unlock, err := c.Store.Lock(ctx, c.wait())
	if err != nil {
		return err
	}
	defer unlock()
	return fn()
}

// Init creates the cluster record (and, with a directory store, the shared
// trees). Every member must be up — with etcd, its agent running — and the
// members' trees must agree on one format.
func (c *Cluster) Init(ctx context.Context, o InitOptions) error {
	// The command line is checked before the store is reached.
	if len(o.Members) == 0 {
		return &migrate.UsageError{Err: fmt.Errorf("a cluster needs members: --member %s[:VOTES]", c.memberSyntax())}
	}
	_, dir := c.Store.(*DirStore)
	seen := map[string]bool{}
	for _, m := range o.Members {
		if err := CheckMember(m); err != nil {
			return err
		}
		if seen[m.ID] {
			return &migrate.UsageError{Err: fmt.Errorf("member %s given twice", m.ID)}
		}
		if dir && m.Root == "" {
			return &migrate.UsageError{Err: fmt.Errorf("member %s: a directory store needs the member's root: expected ID=ROOT[:VOTES]", m.ID)}
		}
		if !dir && m.Root != "" {
			return &migrate.UsageError{Err: fmt.Errorf("member %s: with an etcd store a member's root is its agent's --root, on its host: --member ID[:VOTES]", m.ID)}
		}
		seen[m.ID] = true
	}
	if err := checkRoots(o.Members); err != nil {
		return &migrate.UsageError{Err: err}
	}
	return c.locked(ctx, func() error {
		if _, _, err := c.Store.Load(ctx); err == nil {
			return refuse("a cluster record exists already")
		}
		st := &State{Schema: Schema, Members: o.Members, QuorumVote: o.QuorumVote, Active: o.Active}
		views, err := c.views(ctx, st, true)
		if err != nil {
			return err
		}
		if err := refuseDown(views, ids(st), "init"); err != nil {
			return err
		}
		for _, m := range st.Members {
			for _, t := range views[m.ID].Report.Trees {
				if st.Active == 0 {
					st.Active = t.Format
				} else if t.Format != st.Active {
					return refuse("member %s: tree %s is in format %d, the cluster in %d: bring every member to one format first", m.ID, t.Name, t.Format, st.Active)
				}
			}
		}
		if st.Active == 0 {
			st.Active = format.Newest()
		}
		if c.Shared != "" {
			if err := c.initShared(st.Active); err != nil {
				return err
			}
		}
		t := &tx{st: st, w: writer()}
		t.rec("init", "finish", "")
		st.Written = t.w
		if err := c.Store.Commit(ctx, st, Rev{}, t.add, false); err != nil {
			return err
		}
		c.say("cluster of %d members, active format %d", len(st.Members), st.Active)
		return nil
	})
}

// sharedSite is the root of the cluster-shared trees, in the directory
// store: root runs its engine there, so it is checked as the store is
// (made, with create).
func (c *Cluster) sharedSite(create bool) (*site, error) {
	if d, ok := c.Store.(*DirStore); ok {
		if _, err := d.safeDir(c.Shared, create); err != nil {
			return nil, err
		}
	} else if create {
		if err := mkdirAll(c.Shared); err != nil {
			return nil, err
		}
	}
	return &site{member: "shared", root: c.Shared, live: c.Live, wait: c.wait(), report: c.Report, getenv: c.Getenv}, nil
}

// initShared makes the cluster-shared trees of a directory store.
func (c *Cluster) initShared(v int) error {
	s, err := c.sharedSite(true)
	if err != nil {
		return err
	}
	e, err := s.engine()
	if err != nil {
		return err
	}
	if ok, _ := e.Store.Exists("cluster"); ok {
		return nil
	}
	unlock, err := e.LockTrees("cluster")
	if err != nil {
		return err
	}
	defer unlock()
	return e.CreateTree("cluster", migrate.CreateOptions{Format: v, Enable: true})
}

// CheckSetup checks, changing nothing, that an upgrade to version to led by
// lead can roll: every member is up, its trees decode, a path exists,
// tunability allows it with services running, and each member has room
// for its tagged copies. It returns the problems found.
func (c *Cluster) CheckSetup(ctx context.Context, lead string, to int) ([]string, error) {
	st, _, err := c.load(ctx)
	if err != nil {
		return nil, err
	}
	if st.member(lead) == nil {
		return nil, &migrate.UsageError{Err: fmt.Errorf("no member %s", lead)}
	}
	if err := st.expect(Setup); err != nil {
		return nil, err
	}
	if migrate.Default().Version(to) == nil {
		return nil, &migrate.UsageError{Err: fmt.Errorf("unknown format version %d", to)}
	}
	var problems []string
	if es, ok := c.Store.(*EtcdStore); ok {
		views, err := c.checkViews(ctx, es, to)
		if err != nil {
			return nil, err
		}
		for _, m := range st.Members {
			v := view(views, m.ID)
			switch {
			case !v.Up:
				problems = append(problems, v.Down)
			case v.Report.Check == nil || v.Report.Check.To != to:
				problems = append(problems, fmt.Sprintf("member %s: its agent did not answer the check within %s", m.ID, c.wait()))
			default:
				problems = append(problems, v.Report.Check.Problems...)
				problems = append(problems, offFormat(m.ID, v.Report, st.Active)...)
			}
		}
		return problems, nil
	}
	for i := range st.Members {
		s := c.site(&st.Members[i])
		problems = append(problems, s.check(to)...)
		problems = append(problems, offFormat(s.member, s.observe(), st.Active)...)
	}
	return problems, nil
}

// offFormat lists a member's trees that are not in the cluster's active
// format: its tagged copy would not be of that format, and undo would
// "restore" the trees as they are.
func offFormat(id string, r *Report, active int) []string {
	var out []string
	cmd := "treeshift"
	if r.Root != "" && r.Root != "/" {
		cmd += " --root " + r.Root
	}
	for _, t := range r.Trees {
		if t.Format != active {
			out = append(out, fmt.Sprintf("member %s: tree %s is in format %d, the cluster runs format %d: bring it to format %d first (%s update --to %d %s)",
				id, t.Name, t.Format, active, active, cmd, active, t.Name))
		}
	}
	return out
}

// check is what keeps a member from moving to version to: trees that do
// not decode or may not move now, and too little room for a tagged copy.
func (s *site) check(to int) []string {
	e, err := s.engine()
	if err != nil {
		return []string{fmt.Sprintf("member %s: %v", s.member, err)}
	}
	if p := e.StampProblem(); p != "" {
		return []string{fmt.Sprintf("member %s: %s", s.member, p)}
	}
	names, err := e.Store.Names()
	if err != nil {
		return []string{fmt.Sprintf("member %s: %v", s.member, err)}
	}
	var problems []string
	for _, n := range names {
		p, err := e.Plan(n, to)
		switch {
		case err != nil:
			problems = append(problems, fmt.Sprintf("member %s: %v", s.member, err))
		case !p.OK():
			problems = append(problems, fmt.Sprintf("member %s: %v", s.member, &migrate.RefusedError{Plan: p}))
		}
	}
	need, err := dirSize(e.Host(e.Store.Dir))
	if err != nil {
		return append(problems, fmt.Sprintf("member %s: %v", s.member, err))
	}
	var sfs unix.Statfs_t
	if err := unix.Statfs(s.root, &sfs); err == nil {
		if free := int64(sfs.Bavail) * int64(sfs.Bsize); free < need {
			problems = append(problems, fmt.Sprintf("member %s: %d bytes free on %s, tagged copies need %d", s.member, free, s.root, need))
		}
	}
	return problems
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

// SetupStage records the target and lead and has every member make its
// tagged copy.
func (c *Cluster) SetupStage(ctx context.Context, lead string, to int) error {
	if done, err := c.finished(ctx, Setup, "finish"); err != nil || done {
		return err
	}
	st, _, err := c.load(ctx)
	if err != nil {
		return err
	}
	// A coordinator resuming the setup another began does not check
	// again: the record has moved on (lead and versions set, copies made).
	if !c.resuming(st, Setup) {
		if problems, err := c.CheckSetup(ctx, lead, to); err != nil {
			return err
		} else if len(problems) > 0 {
			return refuse("setup refused:\n  %s", strings.Join(problems, "\n  "))
		}
	}
	return c.locked(ctx, func() error {
		st, _, err := c.load(ctx)
		if err != nil {
			return err
		}
		var ws []want
		for _, m := range st.Members {
			ws = append(ws, want{member: m.ID, action: ActTag, version: st.Active})
		}
		seqs, err := c.request(ctx, Setup, ws, func(t *tx) error {
			if err := t.st.expect(Setup); err != nil {
				return err
			}
			t.st.Lead, t.st.New, t.st.Old = lead, to, t.st.Active
			return nil
		})
		if err != nil {
			return err
		}
		if err := c.carry(ctx, seqs); err != nil {
			return err
		}
		views, err := c.views(ctx, st, false)
		if err != nil {
			return err
		}
		for _, m := range st.Members {
			for _, tg := range view(views, m.ID).reportOrEmpty().Tagged {
				if tg.Version == st.Active {
					c.say("member %s: tagged copy %s", m.ID, tg.Dir)
				}
			}
		}
		return c.complete(ctx, Setup, "")
	})
}

func (v *View) reportOrEmpty() *Report {
	if v.Report == nil {
		return &Report{}
	}
	return v.Report
}

// carryAll requests ws (already requested: the same tasks are found) and
// waits for them.
func (c *Cluster) carryAll(ctx context.Context, stage string, ws []want) error {
	seqs, err := c.request(ctx, stage, ws, nil)
	if err != nil {
		return err
	}
	return c.carry(ctx, seqs)
}

// complete records stage as the last completed, once.
func (c *Cluster) complete(ctx context.Context, stage, member string) error {
	if done, err := c.finished(ctx, stage, "finish"); err != nil || done {
		return err
	}
	_, err := c.change(ctx, func(t *tx) error {
		if err := t.st.expect(stage); err != nil && t.st.Stage != stage {
			return err
		}
		t.st.Stage = stage
		t.rec(stage, "finish", member)
		return nil
	})
	return err
}

// PreinstallStage has the lead verify its tagged copies against its trees.
func (c *Cluster) PreinstallStage(ctx context.Context) error {
	return c.locked(ctx, func() error {
		st, _, err := c.load(ctx)
		if err != nil {
			return err
		}
		if done, err := c.finished(ctx, Preinstall, "finish"); err != nil || done {
			return err
		}
		if err := st.expect(Preinstall); err != nil {
			return err
		}
		if err := c.upUnlessResuming(ctx, st, Preinstall, st.Lead); err != nil {
			return err
		}
		if err := c.carryAll(ctx, Preinstall, []want{{member: st.Lead, action: ActVerify, version: st.Active}}); err != nil {
			return err
		}
		c.say("member %s: tagged copies verified", st.Lead)
		return c.complete(ctx, Preinstall, "")
	})
}

// upUnlessResuming is upOrRefuse, but for a coordinator resuming the
// stage's requests: they were made when the members were up.
func (c *Cluster) upUnlessResuming(ctx context.Context, st *State, stage string, ids ...string) error {
	if c.resuming(st, stage) {
		return nil
	}
	return c.upOrRefuse(ctx, st, stage, ids...)
}

// upOrRefuse refuses a stage when a member in ids is down.
func (c *Cluster) upOrRefuse(ctx context.Context, st *State, stage string, ids ...string) error {
	views, err := c.views(ctx, st, false)
	if err != nil {
		return err
	}
	return refuseDown(views, ids, stage)
}

// InstallStage has the lead move its trees to the new format.
func (c *Cluster) InstallStage(ctx context.Context) error {
	return c.locked(ctx, func() error {
		st, _, err := c.load(ctx)
		if err != nil {
			return err
		}
		if done, err := c.finished(ctx, Install, "finish"); err != nil || done {
			return err
		}
		if err := st.expect(Install); err != nil {
			return err
		}
		if err := c.upUnlessResuming(ctx, st, Install, st.Lead); err != nil {
			return err
		}
		if err := c.carryAll(ctx, Install, []want{{member: st.Lead, action: ActUpdate, version: st.New, tagged: st.Old}}); err != nil {
			return err
		}
		c.say("member %s: trees in format %d", st.Lead, st.New)
		return c.complete(ctx, Install, "")
	})
}

// PostinstallStage checks, on the lead's own report, that it is at the new
// format and healthy.
func (c *Cluster) PostinstallStage(ctx context.Context) error {
	return c.locked(ctx, func() error {
		st, _, err := c.load(ctx)
		if err != nil {
			return err
		}
		if done, err := c.finished(ctx, Postinstall, "finish"); err != nil || done {
			return err
		}
		if err := st.expect(Postinstall); err != nil {
			return err
		}
		views, err := c.views(ctx, st, true, st.Lead)
		if err != nil {
			return err
		}
		v := view(views, st.Lead)
		if !v.Up {
			return refuse("postinstall refused: %s", v.Down)
		}
		if ok, what := v.Report.at(st.New); !ok {
			return refuse("postinstall refused: member %s reports %s, not every tree and the stamp at format %d, healthy", st.Lead, what, st.New)
		}
		c.say("member %s: format %d, healthy", st.Lead, st.New)
		return c.complete(ctx, Postinstall, st.Lead)
	})
}

// gate refuses unless every member is up and its fresh report passes ok,
// naming each member that does not and what it reports.
func (c *Cluster) gate(ctx context.Context, st *State, stage string, ok func(*Report) (bool, string), resumed bool) (map[string]*View, error) {
	views, err := c.views(ctx, st, true)
	if err != nil {
		return nil, err
	}
	var bad []string
	for _, m := range st.Members {
		v := view(views, m.ID)
		if resumed {
			continue
		}
		if !v.Up {
			bad = append(bad, v.Down)
			continue
		}
		if good, what := ok(v.Report); !good {
			bad = append(bad, fmt.Sprintf("member %s reports %s", m.ID, what))
		}
	}
	if len(bad) > 0 {
		return nil, refuse("%s refused:\n  %s", stage, strings.Join(bad, "\n  "))
	}
	return views, nil
}

// SwitchStage makes the new format active, once every member reports
// every tree and its stamp at it; the cluster-shared trees are moved to
// it first.
func (c *Cluster) SwitchStage(ctx context.Context) error {
	return c.locked(ctx, func() error {
		st, _, err := c.load(ctx)
		if err != nil {
			return err
		}
		if done, err := c.finished(ctx, Switch, "finish"); err != nil || done {
			return err
		}
		if err := st.expect(Switch); err != nil {
			return err
		}
		// Resumed by another coordinator after its start, the switch is
		// not gated again: members may have moved their shared trees.
		started, err := c.finished(ctx, Switch, "start")
		if err != nil {
			return err
		}
		gate := func(r *Report) (bool, string) {
			ok, what := r.at(st.New)
			if !ok {
				what += fmt.Sprintf(", not every tree and the stamp at format %d", st.New)
			}
			return ok, what
		}
		if started {
			gate = func(*Report) (bool, string) { return true, "" }
		}
		views, err := c.gate(ctx, st, Switch, gate, started)
		if err != nil {
			return err
		}
		if !started {
			if _, err := c.change(ctx, func(t *tx) error { t.rec(Switch, "start", ""); return nil }); err != nil {
				return err
			}
		}
		if c.Shared != "" {
			s, err := c.sharedSite(false)
			if err != nil {
				return err
			}
			e, err := s.engine()
			if err != nil {
				return err
			}
			if _, err := e.Update(nil, st.New); err != nil {
				return fmt.Errorf("shared trees: %w", err)
			}
		}
		var ws []want
		for _, m := range st.Members {
			if r := views[m.ID].Report; r != nil && r.Shared != nil {
				ws = append(ws, want{member: m.ID, action: ActShared, version: st.New})
			}
		}
		if len(ws) > 0 {
			if err := c.carryAll(ctx, Switch, ws); err != nil {
				return err
			}
		}
		from := st.Active
		_, err = c.change(ctx, func(t *tx) error {
			if err := t.st.expect(Switch); err != nil {
				return err
			}
			t.st.Active, t.st.Stage = t.st.New, Switch
			t.rec(Switch, "finish", "")
			return nil
		})
		if err != nil {
			return err
		}
		c.say("active format %d (was %d)", st.New, from)
		return nil
	})
}

// CleanStage removes the tagged copies, once every member reports them
// removable: the upgrade is complete.
func (c *Cluster) CleanStage(ctx context.Context) error {
	return c.locked(ctx, func() error {
		st, _, err := c.load(ctx)
		if err != nil {
			return err
		}
		if done, err := c.finished(ctx, Clean, "finish"); err != nil || done {
			return err
		}
		if err := st.expect(Clean); err != nil {
			return err
		}
		if _, err := c.gate(ctx, st, Clean, func(r *Report) (bool, string) {
			for _, tg := range r.Tagged {
				if tg.Version == st.Old && !tg.Removable {
					return false, fmt.Sprintf("its tagged copy of format %d not removable: %s", st.Old, tg.Why)
				}
			}
			if ok, what := r.at(st.Active); !ok {
				return false, what + fmt.Sprintf(", not every tree and the stamp at format %d", st.Active)
			}
			return true, ""
		}, c.resuming(st, Clean)); err != nil {
			return err
		}
		var ws []want
		for _, m := range st.Members {
			ws = append(ws, want{member: m.ID, action: ActUntag, version: st.Old})
		}
		if err := c.carryAll(ctx, Clean, ws); err != nil {
			return err
		}
		_, err = c.change(ctx, func(t *tx) error {
			if err := t.st.expect(Clean); err != nil {
				return err
			}
			for i := range t.st.Members {
				t.st.Members[i].Rolled = false
			}
			t.rec(Clean, "finish", "")
			t.st.Stage, t.st.New, t.st.Old, t.st.Lead = Idle, 0, 0, ""
			return nil
		})
		if err != nil {
			return err
		}
		c.say("tagged copies removed: the upgrade to format %d is complete", st.Active)
		return nil
	})
}

// Undo undoes the most recent stage: a member's roll, postinstall, install,
// preinstall or setup, never anything from switch on. A roll or the
// install is undone by the member, from its tagged copy.
//
// A roll or the install is undone only if the member did not change since
// (undo.go): otherwise it is refused, naming the changes, unless discard.
func (c *Cluster) Undo(ctx context.Context, stage, member string, discard bool) error {
	return c.locked(ctx, func() error {
		st, _, err := c.load(ctx)
		if err != nil {
			return err
		}
		who := member
		if stage == Install {
			who = st.Lead
		} else if stage != Roll {
			who = ""
		}
		if done, err := c.finishedFor(ctx, stage, "undo", who); err != nil || done {
			return err
		}
		resumed := c.resuming(st, stage)
		switch {
		case resumed:
		case st.Stage == Switch:
			return refuse("the active version was switched: nothing can be undone after %s", Switch)
		case st.Stage == Idle:
			return refuse("no upgrade under way: nothing to undo")
		case stage != st.Stage:
			return refuse("only the most recent stage can be undone: that is %s", st.Stage)
		}
		if !resumed {
			if err := c.openTask(st, stage, member); err != nil {
				return err
			}
		}
		switch stage {
		case Roll:
			m := st.member(member)
			restoring := m != nil && m.Task.Outstanding() && m.Task.Action == ActRestore
			if !resumed && (m == nil || member == st.Lead || !(m.Rolled || restoring)) {
				rolled := strings.Join(st.rolledOthers(), " ")
				if rolled == "" {
					return refuse("no member but the lead is rolled: the roll has nothing to undo (undo %s undoes the lead's)", Install)
				}
				return refuse("give a rolled member to undo its roll: undo roll MEMBER (rolled: %s)", rolled)
			}
			if err := c.restore(ctx, st, Roll, member, discard); err != nil {
				return err
			}
			// With no member rolled but the lead, the stage is back
			// where the rolls began.
			_, err := c.change(ctx, func(t *tx) error {
				if t.st.Stage == Roll && len(t.st.rolledOthers()) == 0 {
					t.st.Stage = Postinstall
				}
				return nil
			})
			return err
		case Install:
			if err := c.restore(ctx, st, Install, st.Lead, discard); err != nil {
				return err
			}
			_, err := c.change(ctx, func(t *tx) error {
				if t.st.Stage == Install {
					t.st.Stage = Preinstall
				}
				return nil
			})
			return err
		case Setup:
			if err := c.upOrRefuse(ctx, st, "undo setup", ids(st)...); err != nil {
				return err
			}
			var ws []want
			for _, m := range st.Members {
				ws = append(ws, want{member: m.ID, action: ActUntag, version: st.Active})
			}
			if err := c.carryAll(ctx, Setup, ws); err != nil {
				return err
			}
		}
		_, err = c.change(ctx, func(t *tx) error {
			if t.st.Stage != stage && !resumed {
				return refuse("only the most recent stage can be undone: that is %s", t.st.Stage)
			}
			switch stage {
			case Postinstall:
				t.st.Stage = Install
			case Preinstall:
				t.st.Stage = Setup
			case Setup:
				t.st.Stage, t.st.New, t.st.Old, t.st.Lead = Idle, 0, 0, ""
			default:
				return refuse("stage %s cannot be undone", stage)
			}
			t.rec(stage, "undo", member)
			return nil
		})
		if err != nil {
			return err
		}
		c.say("undid %s", stage)
		return nil
	})
}

// openTask refuses an undo of stage while a member's task is not over
// that the undo would not carry on itself (an undo of the same stage cut
// short): the task's agent would finish it after the undo, leaving the
// member in a stage the record no longer is at (an install finishing
// after its preinstall was undone).
func (c *Cluster) openTask(st *State, stage, member string) error {
	for _, m := range st.Members {
		t := m.Task
		if !t.Outstanding() {
			continue
		}
		undoing := (t.Action == ActRestore || t.Action == ActUntag) && t.Stage == stage && (stage != Roll || m.ID == member)
		if !undoing {
			return refuse("undo %s refused: member %s's %s to format %d (task %d, %s) is not over: finish it first with %s",
				stage, m.ID, label(t.Stage, t.Action), t.Version, t.Seq, t.State, c.resume(t, m.ID))
		}
	}
	return nil
}

// restore has a member put its trees back as its tagged copy holds them;
// the task's end moves the member and the stage back (finish). A member
// changed since its roll is refused, naming what changed, unless discard.
func (c *Cluster) restore(ctx context.Context, st *State, stage, id string, discard bool) error {
	if m := st.member(id); m != nil && m.Task.Outstanding() && m.Task.Action == ActRestore && m.Task.Discard {
		// An undo --discard cut short is carried on as it was asked: what
		// it had begun to drop is not a change to refuse for.
		discard = true
	}
	if !c.resuming(st, stage) {
		if err := c.upOrRefuse(ctx, st, "undo "+stage, id); err != nil {
			return err
		}
		changes, err := c.changes(ctx, st, id)
		if err != nil {
			return err
		}
		if len(changes) > 0 && !discard {
			what := "roll"
			if stage == Install {
				what = "install"
			}
			args := []string{"undo", stage, id, "--discard"}
			if stage == Install {
				args = []string{"undo", stage, "--discard"}
			}
			return refuse("undo %s refused: member %s changed since its %s:\n  %s\nundoing the %s would drop these changes, stopping through its supervisor what runs of them: %s does so",
				stage, id, what, strings.Join(changes, "\n  "), what, c.cmd(args...))
		}
	}
	seqs, err := c.request(ctx, stage, []want{{member: id, action: ActRestore, version: st.Active, discard: discard}}, nil)
	if err != nil {
		return err
	}
	if err := c.carry(ctx, seqs); err != nil {
		return err
	}
	if now, _, err := c.load(ctx); err == nil {
		if m := now.member(id); m != nil && m.Task != nil && m.Task.Seq == seqs[id] {
			for _, d := range m.Task.Dropped {
				c.say("member %s: dropped: %s", id, d)
			}
		}
	}
	views, err := c.views(ctx, st, false)
	if err != nil {
		return err
	}
	dir := fmt.Sprintf("its tagged copy of format %d", st.Active)
	for _, tg := range view(views, id).reportOrEmpty().Tagged {
		if tg.Version == st.Active {
			dir = tg.Dir
		}
	}
	c.say("member %s: restored from %s", id, dir)
	return nil
}

func mkdirAll(p string) error { return os.MkdirAll(p, 0o755) }

// changes asks member id what changed on it since its roll: what a restore
// from its tagged copy of the active format would drop.
func (c *Cluster) changes(ctx context.Context, st *State, id string) ([]string, error) {
	es, ok := c.Store.(*EtcdStore)
	if !ok {
		m := st.member(id)
		return c.site(m).changes(st.Active)
	}
	views, err := c.refreshed(ctx, es, refreshRequest{Members: []string{id}, Since: st.Active})
	if err != nil {
		return nil, err
	}
	v := view(views, id)
	switch {
	case !v.Up:
		return nil, refuse("undo refused: %s", v.Down)
	case v.Report == nil || v.Report.Changed == nil || v.Report.Changed.Since != st.Active:
		return nil, fmt.Errorf("member %s: its agent did not say what changed since its roll within %s", id, c.wait())
	case v.Report.Changed.Error != "":
		return nil, fmt.Errorf("member %s: %s", id, v.Report.Changed.Error)
	}
	return v.Report.Changed.Changes, nil
}
