package supervisor

import (
	"sync"

	"github.com/treeshift/treeshift/internal/model"
	"github.com/treeshift/treeshift/livedb"
)

// Dry wraps a backend for a dry run: states are read from the real backend,
// and what the run would start, stop or pause is remembered in memory
// instead of done, so that the rest of the run sees the state it would have
// made. No process is started or signalled, and no scan directory touched.
type Dry struct {
	Backend Backend

	mu      sync.Mutex
	changed map[string]State // by tree name and service
}

func (d *Dry) Name() string { return d.Backend.Name() }

// Init and Uninit change only what a supervisor watches: nothing a dry run
// reports on.
func (d *Dry) Init(*livedb.Tree, string, model.Index) error { return nil }

func (d *Dry) Uninit(t *livedb.Tree, index model.Index) error {
	for _, e := range index.Entries {
		d.set(t, e.Name, State{})
	}
	return nil
}

func (d *Dry) Start(t *livedb.Tree, e model.IndexEntry) error {
	d.set(t, e.Name, State{Up: true})
	return nil
}

func (d *Dry) Stop(t *livedb.Tree, e model.IndexEntry) error {
	d.set(t, e.Name, State{})
	return nil
}

func (d *Dry) Unmonitor(t *livedb.Tree, e model.IndexEntry) error {
	d.set(t, e.Name, State{Up: true, Unmonitored: true})
	return nil
}

func (d *Dry) Monitor(t *livedb.Tree, e model.IndexEntry) error {
	d.set(t, e.Name, State{Up: true})
	return nil
}

// States is the real backend's, with what the run changed laid over it.
func (d *Dry) States(t *livedb.Tree, index model.Index) (map[string]State, error) {
	out, err := d.Backend.States(t, index)
	if err != nil {
		return nil, err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, e := range index.Entries {
		if st, ok := d.changed[t.Name+"/"+e.Name]; ok {
			if prev, ok := out[e.Name]; ok && prev.Up == st.Up {
				st.Pid, st.Uptime = prev.Pid, prev.Uptime
			}
			out[e.Name] = st
		}
	}
	return out, nil
}

func (d *Dry) set(t *livedb.Tree, svc string, st State) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.changed == nil {
		d.changed = map[string]State{}
	}
	d.changed[t.Name+"/"+svc] = st
}
