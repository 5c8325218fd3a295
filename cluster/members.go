package cluster

import (
	"fmt"
	"os"
	"time"

	"github.com/treeshift/treeshift/internal/owner"
	"github.com/treeshift/treeshift/migrate"
)

// engine opens a member's system.
func (c *Cluster) engine(m *Member) (*migrate.Engine, error) {
	getenv := c.Getenv
	if getenv == nil {
		getenv = os.Getenv
	}
	o, err := owner.Current(m.Root, getenv)
	if err != nil {
		return nil, err
	}
	e, err := migrate.Open(o, migrate.Options{Live: c.Live, Wait: c.wait(), Report: c.Report})
	if err != nil {
		return nil, fmt.Errorf("member %s: %w", m.ID, err)
	}
	return e, nil
}

func (c *Cluster) shared() (*migrate.Engine, error) {
	root := c.Store.SharedRoot()
	if err := os.MkdirAll(root, 0o755); err != nil {
		return nil, err
	}
	return c.engine(&Member{ID: "shared", Root: root})
}

func (c *Cluster) wait() time.Duration {
	if c.Wait == 0 {
		return 30 * time.Second
	}
	return c.Wait
}

// transaction runs fn on the record under the store's lock and saves it.
func (c *Cluster) transaction(fn func(st *State) error) error {
	unlock, err := c.Store.Lock(c.wait())
	if err != nil {
		return err
	}
	defer unlock()
	st, err := c.load()
	if err != nil {
		return err
	}
	return fn(st)
}

// stage runs a stage that must be next: under the lock, it checks the
// order, runs fn, and records the stage as the last completed.
func (c *Cluster) stage(name string, fn func(st *State) error) error {
	return c.transaction(func(st *State) error {
		if err := st.expect(name); err != nil {
			return err
		}
		if err := fn(st); err != nil {
			return err
		}
		st.Stage = name
		return c.Store.Save(st)
	})
}
