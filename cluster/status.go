package cluster

import (
	"context"
	"fmt"
	"time"
)

// StatusSchema is the version of the status document (docs/JSON.md).
// Version 2 added the store, liveness, reports, tasks and history; 3 the
// coordinator, operations, handovers, membership changes, undos and the
// cluster configuration.
const StatusSchema = 3

// MemberStatus is one member in Status.
type MemberStatus struct {
	ID    string `json:"id"`
	Root  string `json:"root"`
	Votes int    `json:"votes"`
	// Rolled is what the record says; Report what the member's disk says.
	Rolled bool `json:"rolled"`
	// Rolling: the member's roll is asked for and not over.
	Rolling bool `json:"rolling"`
	// OnTagged: an upgrade is under way and the member has not moved yet;
	// its tagged copy is what it would be put back to.
	OnTagged bool `json:"on_tagged"`
	// Up: its agent's lease lives (etcd), its root reads (directory).
	// Down says why not.
	Up   bool   `json:"up"`
	Down string `json:"down,omitempty"`
	// Reported is how long ago its last report was made, in seconds.
	Reported float64   `json:"reported"`
	Report   *Report   `json:"report"`
	Agent    *Presence `json:"agent"`
	Task     *Task     `json:"task"`
	Last     *Record   `json:"last"`
	// Config is the cluster configuration the member last applied, nil
	// when it applied none.
	Config *Applied `json:"config"`
}

// MembershipChange is a member added or deleted.
type MembershipChange struct {
	Time    time.Time `json:"time"`
	Event   string    `json:"event"`
	Member  string    `json:"member"`
	Votes   int       `json:"votes"`
	By      string    `json:"by"`
	Host    string    `json:"host"`
	Changes []string  `json:"changes"`
}

// UndoRecord is a stage undone, with what the undo dropped.
type UndoRecord struct {
	Time    time.Time `json:"time"`
	Stage   string    `json:"stage"`
	Member  string    `json:"member"`
	By      string    `json:"by"`
	Host    string    `json:"host"`
	Dropped []string  `json:"dropped"`
}

// Span is one stage, or one member's part of it, from its first record
// to its last.
type Span struct {
	Stage  string     `json:"stage"`
	Member string     `json:"member"`
	Start  time.Time  `json:"start"`
	End    *time.Time `json:"end"`
	// Seconds is End - Start; while not over, how long it has run.
	Seconds float64 `json:"seconds"`
	// Outcome is finish, fail, undo, or open (not over).
	Outcome string `json:"outcome"`
	By      string `json:"by"`
	Host    string `json:"host"`
	Error   string `json:"error,omitempty"`
}

// Status is the document of `cluster status`.
type Status struct {
	Schema     int    `json:"schema"`
	Store      string `json:"store"`
	Stage      string `json:"stage"`
	Next       string `json:"next"`
	Active     int    `json:"active"`
	New        int    `json:"new"`
	Old        int    `json:"old"`
	Lead       string `json:"lead"`
	QuorumVote bool   `json:"quorum_vote"`
	Written    Writer `json:"written"`
	// Config is the cluster configuration members apply when they roll.
	Config *ConfigRef `json:"config"`
	// Coordinator is the agent elected to coordinate stages (etcd), nil
	// when none campaigns (or with a directory store).
	Coordinator *Coordinator `json:"coordinator"`
	// Operations lists the stage operations not over (etcd).
	Operations []Op           `json:"operations"`
	Members    []MemberStatus `json:"members"`
	// Interrupted lists work started and not finished that nothing is
	// carrying on, each with what resumes it.
	Interrupted []string `json:"interrupted"`
	History     []Span   `json:"history"`
	// Handovers, Membership and Undos are the coordinator handovers,
	// changes of membership and undos recorded, oldest first.
	Handovers  []Handover         `json:"handovers"`
	Membership []MembershipChange `json:"membership"`
	Undos      []UndoRecord       `json:"undos"`
}

// Status reports the record, the members as they report themselves, and
// the stage history.
func (c *Cluster) Status(ctx context.Context) (*Status, error) {
	st, _, err := c.load(ctx)
	if err != nil {
		return nil, err
	}
	records, err := c.Store.Records(ctx)
	if err != nil {
		return nil, err
	}
	views, err := c.views(ctx, st, false)
	if err != nil {
		return nil, err
	}
	out := &Status{Schema: StatusSchema, Store: c.Store.String(), Stage: st.Stage, Next: st.Next(), Active: st.Active, New: st.New, Old: st.Old,
		Lead: st.Lead, QuorumVote: st.QuorumVote, Written: st.Written, Config: st.Config, Operations: []Op{},
		Members: []MemberStatus{}, Interrupted: []string{}, History: history(records),
		Handovers: []Handover{}, Membership: []MembershipChange{}, Undos: []UndoRecord{}}
	if es, ok := c.Store.(*EtcdStore); ok {
		if out.Coordinator, err = es.Leader(ctx); err != nil {
			return nil, err
		}
		ops, _, err := es.ops(ctx)
		if err != nil {
			return nil, err
		}
		for _, op := range ops {
			out.Operations = append(out.Operations, *op)
		}
	}
	for _, r := range records {
		switch {
		case r.Event == "handover" && r.Handover != nil:
			out.Handovers = append(out.Handovers, *r.Handover)
		case r.Stage == Membership:
			out.Membership = append(out.Membership, MembershipChange{Time: r.Time, Event: r.Event, Member: r.Member, Votes: r.Votes,
				By: r.By, Host: r.Host, Changes: nonNilStrings(r.Changes)})
		case r.Event == "undo":
			out.Undos = append(out.Undos, UndoRecord{Time: r.Time, Stage: r.Stage, Member: r.Member, By: r.By, Host: r.Host,
				Dropped: nonNilStrings(r.Changes)})
		}
	}
	if out.Stage == Idle {
		out.Stage = "idle"
	}
	last := map[string]*Record{}
	open := map[string]Record{} // stage without member -> its start
	for i := range records {
		r := &records[i]
		if r.Member != "" {
			last[r.Member] = r
			continue
		}
		if r.Event == "start" {
			open[r.Stage] = *r
		} else {
			delete(open, r.Stage)
		}
	}
	rolling := st.rolling()
	_, agents := c.Store.(*EtcdStore)
	for _, m := range st.Members {
		v := view(views, m.ID)
		ms := MemberStatus{ID: m.ID, Root: m.Root, Votes: m.Votes, Rolled: m.Rolled, Up: v.Up, Down: v.Down,
			Rolling:  contains(rolling, m.ID),
			OnTagged: st.New != 0 && st.Stage != Idle && !m.Rolled && st.Stage != Switch,
			Report:   v.Report, Agent: v.Agent, Task: m.Task, Last: last[m.ID], Config: m.Config}
		if v.Report != nil {
			ms.Reported = time.Since(v.Report.Time).Round(time.Second).Seconds()
			if ms.Root == "" {
				ms.Root = v.Report.Root
			}
		}
		out.Members = append(out.Members, ms)
		t := m.Task
		if !t.Outstanding() || (agents && v.Up) {
			continue
		}
		what := fmt.Sprintf("%s of member %s started %s by %s on %s, not finished", label(t.Stage, t.Action), m.ID, t.Requested.Time.Format(time.RFC3339), t.Requested.By, t.Requested.Host)
		if t.Started != nil {
			what = fmt.Sprintf("%s of member %s started %s on %s, not finished", label(t.Stage, t.Action), m.ID, t.Started.Time.Format(time.RFC3339), t.Started.Host)
		}
		if agents {
			root := "ROOT"
			if v.Report != nil {
				root = v.Report.Root
			}
			out.Interrupted = append(out.Interrupted, fmt.Sprintf("%s: %s; restart its agent (treeshift --root %s cluster --store %s agent --member %s): it resumes the task", what, v.Down, root, c.Store, m.ID))
		} else {
			out.Interrupted = append(out.Interrupted, fmt.Sprintf("%s: run %s", what, c.resume(t, m.ID)))
		}
	}
	for _, r := range records {
		if o, ok := open[r.Stage]; ok && o.Seq == r.Seq {
			out.Interrupted = append(out.Interrupted, fmt.Sprintf("%s started %s by %s on %s, not finished: run %s", r.Stage, r.Time.Format(time.RFC3339), r.By, r.Host, c.cmd(r.Stage)))
		}
	}
	return out, nil
}

// resume is the command that carries an interrupted task on.
func (c *Cluster) resume(t *Task, member string) string {
	switch {
	case t.Action == ActRestore && t.Stage == Roll && t.Discard:
		return c.cmd("undo", Roll, member, "--discard")
	case t.Action == ActRestore && t.Stage == Roll:
		return c.cmd("undo", Roll, member)
	case t.Action == ActRestore && t.Discard:
		return c.cmd("undo", t.Stage, "--discard")
	case t.Action == ActRestore, t.Action == ActUntag && t.Stage == Setup:
		return c.cmd("undo", t.Stage)
	case t.Stage == Roll:
		return c.cmd(Roll, member)
	case t.Stage == Setup:
		return c.cmd(Setup, "LEAD")
	}
	return c.cmd(t.Stage)
}

func contains(s []string, x string) bool {
	for _, y := range s {
		if y == x {
			return true
		}
	}
	return false
}

// history pairs each stage's (or member's part's) first record with its
// last: request or start opens a span, finish, fail or undo closes it.
func history(records []Record) []Span {
	out := []Span{}
	open := map[string]int{}
	for _, r := range records {
		if r.Event == "handover" {
			// Not a stage's end: status lists handovers apart.
			continue
		}
		key := r.Stage + "/" + r.Member
		i, ok := open[key]
		switch r.Event {
		case "request", "start":
			if !ok {
				out = append(out, Span{Stage: r.Stage, Member: r.Member, Start: r.Time, Outcome: "open", By: r.By, Host: r.Host})
				open[key] = len(out) - 1
			}
			continue
		}
		if !ok {
			out = append(out, Span{Stage: r.Stage, Member: r.Member, Start: r.Time, By: r.By, Host: r.Host})
			i = len(out) - 1
		}
		delete(open, key)
		end := r.Time
		s := &out[i]
		s.End, s.Outcome, s.Error = &end, r.Event, r.Error
		s.Seconds = end.Sub(s.Start).Seconds()
		if r.Host != s.Host {
			s.Host += "→" + r.Host
		}
	}
	for _, i := range open {
		out[i].Seconds = time.Since(out[i].Start).Seconds()
	}
	return out
}
