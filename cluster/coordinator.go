package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"sort"
	"strings"
	"sync"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"

	"github.com/treeshift/treeshift/internal/version"
	"github.com/treeshift/treeshift/migrate"
)

// With an etcd store, a stage command does not coordinate the stage
// itself: it records an operation (PREFIX/ops/ID) and follows it, and the
// stage is coordinated by one of the members' agents, elected among them
// (the etcd election PREFIX/coordinator, under each agent's lease), as
// Oracle's VCA has its cluster's nodes elect who drives an upgrade. If the
// coordinator dies mid-stage, its lease expires, the next agent in the
// election leads, records a handover (both coordinators: member, node name,
// treeshift version; and the time), and carries the operation on from the
// records: the tasks the operation asked for are found by its id and never
// asked for again (request), the checks made before them are not made
// again, a stage completed is not completed twice (finished). Everything a
// coordinator writes compares its election key: one deposed, cut off or
// late, writes nothing. The operator's command exits when the operation is
// over, whoever carried it out; killed, the operation goes on without it.

// Operation states, besides Pending, Running, Done and Failed.
const Cancelled = "cancelled"

// Operations a stage command asks a coordinator for.
const (
	OpMemberAdd = "member add"
	OpUndo      = "undo"
)

// Op is a stage operation.
type Op struct {
	ID    string `json:"id"`
	Stage string `json:"stage"`
	// The stage's arguments.
	Lead     string   `json:"lead,omitempty"`
	To       int      `json:"to,omitempty"`
	Members  []string `json:"members,omitempty"`
	Parallel bool     `json:"parallel,omitempty"`
	Undo     string   `json:"undo,omitempty"`
	Member   string   `json:"member,omitempty"`
	Root     string   `json:"root,omitempty"`
	Votes    int      `json:"votes,omitempty"`
	Discard  bool     `json:"discard,omitempty"`

	Requested   Writer       `json:"requested"`
	State       string       `json:"state"`
	Coordinator *Coordinator `json:"coordinator,omitempty"`
	Handovers   []Handover   `json:"handovers"`
	// Lines is what the stage said, in order.
	Lines    []string   `json:"lines"`
	Error    string     `json:"error,omitempty"`
	Usage    bool       `json:"usage,omitempty"`
	Finished *time.Time `json:"finished,omitempty"`
}

// Coordinator is an agent coordinating operations.
type Coordinator struct {
	Member  string    `json:"member"`
	Host    string    `json:"host"`
	PID     int       `json:"pid"`
	Version string    `json:"version"`
	Lease   int64     `json:"lease"`
	Since   time.Time `json:"since"`
}

func (c Coordinator) String() string { return c.Member + "@" + c.Host }

// Handover is a coordinator taking over an operation another one left.
type Handover struct {
	Time  time.Time   `json:"time"`
	Op    string      `json:"op"`
	Stage string      `json:"stage"`
	From  Coordinator `json:"from"`
	To    Coordinator `json:"to"`
}

// Do carries out a stage operation: with a directory store here, with
// etcd through the coordinator.
func (c *Cluster) Do(ctx context.Context, op *Op) error {
	if es, ok := c.Store.(*EtcdStore); ok && c.op == nil {
		// What is wrong with the command line is said here, not by a
		// coordinator.
		if op.Stage == OpMemberAdd {
			if err := c.checkAdd(Member{ID: op.Member, Root: op.Root, Votes: op.Votes}); err != nil {
				return err
			}
		}
		return c.submit(ctx, es, op)
	}
	return c.run(ctx, op)
}

// run carries out op in this process.
func (c *Cluster) run(ctx context.Context, op *Op) error {
	switch op.Stage {
	case Setup:
		return c.SetupStage(ctx, op.Lead, op.To)
	case Preinstall:
		return c.PreinstallStage(ctx)
	case Install:
		return c.InstallStage(ctx)
	case Postinstall:
		return c.PostinstallStage(ctx)
	case Roll:
		return c.RollStage(ctx, op.Members, op.Parallel)
	case Switch:
		return c.SwitchStage(ctx)
	case Clean:
		return c.CleanStage(ctx)
	case OpUndo:
		return c.Undo(ctx, op.Undo, op.Member, op.Discard)
	case OpMemberAdd:
		return c.AddMember(ctx, Member{ID: op.Member, Root: op.Root, Votes: op.Votes})
	}
	return &migrate.UsageError{Err: fmt.Errorf("unknown operation %q", op.Stage)}
}

var opKeys sync.Mutex

// newOpID is unique without a counter in the store, and sorts by time.
func newOpID() string {
	opKeys.Lock()
	defer opKeys.Unlock()
	return fmt.Sprintf("%s-%s-%d-%d", time.Now().UTC().Format("20060102T150405.000000000"), hostName, os.Getpid(), recordKeys.Add(1))
}

// submit records op and follows it until it is over: what the stage says
// is said here, and its outcome is this command's.
func (c *Cluster) submit(ctx context.Context, es *EtcdStore, op *Op) error {
	if _, _, err := c.load(ctx); err != nil {
		return err
	}
	op.ID, op.Requested, op.State = newOpID(), writer(), Pending
	op.Handovers, op.Lines = []Handover{}, []string{}
	k := es.key("ops", op.ID)
	b, _ := json.Marshal(op)
	rctx, cancel := es.ctx(ctx)
	_, err := es.cli.Txn(rctx).If(clientv3.Compare(clientv3.CreateRevision(k), "=", 0)).Then(clientv3.OpPut(k, string(b))).Commit()
	cancel()
	if err != nil {
		return es.fail(err)
	}
	wctx, stop := context.WithCancel(ctx)
	defer stop()
	changed := es.watch(wctx, k)
	submitted := time.Now()
	said, handed := 0, 0
	for {
		cur, rev, err := es.op(ctx, op.ID)
		if err != nil {
			return err
		}
		for ; said < len(cur.Lines); said++ {
			c.say("%s", cur.Lines[said])
		}
		for ; handed < len(cur.Handovers); handed++ {
			h := cur.Handovers[handed]
			c.say("coordinator %s (treeshift %s) took over from %s (treeshift %s), whose lease expired", h.To, h.To.Version, h.From, h.From.Version)
		}
		switch cur.State {
		case Done:
			return nil
		case Failed:
			if cur.Usage {
				return &migrate.UsageError{Err: errors.New(cur.Error)}
			}
			return &RefusedError{Msg: cur.Error}
		case Cancelled:
			return fmt.Errorf("operation %s was cancelled", op.ID)
		case Pending:
			if time.Since(submitted) > c.wait() {
				if es.cancelOp(ctx, cur, rev) {
					return fmt.Errorf("no coordinator took the %s within %s: no member's agent is up to coordinate it (start the agents: %s)",
						op.Stage, c.wait(), "treeshift --root ROOT cluster --store "+es.String()+" agent --member ID")
				}
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("stopped waiting (%v): the coordinator carries the %s on; %s shows it", ctx.Err(), op.Stage, c.cmd("status"))
		case _, ok := <-changed:
			if !ok {
				time.Sleep(200 * time.Millisecond)
				changed = es.watch(wctx, k)
			}
		case <-time.After(time.Second):
		}
	}
}

// op reads operation id and the revision it was read at.
func (s *EtcdStore) op(ctx context.Context, id string) (*Op, int64, error) {
	rctx, cancel := s.ctx(ctx)
	defer cancel()
	r, err := s.cli.Get(rctx, s.key("ops", id))
	if err != nil {
		return nil, 0, s.fail(err)
	}
	if len(r.Kvs) == 0 {
		return nil, 0, fmt.Errorf("operation %s is gone from %s", id, s)
	}
	var op Op
	if err := json.Unmarshal(r.Kvs[0].Value, &op); err != nil {
		return nil, 0, fmt.Errorf("%s: %v", r.Kvs[0].Key, err)
	}
	return &op, r.Kvs[0].ModRevision, nil
}

// ops lists the operations not over, oldest first, each with its
// revision.
func (s *EtcdStore) ops(ctx context.Context) ([]*Op, []int64, error) {
	rctx, cancel := s.ctx(ctx)
	defer cancel()
	r, err := s.cli.Get(rctx, s.key("ops")+"/", clientv3.WithPrefix())
	if err != nil {
		return nil, nil, s.fail(err)
	}
	var out []*Op
	var revs []int64
	for _, kv := range r.Kvs {
		var op Op
		if json.Unmarshal(kv.Value, &op) != nil || (op.State != Pending && op.State != Running) {
			continue
		}
		out = append(out, &op)
		revs = append(revs, kv.ModRevision)
	}
	return out, revs, nil
}

// allOps lists every operation, oldest first (status).
func (s *EtcdStore) allOps(ctx context.Context) ([]Op, error) {
	rctx, cancel := s.ctx(ctx)
	defer cancel()
	r, err := s.cli.Get(rctx, s.key("ops")+"/", clientv3.WithPrefix())
	if err != nil {
		return nil, s.fail(err)
	}
	out := []Op{}
	for _, kv := range r.Kvs {
		var op Op
		if json.Unmarshal(kv.Value, &op) == nil {
			out = append(out, op)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, nil
}

// cancelOp cancels a pending operation nobody took.
func (s *EtcdStore) cancelOp(ctx context.Context, op *Op, rev int64) bool {
	op.State = Cancelled
	now := time.Now().UTC()
	op.Finished = &now
	k := s.key("ops", op.ID)
	b, _ := json.Marshal(op)
	rctx, cancel := s.ctx(ctx)
	defer cancel()
	r, err := s.cli.Txn(rctx).If(clientv3.Compare(clientv3.ModRevision(k), "=", rev)).Then(clientv3.OpPut(k, string(b))).Commit()
	return err == nil && r.Succeeded
}

// putOp writes op as a coordinator: only while it leads (s.guard), and
// with rev set only if op is still as read at rev; add is written with it.
func (s *EtcdStore) putOp(ctx context.Context, op *Op, rev int64, add ...Record) (int64, error) {
	k := s.key("ops", op.ID)
	b, err := json.Marshal(op)
	if err != nil {
		return 0, err
	}
	cmps := slicesClone(s.guard)
	if rev != 0 {
		cmps = append(cmps, clientv3.Compare(clientv3.ModRevision(k), "=", rev))
	}
	ops := []clientv3.Op{clientv3.OpPut(k, string(b))}
	for _, r := range add {
		o, err := s.recordPut(r)
		if err != nil {
			return 0, err
		}
		ops = append(ops, o)
	}
	rctx, cancel := s.ctx(ctx)
	defer cancel()
	r, err := s.cli.Txn(rctx).If(cmps...).Then(ops...).Commit()
	if err != nil {
		return 0, s.fail(err)
	}
	if !r.Succeeded {
		return 0, ErrConflict
	}
	return r.Header.Revision, nil
}

func slicesClone[T any](s []T) []T { return append([]T(nil), s...) }

// Leader is the coordinator elected now, nil when no agent campaigns.
func (s *EtcdStore) Leader(ctx context.Context) (*Coordinator, error) {
	rctx, cancel := s.ctx(ctx)
	defer cancel()
	// The election's leader is its oldest key.
	r, err := s.cli.Get(rctx, s.key("coordinator")+"/", clientv3.WithFirstCreate()...)
	if err != nil {
		return nil, s.fail(err)
	}
	if len(r.Kvs) == 0 {
		return nil, nil
	}
	c, ok := candidacy(r.Kvs[0])
	if !ok {
		// Not an agent's: the agents remove it (sweepCandidacies).
		return nil, fmt.Errorf("%s: not an agent's candidacy for coordinator (no lease, or not a coordinator's record): the agents remove it", r.Kvs[0].Key)
	}
	return c, nil
}

// candidacy decodes a key of the coordinator election. An agent's
// campaign writes its Coordinator record under the lease it names; a key
// without a lease, or whose value is not such a record, is no agent's,
// and, older than every campaign's, would lead the election for ever.
func candidacy(kv *mvccpb.KeyValue) (*Coordinator, bool) {
	var c Coordinator
	if kv.Lease == 0 || json.Unmarshal(kv.Value, &c) != nil || c.Lease != kv.Lease || c.Member == "" {
		return nil, false
	}
	return &c, true
}

// sweepCandidacies removes the keys under PREFIX/coordinator/ that are no
// agent's candidacy (candidacy), each only if unchanged since read, and
// says which: garbage there must not stop every stage.
func (s *EtcdStore) sweepCandidacies(ctx context.Context, say func(string, ...any)) {
	rctx, cancel := s.ctx(ctx)
	defer cancel()
	r, err := s.cli.Get(rctx, s.key("coordinator")+"/", clientv3.WithPrefix())
	if err != nil {
		return
	}
	for _, kv := range r.Kvs {
		if _, ok := candidacy(kv); ok {
			continue
		}
		k := string(kv.Key)
		tr, err := s.cli.Txn(rctx).If(clientv3.Compare(clientv3.ModRevision(k), "=", kv.ModRevision)).Then(clientv3.OpDelete(k)).Commit()
		if err == nil && tr.Succeeded {
			say("removed %s from the coordinator election: no agent's candidacy (no lease, or not a coordinator's record)", k)
		}
	}
}

// coordinator is an agent's part in coordinating: it campaigns, and once
// elected carries out every operation not over, until ctx ends (its lease
// lost, its fence down, the agent stopping).
type coordinator struct {
	agent *Agent
	es    *EtcdStore
	sess  *concurrency.Session
	me    Coordinator
}

func (co *coordinator) run(ctx context.Context) error {
	a := co.agent
	el := concurrency.NewElection(co.sess, co.es.key("coordinator"))
	b, _ := json.Marshal(co.me)
	// Campaign, cancelled, resigns on the client's own context: with etcd
	// gone that would never return, and the agent, stopped, would never
	// exit. It is left to the client's closing.
	won := make(chan error, 1)
	co.es.sweepCandidacies(ctx, a.say)
	go func() { won <- el.Campaign(ctx, string(b)) }()
campaign:
	for {
		select {
		case err := <-won:
			if err != nil {
				return err
			}
			break campaign
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(2 * time.Second):
			// A key put ahead of the campaigns since is swept too.
			co.es.sweepCandidacies(ctx, a.say)
		}
	}
	co.me.Since = time.Now().UTC()
	if b, err := json.Marshal(co.me); err == nil {
		el.Proclaim(ctx, string(b))
	}
	a.say("member %s: coordinating the cluster's stages", a.Member)
	// Every write from here on compares the election key: it is this
	// agent's as long as it leads, and never again once its lease is gone.
	es := co.es.coordinating(clientv3.Compare(clientv3.CreateRevision(el.Key()), "=", el.Rev()), co.sess)
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	changed := es.watch(wctx, es.key("ops")+"/")
	var wg sync.WaitGroup
	defer wg.Wait()
	running := map[string]bool{}
	var mu sync.Mutex
	for {
		ops, revs, err := es.ops(ctx)
		if err == nil {
			for i, op := range ops {
				mu.Lock()
				busy := running[op.ID]
				mu.Unlock()
				if busy {
					continue
				}
				rev, err := co.take(ctx, es, op, revs[i])
				if err != nil {
					if !errors.Is(err, ErrConflict) && ctx.Err() == nil {
						a.say("member %s: taking operation %s: %v", a.Member, op.ID, err)
					}
					continue
				}
				mu.Lock()
				running[op.ID] = true
				mu.Unlock()
				wg.Add(1)
				go func() {
					defer wg.Done()
					co.carry(ctx, es, op, rev)
					mu.Lock()
					delete(running, op.ID)
					mu.Unlock()
				}()
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case _, ok := <-changed:
			if !ok && ctx.Err() == nil {
				time.Sleep(200 * time.Millisecond)
				changed = es.watch(wctx, es.key("ops")+"/")
			}
		case <-time.After(time.Second):
		}
	}
}

// take makes op this coordinator's: a pending one is started; one another
// coordinator started (dead now: this one leads) is handed over, recorded.
func (co *coordinator) take(ctx context.Context, es *EtcdStore, op *Op, rev int64) (int64, error) {
	var add []Record
	if op.State == Running && op.Coordinator != nil && op.Coordinator.Lease != co.me.Lease {
		h := Handover{Time: time.Now().UTC(), Op: op.ID, Stage: op.Stage, From: *op.Coordinator, To: co.me}
		op.Handovers = append(op.Handovers, h)
		add = append(add, Record{Stage: opLabel(op), Event: "handover", Op: op.ID, Coordinator: co.me.String(),
			By: op.Requested.By, Host: co.me.Host, Time: h.Time, Handover: &h})
		co.agent.say("member %s: taking over operation %s (%s) from %s", co.agent.Member, op.ID, op.Stage, h.From)
	}
	op.State, op.Coordinator = Running, &co.me
	return es.putOp(ctx, op, rev, add...)
}

// opLabel is the stage an operation's records are filed under.
func opLabel(op *Op) string {
	switch op.Stage {
	case OpUndo:
		return "undo " + op.Undo
	case OpMemberAdd:
		return "membership"
	}
	return op.Stage
}

// carry runs op and records its outcome, unless this coordinator stopped
// leading meanwhile: then the next one resumes it.
func (co *coordinator) carry(ctx context.Context, es *EtcdStore, op *Op, rev int64) {
	a := co.agent
	var mu sync.Mutex
	say := func(format string, args ...any) {
		mu.Lock()
		defer mu.Unlock()
		op.Lines = append(op.Lines, fmt.Sprintf(format, args...))
		if r, err := es.putOp(ctx, op, 0); err == nil {
			rev = r
		}
	}
	c := &Cluster{Store: es, Say: say, Getenv: a.Getenv, Live: a.Live, Wait: a.Wait,
		op: &opRun{id: op.ID, requested: op.Requested, via: co.me.String()}}
	c.Suggest = func(args ...string) string {
		return "treeshift cluster --store " + es.String() + " " + strings.Join(args, " ")
	}
	err := c.run(ctx, op)
	if ctx.Err() != nil {
		a.say("member %s: operation %s left to the next coordinator: %v", a.Member, op.ID, ctx.Err())
		return
	}
	mu.Lock()
	defer mu.Unlock()
	now := time.Now().UTC()
	op.Finished, op.State = &now, Done
	if err != nil {
		var ue *migrate.UsageError
		op.State, op.Error, op.Usage = Failed, err.Error(), errors.As(err, &ue)
	}
	if _, err := es.putOp(ctx, op, 0); err != nil {
		a.say("member %s: recording the end of operation %s: %v", a.Member, op.ID, err)
	}
}

// finished reports whether the operation c carries out already recorded
// event of stage (a coordinator before this one did, and died before it
// could record the operation over).
func (c *Cluster) finished(ctx context.Context, stage, event string) (bool, error) {
	return c.finishedFor(ctx, stage, event, "")
}

// finishedFor is finished for a member's event (member "": the stage's).
func (c *Cluster) finishedFor(ctx context.Context, stage, event, member string) (bool, error) {
	if c.op == nil {
		return false, nil
	}
	records, err := c.Store.Records(ctx)
	if err != nil {
		return false, err
	}
	for _, r := range records {
		if r.Op == c.op.id && r.Stage == stage && r.Event == event && r.Member == member {
			return true, nil
		}
	}
	return false, nil
}

// coordinatorOf is a coordinator identity for agent a under lease.
func coordinatorOf(a *Agent, lease clientv3.LeaseID) Coordinator {
	return Coordinator{Member: a.Member, Host: hostName, PID: os.Getpid(), Version: version.String(), Lease: int64(lease)}
}
