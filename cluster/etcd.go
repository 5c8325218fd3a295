package cluster

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"
	"go.uber.org/zap"

	"github.com/treeshift/treeshift/migrate"
)

// EtcdStore is a Store in etcd, for members on several hosts. Everything
// is a key under the prefix (docs/CLUSTER.md, "The agent protocol"):
//
//	PREFIX/cluster                the record (State) but for the members' parts
//	PREFIX/tasks/ID               a member's part: rolled, its task
//	PREFIX/records/TIME-HOST-PID-N one stage record each
//	PREFIX/lock                   the long-stage lock (concurrency.Mutex)
//	PREFIX/lock-holder            who holds it, under the holder's lease
//	PREFIX/members/ID/alive       the agent's presence, under its lease
//	PREFIX/members/ID/report      the agent's last report of its disk
//	PREFIX/refresh                a counter: agents answer a change with a report
//
// The record's keys and the records a change appends are written in one
// transaction that compares the mod revisions of the keys read.
type EtcdStore struct {
	Endpoints []string
	Prefix    string
	cli       *clientv3.Client
	// guard, for a coordinator's store, is what every change compares
	// besides the keys it read: that the coordinator still leads (its
	// election key is the one it created). A coordinator deposed writes
	// nothing.
	guard []clientv3.Cmp
	// lockSess, for a coordinator's store, is the session the long-stage
	// lock is taken under (the agent's: the lock goes with its lease),
	// and lockMu orders the coordinator's own operations for it (one
	// session holds one etcd mutex key).
	lockSess *concurrency.Session
	lockMu   chan struct{}
}

// coordinating is s for a coordinator: its changes guarded by guard, its
// lock taken under sess.
func (s *EtcdStore) coordinating(guard clientv3.Cmp, sess *concurrency.Session) *EtcdStore {
	c := *s
	c.guard, c.lockSess, c.lockMu = []clientv3.Cmp{guard}, sess, make(chan struct{}, 1)
	return &c
}

// OpenEtcd connects to the etcd cluster named by
// etcd://HOST:PORT[,HOST:PORT...][/PREFIX] (prefix default /treeshift).
// Nothing is read yet: a store that cannot be reached fails the first
// request, after the request's own timeout.
func OpenEtcd(spec string) (*EtcdStore, error) {
	rest := strings.TrimPrefix(spec, "etcd://")
	hosts, prefix, _ := strings.Cut(rest, "/")
	prefix = "/" + strings.Trim(prefix, "/")
	if prefix == "/" {
		prefix = "/treeshift"
	}
	var eps []string
	for _, h := range strings.Split(hosts, ",") {
		if _, port, ok := strings.Cut(h, ":"); !ok || port == "" {
			return nil, &migrate.UsageError{Err: fmt.Errorf("--store %s: %q is not HOST:PORT", spec, h)}
		} else if _, err := strconv.Atoi(port); err != nil {
			return nil, &migrate.UsageError{Err: fmt.Errorf("--store %s: port %q is not a number", spec, port)}
		}
		eps = append(eps, "http://"+h)
	}
	cli, err := clientv3.New(clientv3.Config{
		Endpoints:   eps,
		DialTimeout: 5 * time.Second,
		// The client logs through zap: its messages are not treeshift's,
		// and a node that is down is reported by the request that fails.
		Logger: zap.NewNop(),
		// A member whose node dies mid-request keeps going through the
		// others; keepalives notice a dead connection within seconds.
		DialKeepAliveTime:    2 * time.Second,
		DialKeepAliveTimeout: 2 * time.Second,
	})
	if err != nil {
		return nil, fmt.Errorf("--store %s: %w", spec, err)
	}
	return &EtcdStore{Endpoints: eps, Prefix: prefix, cli: cli}, nil
}

func (s *EtcdStore) String() string {
	hosts := make([]string, len(s.Endpoints))
	for i, e := range s.Endpoints {
		hosts[i] = strings.TrimPrefix(e, "http://")
	}
	return "etcd://" + strings.Join(hosts, ",") + s.Prefix
}

func (s *EtcdStore) Close() error {
	if s.lockSess != nil {
		// A coordinator's store shares its agent's client.
		return nil
	}
	return s.cli.Close()
}

func (s *EtcdStore) key(parts ...string) string {
	return path.Join(append([]string{s.Prefix}, parts...)...)
}

// requestTimeout bounds one etcd request: long enough for a leader
// election after a node dies, short enough that an unreachable store is
// reported rather than waited on forever.
const requestTimeout = 15 * time.Second

func (s *EtcdStore) ctx(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, requestTimeout)
}

func (s *EtcdStore) fail(err error) error {
	if errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("etcd %s: no answer within %s: %w", s, requestTimeout, err)
	}
	return fmt.Errorf("etcd %s: %w", s, err)
}

// The record is split in keys so that members do not contend: the
// cluster's part (members' ids and votes, versions, stage) in
// PREFIX/cluster, and each member's part (rolled, its task) in
// PREFIX/tasks/ID. A member's agent starting or ending its task writes its
// own key only, comparing only it; a stage's decision (a roll's quorum
// check) compares every key it read.

// memberPart is a member's key.
type memberPart struct {
	Rolled   bool     `json:"rolled"`
	Task     *Task    `json:"task,omitempty"`
	Tasks    int      `json:"tasks"`
	Config   *Applied `json:"config,omitempty"`
	Previous *Applied `json:"previous_config,omitempty"`
}

// parts splits st into its keys' values.
func (s *EtcdStore) parts(st *State) (map[string][]byte, error) {
	c := *st
	c.Members = make([]Member, len(st.Members))
	out := map[string][]byte{}
	for i, m := range st.Members {
		c.Members[i] = Member{ID: m.ID, Root: m.Root, Votes: m.Votes}
		b, err := json.Marshal(memberPart{Rolled: m.Rolled, Task: m.Task, Tasks: m.Tasks, Config: m.Config, Previous: m.Previous})
		if err != nil {
			return nil, err
		}
		out[s.key("tasks", m.ID)] = b
	}
	b, err := json.Marshal(c)
	if err != nil {
		return nil, err
	}
	out[s.key("cluster")] = b
	return out, nil
}

func (s *EtcdStore) Load(ctx context.Context) (*State, Rev, error) {
	ctx, cancel := s.ctx(ctx)
	defer cancel()
	// One transaction: both reads at one revision.
	r, err := s.cli.Txn(ctx).Then(clientv3.OpGet(s.key("cluster")), clientv3.OpGet(s.key("tasks")+"/", clientv3.WithPrefix())).Commit()
	if err != nil {
		return nil, Rev{}, s.fail(err)
	}
	ckvs := r.Responses[0].GetResponseRange().Kvs
	if len(ckvs) == 0 {
		return nil, Rev{}, ErrNoCluster
	}
	rev := Rev{parts: map[string]part{}}
	var st State
	if err := json.Unmarshal(ckvs[0].Value, &st); err != nil {
		return nil, Rev{}, fmt.Errorf("%s: %v", ckvs[0].Key, err)
	}
	if st.Schema != Schema {
		return nil, Rev{}, fmt.Errorf("%s: unknown schema %d", ckvs[0].Key, st.Schema)
	}
	rev.parts[string(ckvs[0].Key)] = part{ckvs[0].ModRevision, ckvs[0].Value}
	for _, kv := range r.Responses[1].GetResponseRange().Kvs {
		var mp memberPart
		if err := json.Unmarshal(kv.Value, &mp); err != nil {
			return nil, Rev{}, fmt.Errorf("%s: %v", kv.Key, err)
		}
		rev.parts[string(kv.Key)] = part{kv.ModRevision, kv.Value}
		if m := st.member(path.Base(string(kv.Key))); m != nil {
			m.Rolled, m.Task, m.Tasks, m.Config, m.Previous = mp.Rolled, mp.Task, mp.Tasks, mp.Config, mp.Previous
		}
	}
	if err := st.check(); err != nil {
		return nil, Rev{}, fmt.Errorf("%s: %v", ckvs[0].Key, err)
	}
	return &st, rev, nil
}

func (s *EtcdStore) Commit(ctx context.Context, st *State, rev Rev, add []Record, narrow bool) error {
	return s.commit(ctx, st, rev, add, narrow, nil)
}

// recordPut is the write of a stage record.
func (s *EtcdStore) recordPut(r Record) (clientv3.Op, error) {
	rb, err := json.Marshal(r)
	if err != nil {
		return clientv3.Op{}, err
	}
	k := fmt.Sprintf("%020d-%s-%d-%d", r.Time.UnixNano(), hostName, os.Getpid(), recordKeys.Add(1))
	return clientv3.OpPut(s.key("records", k), string(rb)), nil
}

// recordKeys numbers this process's records: a record's key is unique
// (time, host, pid, number) without a counter in the store that every
// writer would contend for; records are ordered by the revision that
// wrote them.
var recordKeys atomic.Int64

// commit is Commit with further conditions: an agent's change also
// requires that its presence key is still under its own lease.
func (s *EtcdStore) commit(ctx context.Context, st *State, rev Rev, add []Record, narrow bool, guard []clientv3.Cmp) error {
	parts, err := s.parts(st)
	if err != nil {
		return err
	}
	cmp := func(k string) clientv3.Cmp {
		if p, ok := rev.parts[k]; ok {
			return clientv3.Compare(clientv3.ModRevision(k), "=", p.rev)
		}
		return clientv3.Compare(clientv3.CreateRevision(k), "=", 0)
	}
	var cmps []clientv3.Cmp
	var ops []clientv3.Op
	for k, b := range parts {
		if p, ok := rev.parts[k]; ok && bytes.Equal(p.value, b) {
			continue
		}
		cmps = append(cmps, cmp(k))
		ops = append(ops, clientv3.OpPut(k, string(b)))
	}
	if !narrow {
		cmps = nil
		for k := range rev.parts {
			cmps = append(cmps, cmp(k))
		}
		for k := range parts {
			if _, ok := rev.parts[k]; !ok {
				cmps = append(cmps, cmp(k))
			}
		}
	}
	// A member no longer in the record (deleted) leaves with its keys: its
	// part, and its last report.
	for k, p := range rev.parts {
		if _, ok := parts[k]; !ok {
			cmps = append(cmps, clientv3.Compare(clientv3.ModRevision(k), "=", p.rev))
			ops = append(ops, clientv3.OpDelete(k), clientv3.OpDelete(s.key("members", path.Base(k), "report")))
		}
	}
	for _, r := range add {
		op, err := s.recordPut(r)
		if err != nil {
			return err
		}
		ops = append(ops, op)
	}
	ctx, cancel := s.ctx(ctx)
	defer cancel()
	resp, err := s.cli.Txn(ctx).If(append(append(cmps, s.guard...), guard...)...).Then(ops...).Commit()
	if err != nil {
		return s.fail(err)
	}
	if !resp.Succeeded {
		return ErrConflict
	}
	return nil
}

func (s *EtcdStore) Records(ctx context.Context) ([]Record, error) {
	ctx, cancel := s.ctx(ctx)
	defer cancel()
	r, err := s.cli.Get(ctx, s.key("records")+"/", clientv3.WithPrefix())
	if err != nil {
		return nil, s.fail(err)
	}
	kvs := r.Kvs
	sort.Slice(kvs, func(i, j int) bool {
		if kvs[i].ModRevision != kvs[j].ModRevision {
			return kvs[i].ModRevision < kvs[j].ModRevision
		}
		return string(kvs[i].Key) < string(kvs[j].Key)
	})
	out := make([]Record, 0, len(kvs))
	for _, kv := range kvs {
		var rec Record
		if err := json.Unmarshal(kv.Value, &rec); err != nil {
			return nil, fmt.Errorf("%s: %v", kv.Key, err)
		}
		rec.Seq = len(out) + 1
		out = append(out, rec)
	}
	return out, nil
}

// Lock takes the long-stage lock, an etcd mutex under a session whose
// lease dies with this process: a stage command killed while holding it
// frees it within the lease's TTL.
func (s *EtcdStore) Lock(ctx context.Context, wait time.Duration) (func(), error) {
	lctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	sess := s.lockSess
	if sess != nil {
		select {
		case s.lockMu <- struct{}{}:
		case <-lctx.Done():
			return nil, fmt.Errorf("the cluster lock is held by another operation of this coordinator; gave up after %s", wait)
		}
	} else {
		var err error
		if sess, err = s.session(ctx, 10); err != nil {
			return nil, err
		}
	}
	release := func() {
		if s.lockSess != nil {
			<-s.lockMu
		} else {
			sess.Close()
		}
	}
	m := concurrency.NewMutex(sess, s.key("lock"))
	if err := m.Lock(lctx); err != nil {
		holder := "another cluster command"
		if r, gerr := s.cli.Get(ctx, s.key("lock-holder")); gerr == nil && len(r.Kvs) > 0 {
			var w Writer
			if json.Unmarshal(r.Kvs[0].Value, &w) == nil {
				holder = fmt.Sprintf("a cluster command of %s on %s since %s", w.By, w.Host, w.Time.Format(time.RFC3339))
			}
		}
		release()
		if errors.Is(err, context.DeadlineExceeded) {
			return nil, fmt.Errorf("the cluster lock %s is held by %s; gave up after %s", s.key("lock"), holder, wait)
		}
		return nil, s.fail(err)
	}
	b, _ := json.Marshal(writer())
	s.cli.Put(ctx, s.key("lock-holder"), string(b), clientv3.WithLease(sess.Lease()))
	return func() {
		ctx, cancel := s.ctx(context.Background())
		defer cancel()
		s.cli.Delete(ctx, s.key("lock-holder"))
		m.Unlock(ctx)
		release()
	}, nil
}

// session grants a lease of ttl seconds, within the request timeout (an
// etcd out of reach is an error, not a wait without end), and keeps it
// alive until ctx ends or the session is closed.
func (s *EtcdStore) session(ctx context.Context, ttl int) (*concurrency.Session, error) {
	gctx, cancel := s.ctx(ctx)
	l, err := s.cli.Grant(gctx, int64(ttl))
	cancel()
	if err != nil {
		return nil, s.fail(err)
	}
	sess, err := concurrency.NewSession(s.cli, concurrency.WithLease(l.ID), concurrency.WithTTL(ttl), concurrency.WithContext(ctx))
	if err != nil {
		return nil, s.fail(err)
	}
	return sess, nil
}

// Presence is what an agent's alive key holds.
type Presence struct {
	Member  string    `json:"member"`
	Host    string    `json:"host"`
	Root    string    `json:"root"`
	PID     int       `json:"pid"`
	Version string    `json:"version"`
	Started time.Time `json:"started"`
	Lease   int64     `json:"lease"`
	TTL     float64   `json:"ttl"`
}

// join makes p the member's agent under a new lease of ttl, once no other
// agent of the member is alive: two agents of one member would both act on
// its tasks. It waits (saying so) for a previous agent's lease to expire.
func (s *EtcdStore) join(ctx context.Context, p Presence, ttl time.Duration, say func(string, ...any)) (*concurrency.Session, error) {
	secs := int((ttl + time.Second - 1) / time.Second)
	sess, err := s.session(ctx, secs)
	if err != nil {
		return nil, err
	}
	p.Lease, p.TTL = int64(sess.Lease()), float64(secs)
	b, _ := json.Marshal(p)
	k := s.key("members", p.Member, "alive")
	said := false
	for {
		rctx, cancel := s.ctx(ctx)
		resp, err := s.cli.Txn(rctx).If(clientv3.Compare(clientv3.CreateRevision(k), "=", 0)).
			Then(clientv3.OpPut(k, string(b), clientv3.WithLease(sess.Lease()))).
			Else(clientv3.OpGet(k)).Commit()
		cancel()
		if err != nil {
			sess.Close()
			return nil, s.fail(err)
		}
		if resp.Succeeded {
			return sess, nil
		}
		if !said {
			var other Presence
			if kvs := resp.Responses[0].GetResponseRange().Kvs; len(kvs) > 0 {
				json.Unmarshal(kvs[0].Value, &other)
			}
			say("member %s: another agent (pid %d on %s, root %s) holds its lease; waiting for it to stop or expire", p.Member, other.PID, other.Host, other.Root)
			said = true
		}
		select {
		case <-ctx.Done():
			sess.Close()
			return nil, ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// putReport writes a member's report, if the agent still holds the
// member's presence under its lease.
func (s *EtcdStore) putReport(ctx context.Context, r *Report, lease clientv3.LeaseID) error {
	b, err := json.Marshal(r)
	if err != nil {
		return err
	}
	ctx, cancel := s.ctx(ctx)
	defer cancel()
	resp, err := s.cli.Txn(ctx).If(s.holds(r.Member, lease)).Then(clientv3.OpPut(s.key("members", r.Member, "report"), string(b))).Commit()
	if err != nil {
		return s.fail(err)
	}
	if !resp.Succeeded {
		return errLeaseLost
	}
	return nil
}

var errLeaseLost = errors.New("the agent's lease expired: another agent may act for the member")

// holds compares a member's presence key with the agent's lease.
func (s *EtcdStore) holds(member string, lease clientv3.LeaseID) clientv3.Cmp {
	return clientv3.Compare(clientv3.LeaseValue(s.key("members", member, "alive")), "=", lease)
}

// Reports returns what is known of each member's agent: its presence
// (nil when its lease is gone: the member is down) and last report.
func (s *EtcdStore) Reports(ctx context.Context) (map[string]*View, error) {
	ctx, cancel := s.ctx(ctx)
	defer cancel()
	r, err := s.cli.Get(ctx, s.key("members")+"/", clientv3.WithPrefix())
	if err != nil {
		return nil, s.fail(err)
	}
	out := map[string]*View{}
	for _, kv := range r.Kvs {
		rel := strings.TrimPrefix(string(kv.Key), s.key("members")+"/")
		id, what, _ := strings.Cut(rel, "/")
		v := out[id]
		if v == nil {
			v = &View{}
			out[id] = v
		}
		switch what {
		case "alive":
			var p Presence
			if json.Unmarshal(kv.Value, &p) == nil {
				v.Agent = &p
			}
		case "report":
			var rep Report
			if json.Unmarshal(kv.Value, &rep) == nil {
				v.Report = &rep
			}
		}
	}
	for _, v := range out {
		v.Up = v.Agent != nil
	}
	return out, nil
}

// refreshRequest is PREFIX/refresh's value.
type refreshRequest struct {
	Writer
	// To, if set, asks each agent to check that its member may move to
	// format To (check setup).
	To int `json:"to,omitempty"`
	// Members, if set, are the only members asked.
	Members []string `json:"members,omitempty"`
	// Since, if set, asks each agent what changed on its member since its
	// roll, against its tagged copy of format Since (undo).
	Since int `json:"since,omitempty"`
}

// refresh asks every agent (req.Members only, if set) for a report now,
// and returns the number its report will carry.
func (s *EtcdStore) refresh(ctx context.Context, req refreshRequest) (int64, error) {
	req.Writer = writer()
	b, _ := json.Marshal(req)
	ctx, cancel := s.ctx(ctx)
	defer cancel()
	r, err := s.cli.Put(ctx, s.key("refresh"), string(b))
	if err != nil {
		return 0, s.fail(err)
	}
	return r.Header.Revision, nil
}

// watch returns a channel that receives after every change of the keys
// given — a key, or with a trailing "/" every key below it — so waiting
// loops wake when something they wait for changes. Changes may be
// coalesced; the channel is closed when ctx ends or a watch fails (no
// leader for a moment): the caller polls and watches again.
func (s *EtcdStore) watch(ctx context.Context, keys ...string) <-chan struct{} {
	out := make(chan struct{}, 1)
	ctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
	var wg sync.WaitGroup
	for _, k := range keys {
		var opts []clientv3.OpOption
		if strings.HasSuffix(k, "/") {
			opts = append(opts, clientv3.WithPrefix())
		}
		wc := s.cli.Watch(ctx, k, opts...)
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer cancel()
			for range wc {
				select {
				case out <- struct{}{}:
				default:
				}
			}
		}()
	}
	go func() { wg.Wait(); cancel(); close(out) }()
	return out
}

// PutConfig stores a cluster configuration document under its id.
func (s *EtcdStore) PutConfig(ctx context.Context, id string, doc []byte) error {
	ctx, cancel := s.ctx(ctx)
	defer cancel()
	if _, err := s.cli.Put(ctx, s.key("configs", id), string(doc)); err != nil {
		return s.fail(err)
	}
	return nil
}

// GetConfig reads the cluster configuration document id.
func (s *EtcdStore) GetConfig(ctx context.Context, id string) ([]byte, error) {
	ctx, cancel := s.ctx(ctx)
	defer cancel()
	r, err := s.cli.Get(ctx, s.key("configs", id))
	if err != nil {
		return nil, s.fail(err)
	}
	if len(r.Kvs) == 0 {
		return nil, fmt.Errorf("no configuration %s in %s", id, s)
	}
	return r.Kvs[0].Value, nil
}
