// Package supervisor changes and reports the live state of services through
// a backend. The embedded Files backend keeps that state as files in the live
// directory, so every command runs and is testable without a process
// supervisor; package supervisor/s6 runs real processes under s6.
package supervisor

import (
	"github.com/treeshift/treeshift/internal/model"
	"github.com/treeshift/treeshift/livedb"
)

// State is the live state of one service.
type State struct {
	Up bool
	// Unmonitored: the service is up and its supervisor will not bring it
	// back if it stops (s6's "once" mode): supervision is paused, the
	// service keeps running. Only longruns and classics are supervised.
	Unmonitored bool
	// Pid is the supervised process's pid, 0 when down or not a process.
	Pid int
	// Uptime is how long it has been up, in seconds, when known.
	Uptime int
}

// Backend brings the services of a live tree up and down.
type Backend interface {
	// Name is how the backend is chosen and reported.
	Name() string
	// Init prepares a tree that has just been made live: services begin
	// down. compiled is the tree's compiled database.
	Init(t *livedb.Tree, compiled string, index model.Index) error
	// Uninit undoes Init; every service is down.
	Uninit(t *livedb.Tree, index model.Index) error
	// Start brings svc up; its dependencies are already up.
	Start(t *livedb.Tree, svc model.IndexEntry) error
	// Stop brings svc down; the services depending on it are already down.
	Stop(t *livedb.Tree, svc model.IndexEntry) error
	// States reports the services of index; a missing one is down.
	States(t *livedb.Tree, index model.Index) (map[string]State, error)
	// Unmonitor pauses the supervision of svc, which is up and keeps
	// running; Monitor resumes it.
	Unmonitor(t *livedb.Tree, svc model.IndexEntry) error
	Monitor(t *livedb.Tree, svc model.IndexEntry) error
}

// Files is the embedded backend: state files, no processes.
type Files struct{}

func (Files) Name() string { return "files" }

func (Files) Init(*livedb.Tree, string, model.Index) error { return nil }

func (Files) Uninit(*livedb.Tree, model.Index) error { return nil }

// Start records svc as up, and monitored: a service started is supervised
// again.
func (Files) Start(t *livedb.Tree, svc model.IndexEntry) error {
	if err := t.SetUnmonitored(svc.Name, false); err != nil {
		return err
	}
	return t.SetState(svc.Name, true)
}

func (Files) Stop(t *livedb.Tree, svc model.IndexEntry) error {
	if err := t.SetUnmonitored(svc.Name, false); err != nil {
		return err
	}
	return t.SetState(svc.Name, false)
}

func (Files) States(t *livedb.Tree, _ model.Index) (map[string]State, error) {
	up, err := t.States()
	if err != nil {
		return nil, err
	}
	unmonitored, err := t.Unmonitored()
	if err != nil {
		return nil, err
	}
	out := map[string]State{}
	for n, u := range up {
		out[n] = State{Up: u, Unmonitored: u && unmonitored[n]}
	}
	return out, nil
}

// Unmonitor records svc as unmonitored: the embedded backend runs no
// process, so the record is all there is to pause.
func (Files) Unmonitor(t *livedb.Tree, svc model.IndexEntry) error {
	return t.SetUnmonitored(svc.Name, true)
}

// Monitor removes that record.
func (Files) Monitor(t *livedb.Tree, svc model.IndexEntry) error {
	return t.SetUnmonitored(svc.Name, false)
}
