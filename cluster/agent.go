package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"slices"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/treeshift/treeshift/internal/version"
	"github.com/treeshift/treeshift/migrate"
)

// DefaultTTL is an agent's lease: a member is down once its agent has not
// renewed it for this long.
const DefaultTTL = 10 * time.Second

// Agent is a member's agent: it runs on the member's host, in the
// foreground, until its context ends (SIGTERM).
type Agent struct {
	Member string
	// Root is the member's root; Shared, if set, the root of cluster-shared
	// trees this member holds (moved at switch).
	Root, Shared string
	TTL          time.Duration
	Live         string
	Wait         time.Duration
	Report       migrate.Reporter
	Getenv       func(string) string
	// Say reports what the agent does, one line each.
	Say func(format string, args ...any)
}

func (a *Agent) say(format string, args ...any) {
	if a.Say != nil {
		a.Say(format, args...)
	}
}

// Run keeps the member's lease alive, reports the member's disk every
// third of the TTL, at once after each task and whenever asked
// (PREFIX/refresh), and carries out the member's tasks, one at a time,
// through the member's engine. Every write it makes to the store requires
// that the member's presence key is still under its own lease: an agent
// whose lease expired (cut off from etcd, stopped for too long) changes
// nothing until it has joined again. When ctx ends it finishes the task
// under way, revokes its lease (the member is down at once, not a TTL
// later) and returns nil.
func (a *Agent) Run(ctx context.Context, s Store) error {
	es, ok := s.(*EtcdStore)
	if !ok {
		return &migrate.UsageError{Err: fmt.Errorf("cluster agent needs an etcd store (--store etcd://HOST:PORT): with a directory store the stage commands act on the members' roots themselves")}
	}
	if a.TTL <= 0 {
		a.TTL = DefaultTTL
	}
	if _, err := os.Stat(a.Root); err != nil {
		// A root that is not there is a report, not a reason to stop:
		// the cluster must see this member as it is.
		a.say("member %s: root %s: %v", a.Member, a.Root, err)
	}
	site := &site{member: a.Member, root: a.Root, shared: a.Shared, live: a.Live, wait: a.Wait, report: a.Report, getenv: a.Getenv}
	for {
		err := a.session(ctx, es, site)
		if ctx.Err() != nil {
			a.say("member %s: agent stopped, its lease revoked", a.Member)
			return nil
		}
		// The lease was lost (etcd out of reach for longer than the
		// TTL): act no more under it, and join again.
		a.say("member %s: %v; joining again", a.Member, err)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(time.Second):
		}
	}
}

// session is one lease's life: join, then serve until ctx ends or the
// lease is lost.
func (a *Agent) session(ctx context.Context, es *EtcdStore, site *site) error {
	p := Presence{Member: a.Member, Host: hostName, Root: a.Root, PID: os.Getpid(), Version: version.String(), Started: time.Now().UTC()}
	granted := time.Now()
	sess, err := es.join(ctx, p, a.TTL, a.say)
	if err != nil {
		return err
	}
	lease := sess.Lease()
	// The fence: the member's disk is written only while this lease is
	// known to live (fence.go).
	f := newFence()
	f.renewed(granted, a.TTL)
	site.wrap = f.wrap
	defer func() {
		// Revoking the lease deletes the presence key: the member is
		// down now, for everyone, rather than a TTL later.
		rctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		es.cli.Revoke(rctx, lease)
		sess.Close()
	}()
	a.say("member %s: agent up on %s, root %s, lease %x (TTL %s)", a.Member, hostName, a.Root, int64(lease), a.TTL)
	// sctx ends when the lease is lost or may be: what the agent does
	// under the lease (coordinating) stops with it.
	sctx, lost := context.WithCancel(ctx)
	defer lost()
	// Renewals go on until the session ends, SIGTERM or not: a task being
	// finished after SIGTERM is under the lease still.
	rnctx, stopRenew := context.WithCancel(context.WithoutCancel(ctx))
	defer stopRenew()
	go a.renew(rnctx, es, lease, f, lost)
	site.config = func(id string) ([]byte, error) { return getConfig(sctx, es, id) }
	co := &coordinator{agent: a, es: es, sess: sess, me: coordinatorOf(a, lease)}
	coDone := make(chan struct{})
	go func() {
		defer close(coDone)
		if err := co.run(sctx); err != nil && sctx.Err() == nil {
			a.say("member %s: coordinator: %v", a.Member, err)
		}
	}()
	defer func() { lost(); <-coDone }()
	guard := func(ctx context.Context, st *State, rev Rev, add []Record, narrow bool) error {
		err := es.commit(ctx, st, rev, add, narrow, []clientv3.Cmp{es.holds(a.Member, lease)})
		if errors.Is(err, ErrConflict) {
			// The record changed, or the lease is gone: tell which.
			if r, gerr := es.cli.Get(ctx, es.key("members", a.Member, "alive")); gerr == nil && (len(r.Kvs) == 0 || r.Kvs[0].Lease != int64(lease)) {
				return errLeaseLost
			}
		}
		return err
	}
	// The agent wakes for its own part of the record (its task) and
	// refresh requests, not for other members' tasks or reports: a report
	// waking every agent to report in turn would never end.
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	keys := []string{es.key("tasks", a.Member), es.key("refresh")}
	changed := es.watch(wctx, keys...)
	tick := time.NewTicker(a.TTL / 3)
	defer tick.Stop()
	type result struct {
		seq     int
		dropped []string
		err     error
		took    time.Duration
		fenced  bool
	}
	var (
		busy    int // the task under way, 0 none
		done    = make(chan result, 1)
		refresh int64
	)
	var check refreshRequest
	report := func() error {
		r := site.observe()
		r.Task, r.Refresh = busy, refresh
		if check.To != 0 {
			r.Check = &CheckReport{To: check.To, Problems: site.check(check.To)}
		}
		if check.Since != 0 {
			r.Changed = &ChangedReport{Since: check.Since}
			if r.Changed.Changes, err = site.changes(check.Since); err != nil {
				r.Changed.Error = err.Error()
			}
		}
		return es.putReport(sctx, r, lease)
	}
	// due: a report is owed — the first, a tick's, a refresh's, a task's
	// start. A change of the record alone (another member's task) owes
	// none: reading the member's disk costs, and nobody asked.
	due := true
	for {
		// What the agent reads and writes here is bounded by the lease:
		// cut off, it must come back to the select below, where losing
		// the lease is noticed, not wait on etcd.
		rctx, rcancel := context.WithTimeout(sctx, a.TTL)
		rr, err := es.cli.Get(rctx, es.key("refresh"))
		rcancel()
		if err == nil && len(rr.Kvs) > 0 && rr.Kvs[0].ModRevision != refresh {
			var req refreshRequest
			json.Unmarshal(rr.Kvs[0].Value, &req)
			if len(req.Members) == 0 || slices.Contains(req.Members, a.Member) {
				refresh, due, check = rr.Kvs[0].ModRevision, true, req
			}
		}
		if busy == 0 && ctx.Err() == nil && f.check() == nil {
			if st, _, err := es.Load(sctx); err == nil {
				if m := st.member(a.Member); m != nil && m.Task.Outstanding() {
					task, resumed, err := begin(sctx, guard, es, a.Member, m.Task.Seq)
					if errors.Is(err, errLeaseLost) {
						return err
					}
					if task != nil {
						busy, due = task.Seq, true
						a.say("member %s: task %d: %s to format %d (%s), asked by %s on %s", a.Member, task.Seq, task.Action, task.Version, task.Stage, task.Requested.By, task.Requested.Host)
						go func() {
							start := time.Now()
							before := f.refused.Load()
							dropped, err := site.execute(task, resumed)
							done <- result{task.Seq, dropped, err, time.Since(start), f.refused.Load() != before}
						}()
					}
				}
			}
		}
		if due {
			if err := report(); errors.Is(err, errLeaseLost) {
				return err
			}
			due = false
		}
		if busy == 0 && ctx.Err() != nil {
			return nil
		}
		// The lease lost (its keepalive failed), or the fence down (it may
		// be): nothing more is done under it.
		leaseLost := func() error {
			if busy != 0 {
				// The task goes on until its next write, which the fence
				// refuses once the lease may be gone; whoever holds the
				// member's lease next finds it running and resumes it
				// through the journal.
				r := <-done
				if r.fenced {
					a.say("member %s: task %d stopped: %v", a.Member, r.seq, errFenced)
				} else {
					a.say("member %s: task %d ended after the lease was lost: %v", a.Member, r.seq, r.err)
				}
			}
			return errLeaseLost
		}
		// A supervisor's SIGTERM: the transition under way is finished,
		// not abandoned, and its end recorded.
		stopping := func() error {
			if busy != 0 {
				a.say("member %s: stopping once task %d is over", a.Member, busy)
				r := <-done
				if r.fenced {
					return nil
				}
				bg := context.WithoutCancel(ctx)
				ob := site.observe()
				ob.Refresh = refresh
				es.putReport(bg, ob, lease)
				finish(bg, guard, es, a.Member, r.seq, r.dropped, r.err, r.took)
			}
			return nil
		}
		select {
		case <-sess.Done():
			return leaseLost()
		case <-sctx.Done():
			if ctx.Err() != nil {
				return stopping()
			}
			return leaseLost()
		case r := <-done:
			busy = 0
			if r.fenced {
				// Cut short by the fence, the task is not over: its end is
				// not recorded, and this agent's next lease resumes it.
				a.say("member %s: task %d stopped: %v", a.Member, r.seq, errFenced)
				return errLeaseLost
			}
			if r.err != nil {
				a.say("member %s: task %d failed: %v", a.Member, r.seq, r.err)
			} else {
				a.say("member %s: task %d done", a.Member, r.seq)
			}
			// The report goes first, so that what finishes the task is
			// already visible to whoever waits for it.
			if err := report(); errors.Is(err, errLeaseLost) {
				return err
			}
			if err := finish(context.WithoutCancel(ctx), guard, es, a.Member, r.seq, r.dropped, r.err, r.took); err != nil {
				if errors.Is(err, errLeaseLost) {
					return err
				}
				a.say("member %s: recording the end of task %d: %v", a.Member, r.seq, err)
			}
		case _, ok := <-changed:
			if !ok && ctx.Err() == nil {
				time.Sleep(200 * time.Millisecond)
				changed = es.watch(wctx, keys...)
			}
		case <-tick.C:
			due = true
		case <-ctx.Done():
			return stopping()
		}
	}
}

// renew renews the agent's lease every third of its TTL, each time moving
// the fence on by what the renewal proves, until ctx ends; once the fence
// is down it calls lost: the lease may be gone, and what the agent does
// under it must stop.
func (a *Agent) renew(ctx context.Context, es *EtcdStore, lease clientv3.LeaseID, f *fence, lost func()) {
	every := a.TTL / 3
	for {
		a.renewOnce(ctx, es, lease, f)
		left := f.left()
		if left <= 0 {
			lost()
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(min(every, left)):
		}
	}
}

// renewOnce renews the lease once, within a third of the TTL.
func (a *Agent) renewOnce(ctx context.Context, es *EtcdStore, lease clientv3.LeaseID, f *fence) {
	rctx, cancel := context.WithTimeout(ctx, a.TTL/3)
	defer cancel()
	sent := time.Now()
	if r, err := es.cli.KeepAliveOnce(rctx, lease); err == nil && r.TTL > 0 {
		f.renewed(sent, time.Duration(r.TTL)*time.Second)
	}
}
