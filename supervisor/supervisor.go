// Package supervisor changes and reports the live state of services through
// a backend. The embedded Files backend keeps that state as files in the live
// directory, so every command runs and is testable without a process
// supervisor; a real s6 backend implements the same interface.
package supervisor

import (
	"github.com/treeshift/treeshift/livedb"
	"github.com/treeshift/treeshift/model"
)

// Backend brings the services of a live tree up and down.
type Backend interface {
	// Name is how the backend is chosen and reported.
	Name() string
	// Start brings svc up; its dependencies are already up.
	Start(t *livedb.Tree, svc model.IndexEntry) error
	// Stop brings svc down; the services depending on it are already down.
	Stop(t *livedb.Tree, svc model.IndexEntry) error
	// Up reports which services of t are up; a service not in the map is down.
	Up(t *livedb.Tree) (map[string]bool, error)
}

// Files is the embedded backend: state files, no processes.
type Files struct{}

func (Files) Name() string { return "files" }

func (Files) Start(t *livedb.Tree, svc model.IndexEntry) error { return t.SetState(svc.Name, true) }

func (Files) Stop(t *livedb.Tree, svc model.IndexEntry) error { return t.SetState(svc.Name, false) }

func (Files) Up(t *livedb.Tree) (map[string]bool, error) { return t.States() }
