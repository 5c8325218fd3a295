package cluster

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/treeshift/treeshift/migrate"
)

// A stage asks members to do things by writing a task into each member's
// entry of the record (request), and waits until each task is over. The
// member — its agent, or with a directory store the stage command itself —
// marks the task running (start), carries it out through its engine, and
// marks it done or failed (finish, fail), each in a compare-and-swap of its
// own part of the record that also appends the stage record. What a
// finished task changes in the member's part (rolled or not) is applied in
// that same change, by finish below, so the record follows what members
// did even when the stage command that asked is gone; what it changes in
// the stage is the stage command's, which checks it again when re-run.

// want is one task a stage needs.
type want struct {
	member  string
	action  string
	version int
	tagged  int
	discard bool
}

// label is the stage a task's records are filed under.
func label(stage, action string) string {
	if action == ActRestore || (action == ActUntag && stage != Clean) {
		return "undo " + stage
	}
	return stage
}

// request writes the tasks wanted into the record, unless a member is
// already doing the same one (it is then waited for, or resumed), and
// returns their sequence numbers. A member doing something else is
// refused. check runs on the record as read, in the same change, so a
// decision (quorum, say) is never taken on a stale record.
//
// A coordinator resuming an operation (another's, which died) finds the
// tasks the operation asked for by their Op, whatever became of them: a
// task asked for is never asked for again, and the check that came before
// it is not made again on a record that has moved on since.
func (c *Cluster) request(ctx context.Context, stage string, ws []want, check func(t *tx) error) (map[string]int, error) {
	seqs := map[string]int{}
	_, err := c.change(ctx, func(t *tx) error {
		clear(seqs)
		ours := 0
		for _, w := range ws {
			if m := t.st.member(w.member); m != nil && c.asked(m.Task, stage, w) {
				ours++
			}
		}
		if check != nil && ours < len(ws) {
			if err := check(t); err != nil {
				return err
			}
		}
		for _, w := range ws {
			m := t.st.member(w.member)
			if m == nil {
				return &migrate.UsageError{Err: fmt.Errorf("no member %s", w.member)}
			}
			if c.asked(m.Task, stage, w) {
				seqs[w.member] = m.Task.Seq
				continue
			}
			if cur := m.Task; cur.Outstanding() {
				if cur.Action == w.action && cur.Version == w.version && cur.Stage == stage {
					seqs[w.member] = cur.Seq
					continue
				}
				return refuse("member %s is busy: %s to format %d (task %d, %s) is not over", m.ID, cur.Action, cur.Version, cur.Seq, cur.State)
			}
			m.Tasks++
			m.Task = &Task{Seq: m.Tasks, Action: w.action, Version: w.version, Stage: stage, Tagged: w.tagged, State: Pending,
				Requested: t.w, Op: c.op.ID(), Discard: w.discard}
			if w.action == ActUpdate && t.st.Config != nil {
				m.Task.Config = t.st.Config.ID
			}
			t.rec(label(stage, w.action), "request", m.ID)
			seqs[w.member] = m.Task.Seq
		}
		return nil
	})
	return seqs, err
}

// asked reports whether task is w, asked for by the operation c carries
// out.
func (c *Cluster) asked(task *Task, stage string, w want) bool {
	return c.op != nil && task != nil && task.Op == c.op.id && task.Action == w.action && task.Version == w.version && task.Stage == stage
}

// resuming reports whether the operation c carries out already asked
// members for tasks of stage: it is being resumed by another coordinator,
// and the checks before its requests were passed then.
func (c *Cluster) resuming(st *State, stage string) bool {
	if c.op == nil {
		return false
	}
	for _, m := range st.Members {
		if m.Task != nil && m.Task.Op == c.op.id && m.Task.Stage == stage {
			return true
		}
	}
	return false
}

// begin marks a member's task running, if it is still the task seq and
// outstanding; it returns the task, or nil when there is nothing to do,
// and whether it was running already (started before, and cut short).
func begin(ctx context.Context, commit commitFunc, s Store, member string, seq int) (*Task, bool, error) {
	var task *Task
	resumed := false
	_, err := changeWith(ctx, s, commit, func(t *tx) error {
		task = nil
		// A member's start and end touch its own part of the record
		// only: members starting and ending at once do not conflict.
		t.narrow = true
		m := t.st.member(member)
		if m == nil || m.Task == nil || m.Task.Seq != seq || !m.Task.Outstanding() {
			return errNothing
		}
		w := t.w
		resumed = m.Task.State == Running
		m.Task.State, m.Task.Started, m.Task.Finished = Running, &w, nil
		t.rec(label(m.Task.Stage, m.Task.Action), "start", member).Op = m.Task.Op
		c := *m.Task
		task = &c
		return nil
	})
	if errors.Is(err, errNothing) {
		return nil, false, nil
	}
	return task, resumed, err
}

var errNothing = errors.New("nothing to do")

// finish records the end of a member's task, and what it changes.
func finish(ctx context.Context, commit commitFunc, s Store, member string, seq int, dropped []string, terr error, took time.Duration) error {
	_, err := changeWith(ctx, s, commit, func(t *tx) error {
		t.narrow = true
		m := t.st.member(member)
		if m == nil || m.Task == nil || m.Task.Seq != seq || !m.Task.Outstanding() {
			return errNothing
		}
		w := t.w
		task := m.Task
		task.Finished, task.Seconds = &w, took.Seconds()
		if terr != nil {
			task.State, task.Error = Failed, terr.Error()
			r := t.rec(label(task.Stage, task.Action), "fail", member)
			r.Error, r.Seconds, r.Op = task.Error, task.Seconds, task.Op
			return nil
		}
		task.State, task.Error = Done, ""
		r := t.rec(label(task.Stage, task.Action), "finish", member)
		r.Seconds, r.Op = task.Seconds, task.Op
		st := t.st
		switch task.Action {
		case ActUpdate:
			m.Rolled = task.Version == st.New
			if task.Config != "" {
				m.Previous, m.Config = m.Config, &Applied{ID: task.Config, Time: w.Time, Format: task.Version}
			}
		case ActRestore:
			m.Rolled = false
			// The configuration the undone move applied goes with it.
			if m.Config != nil && st.New != 0 && m.Config.Format == st.New {
				m.Config, m.Previous = m.Previous, nil
			}
			task.Dropped = dropped
			u := t.rec(task.Stage, "undo", member)
			u.Changes, u.Op = dropped, task.Op
		}
		return nil
	})
	if errors.Is(err, errNothing) {
		return nil
	}
	return err
}

type commitFunc func(ctx context.Context, st *State, rev Rev, add []Record, narrow bool) error

func changeWith(ctx context.Context, s Store, commit commitFunc, fn func(t *tx) error) (*State, error) {
	if commit == nil {
		return change(ctx, s, nil, fn)
	}
	return change(ctx, committer{s, commit}, nil, fn)
}

// committer is a Store whose Commit is another function (an agent's,
// guarded by its lease).
type committer struct {
	Store
	commit commitFunc
}

func (c committer) Commit(ctx context.Context, st *State, rev Rev, add []Record, narrow bool) error {
	return c.commit(ctx, st, rev, add, narrow)
}

// carry waits until the tasks seqs are over, and returns what failed. With
// a directory store this process carries them out, each member in its own
// goroutine; with etcd the members' agents do, and a member whose agent
// goes down stops the wait (its task stays asked: the agent, restarted,
// carries it out).
func (c *Cluster) carry(ctx context.Context, seqs map[string]int) error {
	if _, ok := c.Store.(*EtcdStore); ok {
		return c.await(ctx, seqs)
	}
	st, _, err := c.load(ctx)
	if err != nil {
		return err
	}
	ids := sortedKeys(seqs)
	errs := make([]error, len(ids))
	var wg sync.WaitGroup
	for i, id := range ids {
		m := st.member(id)
		s := c.site(m)
		wg.Add(1)
		go func() {
			defer wg.Done()
			task, resumed, err := begin(ctx, nil, c.Store, id, seqs[id])
			if err != nil || task == nil {
				errs[i] = err
				return
			}
			start := time.Now()
			dropped, terr := s.execute(task, resumed)
			if err := finish(ctx, nil, c.Store, id, task.Seq, dropped, terr, time.Since(start)); err != nil {
				errs[i] = err
				return
			}
			if terr != nil {
				errs[i] = fmt.Errorf("member %s: %w", id, terr)
			}
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

func sortedKeys[V any](m map[string]V) []string {
	ids := make([]string, 0, len(m))
	for id := range m {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	return ids
}

// site is a member's disk on this host (directory store).
func (c *Cluster) site(m *Member) *site {
	return &site{member: m.ID, root: m.Root, live: c.Live, wait: c.wait(), report: c.Report, getenv: c.Getenv,
		config: func(id string) ([]byte, error) { return getConfig(context.Background(), c.Store, id) }}
}

// await waits for agents to finish tasks seqs.
func (c *Cluster) await(ctx context.Context, seqs map[string]int) error {
	es := c.Store.(*EtcdStore)
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	// The members' parts of the record (their tasks) and their keys (a
	// lease expiring deletes a presence key).
	keys := []string{es.key("tasks") + "/", es.key("members") + "/"}
	changed := es.watch(wctx, keys...)
	said := map[string]bool{}
	for {
		st, _, err := c.load(ctx)
		if err != nil {
			return err
		}
		views, err := es.Reports(ctx)
		if err != nil {
			return err
		}
		var errs []error
		over := 0
		for _, id := range sortedKeys(seqs) {
			m := st.member(id)
			t := m.Task
			switch {
			case t == nil || t.Seq != seqs[id]:
				over++
				errs = append(errs, fmt.Errorf("member %s: task %d was replaced", id, seqs[id]))
			case t.State == Done:
				over++
			case t.State == Failed:
				over++
				errs = append(errs, fmt.Errorf("member %s: %s", id, t.Error))
			default:
				v := views[id]
				if v == nil || !v.Up {
					over++
					errs = append(errs, fmt.Errorf("%s; its %s (task %d) is not over: restarting its agent carries it out", downMsg(id, v), t.Action, t.Seq))
				} else if t.State == Running && !said[id] {
					said[id] = true
					c.say("member %s: %s to format %d started on %s", id, t.Action, t.Version, t.Started.Host)
				}
			}
		}
		if over == len(seqs) {
			return errors.Join(errs...)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("stopped waiting (%v): the members carry on with their tasks; %s shows them", ctx.Err(), c.cmd("status"))
		case _, ok := <-changed:
			if !ok {
				// The watch ended (no leader for a moment): poll, and
				// watch again.
				time.Sleep(200 * time.Millisecond)
				changed = es.watch(wctx, keys...)
			}
		case <-time.After(time.Second):
			// Leases expire without a write: poll for that.
		}
	}
}

// downMsg says why member id is down.
func downMsg(id string, v *View) string {
	if v == nil || v.Report == nil {
		return fmt.Sprintf("member %s is down: no agent has reported for it", id)
	}
	return fmt.Sprintf("member %s is down: its agent has not reported for %d s", id, int(time.Since(v.Report.Time).Round(time.Second).Seconds()))
}

// views returns each member's view: from the agents' reports (etcd; with
// fresh, every live agent is asked for a report first and waited for,
// up to wait), or read now from the members' roots (directory store).
func (c *Cluster) views(ctx context.Context, st *State, fresh bool, only ...string) (map[string]*View, error) {
	es, ok := c.Store.(*EtcdStore)
	if !ok {
		out := map[string]*View{}
		for i := range st.Members {
			m := &st.Members[i]
			r := c.site(m).observe()
			v := &View{Report: r, Up: true}
			if len(r.Trees) == 0 && len(r.Problems) > 0 {
				v.Up, v.Down = false, fmt.Sprintf("member %s is down: %s", m.ID, r.Problems[0])
			}
			out[m.ID] = v
		}
		return out, nil
	}
	if !fresh {
		return c.agentViews(ctx, es)
	}
	return c.refreshed(ctx, es, refreshRequest{Members: only})
}

// checkViews asks every agent whether its member may move to format to.
func (c *Cluster) checkViews(ctx context.Context, es *EtcdStore, to int) (map[string]*View, error) {
	return c.refreshed(ctx, es, refreshRequest{To: to})
}

// refreshed asks every live agent (of req.Members only, if set) for a
// report now (answering what req asks besides), and waits up to wait for
// their answers.
func (c *Cluster) refreshed(ctx context.Context, es *EtcdStore, req refreshRequest) (map[string]*View, error) {
	only := req.Members
	rev, err := es.refresh(ctx, req)
	if err != nil {
		return nil, err
	}
	wctx, cancel := context.WithTimeout(ctx, c.wait())
	defer cancel()
	changed := es.watch(wctx, es.key("members")+"/")
	for {
		views, err := c.agentViews(ctx, es)
		if err != nil {
			return nil, err
		}
		waiting := false
		for id, v := range views {
			if len(only) > 0 && !slices.Contains(only, id) {
				continue
			}
			if v.Up && (v.Report == nil || v.Report.Refresh < rev) {
				waiting = true
			}
		}
		if !waiting {
			return views, nil
		}
		select {
		case <-wctx.Done():
			// An agent that is up and does not answer is reported as
			// it last reported; its report's time says how old that is.
			return views, nil
		case <-changed:
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func (c *Cluster) agentViews(ctx context.Context, es *EtcdStore) (map[string]*View, error) {
	views, err := es.Reports(ctx)
	if err != nil {
		return nil, err
	}
	for id, v := range views {
		if !v.Up {
			v.Down = downMsg(id, v)
		}
	}
	return views, nil
}

// view returns views[id], a down view when there is none.
func view(views map[string]*View, id string) *View {
	if v := views[id]; v != nil {
		return v
	}
	return &View{Down: downMsg(id, nil)}
}

// refuseDown refuses when a member in ids is down, naming each.
func refuseDown(views map[string]*View, ids []string, what string) error {
	var down []string
	for _, id := range ids {
		if v := view(views, id); !v.Up {
			down = append(down, v.Down)
		}
	}
	if len(down) > 0 {
		return refuse("%s refused: %s", what, strings.Join(down, "; "))
	}
	return nil
}

func ids(st *State) []string {
	var out []string
	for _, m := range st.Members {
		out = append(out, m.ID)
	}
	return out
}
