// Package cluster runs rolling format upgrades across the members of a
// cluster, in the manner of TruCluster's clu_upgrade: stages in a fixed
// order (setup, preinstall, install on the lead member, postinstall, roll of
// the other members, switch of the active version, clean), tagged copies so
// members can be put back, quorum kept while members roll, and a record of
// every stage so an interrupted one is seen and resumed. Every change of a
// member's trees — a change of format, a restore from a tagged copy, the
// stamp — goes through the member's migrate.Engine, journaled and verified.
package cluster

import (
	"fmt"
	"io/fs"
	"os"
	"os/user"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/treeshift/treeshift/format"
	"github.com/treeshift/treeshift/internal/model"
	"github.com/treeshift/treeshift/internal/owner"
	"github.com/treeshift/treeshift/migrate"
)

// Stages, in order. Idle is no upgrade under way.
const (
	Idle        = ""
	Setup       = "setup"
	Preinstall  = "preinstall"
	Install     = "install"
	Postinstall = "postinstall"
	Roll        = "roll"
	Switch      = "switch"
	Clean       = "clean"
)

// State is the cluster record.
type State struct {
	Schema     int      `json:"schema"`
	Members    []Member `json:"members"`
	QuorumVote bool     `json:"quorum_vote"`
	// Active is the format version the cluster runs on; New is the version
	// an upgrade under way moves to (0 when none).
	Active int `json:"active"`
	New    int `json:"new"`
	// Old is the active version when the upgrade under way was set up: the
	// version of the tagged copies.
	Old  int    `json:"old"`
	Lead string `json:"lead"`
	// Stage is the last stage completed.
	Stage   string   `json:"stage"`
	Records []Record `json:"records"`
}

// Member is one host of the cluster, with its own root.
type Member struct {
	ID     string `json:"id"`
	Root   string `json:"root"`
	Votes  int    `json:"votes"`
	Rolled bool   `json:"rolled"`
}

// Record is one event of a stage.
type Record struct {
	Stage  string    `json:"stage"`
	Event  string    `json:"event"` // start, finish, undo
	Member string    `json:"member,omitempty"`
	From   int       `json:"from"`
	To     int       `json:"to"`
	By     string    `json:"by"`
	Time   time.Time `json:"time"`
}

// RefusedError is a stage the cluster's state does not allow now.
type RefusedError struct{ Msg string }

func (e *RefusedError) Error() string { return e.Msg }

func refuse(format string, args ...any) error { return &RefusedError{fmt.Sprintf(format, args...)} }

// Cluster carries out stage commands against a store.
type Cluster struct {
	Store Store
	// Say reports progress, one line each.
	Say func(format string, args ...any)
	// Getenv reads the environment for member owners (HOME, XDG_*).
	Getenv func(string) string
	// Suggest writes the cluster command ARGS as a user must run it (with
	// --store), for messages; nil writes "treeshift cluster ARGS".
	Suggest func(args ...string) string
	// Live and Wait are the members' live directory (-l) and how long a
	// stage waits for a member's owner lock (--wait); Report receives what
	// the members' engines do.
	Live   string
	Wait   time.Duration
	Report migrate.Reporter
}

func (c *Cluster) cmd(args ...string) string {
	if c.Suggest != nil {
		return c.Suggest(args...)
	}
	return "treeshift cluster " + strings.Join(args, " ")
}

// load reads the record, naming the command that makes one when there is
// none.
func (c *Cluster) load() (*State, error) {
	st, err := c.Store.Load()
	return st, c.noCluster(err)
}

func (c *Cluster) say(format string, args ...any) {
	if c.Say != nil {
		c.Say(format, args...)
	}
}

func (st *State) member(id string) *Member {
	for i := range st.Members {
		if st.Members[i].ID == id {
			return &st.Members[i]
		}
	}
	return nil
}

func (st *State) record(stage, event, member string) {
	who := strconv.Itoa(os.Getuid())
	if u, err := user.Current(); err == nil {
		who = u.Username
	}
	from, to := st.Active, st.New
	if st.Old != 0 {
		from = st.Old
	}
	st.Records = append(st.Records, Record{Stage: stage, Event: event, Member: member, From: from, To: to, By: who, Time: time.Now().UTC()})
}

// Next names the stage the cluster expects next.
func (st *State) Next() string {
	switch st.Stage {
	case Idle:
		return Setup
	case Setup:
		return Preinstall
	case Preinstall:
		return Install
	case Install:
		return Postinstall
	case Postinstall:
		return Roll
	case Roll:
		if st.allRolled() {
			return Switch
		}
		return Roll
	case Switch:
		return Clean
	}
	return Setup
}

func (st *State) allRolled() bool {
	for _, m := range st.Members {
		if !m.Rolled {
			return false
		}
	}
	return true
}

// expect refuses a stage that is not next.
func (st *State) expect(stage string) error {
	if st.Next() == stage {
		return nil
	}
	if st.Stage == Postinstall && stage == Switch {
		return refuse("stage %s is not next: the next stage is %s (members %s are not rolled)", stage, Roll, strings.Join(st.unrolled(), " "))
	}
	return refuse("stage %s is not next: the next stage is %s", stage, st.Next())
}

func (st *State) unrolled() []string {
	var out []string
	for _, m := range st.Members {
		if !m.Rolled && m.ID != st.Lead {
			out = append(out, m.ID)
		}
	}
	return out
}

// engine opens a member's system.
func (c *Cluster) engine(m *Member) (*migrate.Engine, error) {
	getenv := c.Getenv
	if getenv == nil {
		getenv = os.Getenv
	}
	o, err := owner.Current(m.Root, getenv)
	if err != nil {
		return nil, err
	}
	e, err := migrate.Open(o, migrate.Options{Live: c.Live, Wait: c.wait(), Report: c.Report})
	if err != nil {
		return nil, fmt.Errorf("member %s: %w", m.ID, err)
	}
	return e, nil
}

func (c *Cluster) shared() (*migrate.Engine, error) {
	root := c.Store.SharedRoot()
	if err := os.MkdirAll(root, 0o755); err != nil {
		return nil, err
	}
	return c.engine(&Member{ID: "shared", Root: root})
}

func (c *Cluster) wait() time.Duration {
	if c.Wait == 0 {
		return 30 * time.Second
	}
	return c.Wait
}

// transaction runs fn on the record under the store's lock and saves it.
func (c *Cluster) transaction(fn func(st *State) error) error {
	unlock, err := c.Store.Lock(c.wait())
	if err != nil {
		return err
	}
	defer unlock()
	st, err := c.load()
	if err != nil {
		return err
	}
	return fn(st)
}

// stage runs a stage that must be next: under the lock, it checks the
// order, runs fn, and records the stage as the last completed.
func (c *Cluster) stage(name string, fn func(st *State) error) error {
	return c.transaction(func(st *State) error {
		if err := st.expect(name); err != nil {
			return err
		}
		if err := fn(st); err != nil {
			return err
		}
		st.Stage = name
		return c.Store.Save(st)
	})
}

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
		unlock, err := sh.Lock(true)
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
	r := migrate.Default()
	if r.Version(to) == nil {
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

// MemberStatus is one member in Status.
type MemberStatus struct {
	ID     string `json:"id"`
	Root   string `json:"root"`
	Votes  int    `json:"votes"`
	Rolled bool   `json:"rolled"`
	// OnTagged: an upgrade is under way and the member has not moved yet;
	// its tagged copy is what it would be put back to.
	OnTagged bool    `json:"on_tagged"`
	Last     *Record `json:"last"`
}

// Status is the document of `cluster status`.
type Status struct {
	Schema     int            `json:"schema"`
	Stage      string         `json:"stage"`
	Next       string         `json:"next"`
	Active     int            `json:"active"`
	New        int            `json:"new"`
	Lead       string         `json:"lead"`
	QuorumVote bool           `json:"quorum_vote"`
	Members    []MemberStatus `json:"members"`
	// Interrupted lists stages started and not finished, as commands that
	// resume them.
	Interrupted []string `json:"interrupted"`
}

// Status reports the cluster record.
func (c *Cluster) Status() (*Status, error) {
	st, err := c.load()
	if err != nil {
		return nil, err
	}
	out := &Status{Schema: 1, Stage: st.Stage, Next: st.Next(), Active: st.Active, New: st.New, Lead: st.Lead,
		QuorumVote: st.QuorumVote, Members: []MemberStatus{}, Interrupted: []string{}}
	if out.Stage == Idle {
		out.Stage = "idle"
	}
	last := map[string]*Record{}
	open := map[string]Record{} // stage/member -> start without finish
	for i := range st.Records {
		r := &st.Records[i]
		if r.Member != "" {
			last[r.Member] = r
		}
		key := r.Stage + "/" + r.Member
		if r.Event == "start" {
			open[key] = *r
		} else {
			delete(open, key)
		}
	}
	for _, m := range st.Members {
		out.Members = append(out.Members, MemberStatus{ID: m.ID, Root: m.Root, Votes: m.Votes, Rolled: m.Rolled,
			OnTagged: st.New != 0 && st.Stage != Idle && !m.Rolled && st.Stage != Switch, Last: last[m.ID]})
	}
	for _, r := range st.Records {
		if o, ok := open[r.Stage+"/"+r.Member]; ok && o.Time.Equal(r.Time) && r.Event == "start" {
			cmd := c.cmd(r.Stage)
			if r.Stage == Roll {
				cmd = c.cmd(r.Stage, r.Member)
			}
			out.Interrupted = append(out.Interrupted, fmt.Sprintf("%s of member %s started %s by %s, not finished: run %s", r.Stage, r.Member, r.Time.Format(time.RFC3339), r.By, cmd))
		}
	}
	return out, nil
}
