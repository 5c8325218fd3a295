// Package cluster runs rolling format upgrades across the members of a
// cluster, in the manner of TruCluster's clu_upgrade: stages in a fixed
// order (setup, preinstall, install on the lead member, postinstall, roll of
// the other members, switch of the active version, clean), tagged copies so
// members can be put back, quorum kept while members roll, and a record of
// every stage so an interrupted one is seen and resumed.
//
// A stage asks members to do things (tasks, kept in the cluster record) and
// waits until they are done. With an etcd store every member runs an agent
// (Agent) that carries out its own tasks on its own disk and reports what
// the disk really holds; with a directory store, on one host, the stage
// command carries them out itself on the members' roots. Either way every
// change of a member's trees — a change of format, a restore from a tagged
// copy, the stamp — goes through that member's migrate.Engine, journaled and
// verified, and the stages that finish an upgrade (switch, clean) are gated
// on what members report, not on the record.
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

// Schema is the version of the cluster record. Version 1 (one JSON file
// with the records inline, no tasks) is still read.
const Schema = 2

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
	Stage string `json:"stage"`
	// Config is the cluster configuration members apply when they roll
	// (cluster configure), nil when none was stored.
	Config *ConfigRef `json:"config,omitempty"`
	// Written says who wrote this version of the record, from which host.
	Written Writer `json:"written"`
}

// ConfigRef names a cluster configuration stored with the record: its id
// (the first 12 hex digits of the SHA-256 of its canonical document), the
// file it was read from, and who stored it, where and when.
type ConfigRef struct {
	ID   string `json:"id"`
	File string `json:"file"`
	Writer
}

// Applied is a cluster configuration a member applied, when, and the
// format the member moved to in the same run.
type Applied struct {
	ID     string    `json:"id"`
	Time   time.Time `json:"time"`
	Format int       `json:"format"`
}

// Writer names who changed something, where and when.
type Writer struct {
	By   string    `json:"by"`
	Host string    `json:"host"`
	Time time.Time `json:"time"`
}

// Member is one host of the cluster.
type Member struct {
	ID string `json:"id"`
	// Root is the member's root on the host of a directory store; with an
	// etcd store the root is the agent's --root, on the member's host, and
	// is known from its reports.
	Root  string `json:"root,omitempty"`
	Votes int    `json:"votes"`
	// Rolled: the member's trees were moved to the new format by a task
	// that finished. Switch and clean do not trust it: they check reports.
	Rolled bool `json:"rolled"`
	// Task is what the member was last asked to do; Tasks counts the
	// tasks it was asked for (the last one's number).
	Task  *Task `json:"task,omitempty"`
	Tasks int   `json:"tasks"`
	// Config is the cluster configuration the member last applied (by a
	// roll or the install); Previous the one before, which an undo of
	// that roll puts back.
	Config   *Applied `json:"config,omitempty"`
	Previous *Applied `json:"previous_config,omitempty"`
}

// Task actions: what a member is asked to do, each through its engine.
const (
	ActTag     = "tag"     // make the tagged copy of Version (setup)
	ActVerify  = "verify"  // check the tagged copy of Version decodes to the trees (preinstall)
	ActUpdate  = "update"  // move every tree to Version (install, roll)
	ActRestore = "restore" // put the trees back as the tagged copy of Version holds them (undo)
	ActUntag   = "untag"   // remove the tagged copy of Version (clean, undo setup)
	ActShared  = "shared"  // move the shared trees the member holds to Version (switch)
)

// Task states.
const (
	Pending = "pending"
	Running = "running"
	Done    = "done"
	Failed  = "failed"
)

// Task is a request to one member, and what became of it.
type Task struct {
	Seq     int    `json:"seq"`
	Action  string `json:"action"`
	Version int    `json:"version"`
	Stage   string `json:"stage"`
	// Tagged is the version of the tagged copy a member moved by the task
	// must hold: the proof it is the system that was set up.
	Tagged int `json:"tagged,omitempty"`
	// Op is the stage operation that asked for the task (etcd: the
	// coordinator's; docs/CLUSTER.md): a coordinator resuming the
	// operation finds its tasks by it, and asks none twice.
	Op string `json:"op,omitempty"`
	// Config is the id of the cluster configuration an update applies
	// first (migrate.Engine.UpdateWith).
	Config string `json:"config,omitempty"`
	// Discard: a restore drops what changed on the member since its roll
	// (undo --discard); Dropped is what it dropped.
	Discard bool     `json:"discard,omitempty"`
	Dropped []string `json:"dropped,omitempty"`
	State   string   `json:"state"`
	Error   string   `json:"error,omitempty"`
	// Requested is who asked; Started and Finished the member's side.
	Requested Writer  `json:"requested"`
	Started   *Writer `json:"started,omitempty"`
	Finished  *Writer `json:"finished,omitempty"`
	// Seconds is how long the member's engine worked on it, ending at
	// Finished: the rest of the time between request and finish is
	// coordination (bench: coordination vs transitions).
	Seconds float64 `json:"seconds,omitempty"`
}

// Outstanding reports whether the task is asked for and not over.
func (t *Task) Outstanding() bool { return t != nil && (t.State == Pending || t.State == Running) }

// Record is one event of a stage.
type Record struct {
	// Seq is the record's place in the history, from 1.
	Seq   int    `json:"seq"`
	Stage string `json:"stage"`
	// Event is request, start, finish, fail or undo for a stage or a
	// member's part of it; add or delete for a change of membership;
	// configure; handover (a coordinator took over an operation).
	Event  string `json:"event"`
	Member string `json:"member,omitempty"`
	From   int    `json:"from"`
	To     int    `json:"to"`
	By     string `json:"by"`
	// Host is the host whose treeshift wrote the record: the operator's
	// for requests and stages, the member's for its start and finish.
	Host  string    `json:"host"`
	Time  time.Time `json:"time"`
	Error string    `json:"error,omitempty"`
	// Seconds, on a task's finish or fail, is how long the member's
	// engine worked on it.
	Seconds float64 `json:"seconds,omitempty"`
	// Op is the stage operation the record belongs to (etcd), and
	// Coordinator the agent that coordinated it (member@host).
	Op          string `json:"op,omitempty"`
	Coordinator string `json:"coordinator,omitempty"`
	// Votes is a member's votes, on add and delete.
	Votes int `json:"votes,omitempty"`
	// Changes lists what an undo dropped (--discard), or what a change of
	// membership left behind (a task not over).
	Changes []string `json:"changes,omitempty"`
	// Config is the configuration id, on configure.
	Config string `json:"config,omitempty"`
	// Handover names the coordinators, on handover.
	Handover *Handover `json:"handover,omitempty"`
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
	// stage waits for a member's owner lock or the store's lock (--wait);
	// Report receives what the members' engines do.
	Live   string
	Wait   time.Duration
	Report migrate.Reporter
	// Shared is the root of the cluster-shared trees that this process
	// migrates at switch, with a directory store (DIR/shared). With etcd
	// the agents that hold shared trees say so (agent --shared).
	Shared string

	// op is the stage operation this Cluster carries out as the
	// coordinator (etcd), nil when the stage command coordinates itself.
	op *opRun
}

func (c *Cluster) cmd(args ...string) string {
	if c.Suggest != nil {
		return c.Suggest(args...)
	}
	return "treeshift cluster " + strings.Join(args, " ")
}

func (c *Cluster) say(format string, args ...any) {
	if c.Say != nil {
		c.Say(format, args...)
	}
}

func (c *Cluster) wait() time.Duration {
	if c.Wait == 0 {
		return 30 * time.Second
	}
	return c.Wait
}

var hostName = func() string {
	h, err := os.Hostname()
	if err != nil || h == "" {
		return "unknown"
	}
	return h
}()

// writer is this process, now.
func writer() Writer {
	who := strconv.Itoa(os.Getuid())
	if u, err := user.Current(); err == nil {
		who = u.Username
	}
	return Writer{By: who, Host: hostName, Time: time.Now().UTC()}
}

func (st *State) member(id string) *Member {
	for i := range st.Members {
		if st.Members[i].ID == id {
			return &st.Members[i]
		}
	}
	return nil
}

// record is a stage event written by w, to be appended with the record's
// next write. Its number is its place among the records, known when they
// are read.
func (st *State) record(w Writer, stage, event, member string) Record {
	from, to := st.Active, st.New
	if st.Old != 0 {
		from = st.Old
	}
	return Record{Stage: stage, Event: event, Member: member, From: from, To: to, By: w.By, Host: w.Host, Time: w.Time}
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
	if (st.Stage == Postinstall || st.Stage == Roll) && stage == Switch {
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

func (st *State) rolledOthers() []string {
	var out []string
	for _, m := range st.Members {
		if m.Rolled && m.ID != st.Lead {
			out = append(out, m.ID)
		}
	}
	return out
}
