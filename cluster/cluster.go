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
	"os"
	"os/user"
	"strconv"
	"strings"
	"time"

	"github.com/treeshift/treeshift/migrate"
)

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
