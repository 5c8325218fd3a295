package cluster

import (
	"fmt"
	"time"
)

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
