package cluster

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"

	"github.com/treeshift/treeshift/internal/model"
)

// A record read from the store is input like any other: whoever can write
// the store (or edited cluster.json by hand) chooses its member ids, which
// become etcd keys and file names, its roots, where the engine runs, and
// its configuration ids, which name stored documents. Each is checked with
// the command line's rules before anything acts on the record.

// check verifies the names a record holds.
func (st *State) check() error {
	ids := map[string]bool{}
	roots := map[string]string{}
	for _, m := range st.Members {
		if err := model.CheckName(m.ID); err != nil {
			return fmt.Errorf("member id: %v", err)
		}
		if ids[m.ID] {
			return fmt.Errorf("member %s is listed twice", m.ID)
		}
		ids[m.ID] = true
		if m.Votes < 0 || m.Votes > MaxVotes {
			return fmt.Errorf("member %s: %d votes: a member has 0 to %d", m.ID, m.Votes, MaxVotes)
		}
		if m.Root != "" {
			if !filepath.IsAbs(m.Root) || filepath.Clean(m.Root) != m.Root {
				return fmt.Errorf("member %s: root %q is not a clean absolute path", m.ID, m.Root)
			}
			if other, ok := roots[m.Root]; ok {
				return fmt.Errorf("members %s and %s have the same root %s", other, m.ID, m.Root)
			}
			roots[m.Root] = m.ID
		}
		if err := m.Task.check(); err != nil {
			return fmt.Errorf("member %s: %v", m.ID, err)
		}
		for _, a := range []*Applied{m.Config, m.Previous} {
			if a != nil {
				if err := checkConfigID(a.ID); err != nil {
					return fmt.Errorf("member %s: %v", m.ID, err)
				}
			}
		}
	}
	if st.Lead != "" {
		if err := model.CheckName(st.Lead); err != nil {
			return fmt.Errorf("lead: %v", err)
		}
	}
	if st.Config != nil {
		if err := checkConfigID(st.Config.ID); err != nil {
			return err
		}
	}
	return nil
}

// checkConfigID checks a configuration id: ConfigID's 12 hex digits.
func checkConfigID(id string) error {
	ok := len(id) == 12
	for _, c := range id {
		ok = ok && (c >= '0' && c <= '9' || c >= 'a' && c <= 'f')
	}
	if !ok {
		return fmt.Errorf("configuration id %q: expected 12 hex digits", id)
	}
	return nil
}

// getConfig reads configuration id from s and checks that it is the
// document the id was made from: a document replaced in the store is not
// applied.
func getConfig(ctx context.Context, s Store, id string) ([]byte, error) {
	if err := checkConfigID(id); err != nil {
		return nil, err
	}
	doc, err := s.GetConfig(ctx, id)
	if err != nil {
		return nil, err
	}
	if got := ConfigID(doc); got != id {
		return nil, fmt.Errorf("configuration %s in %s: its content is %s's, not %s's: the document was changed after it was stored", id, s, got, id)
	}
	return doc, nil
}

// checkRoots refuses two members of a directory store on one root: the
// same path, or two paths to one directory. One root rolled as two members
// would count twice toward quorum, and undoing either would move the
// other.
func checkRoots(ms []Member) error {
	for i, a := range ms {
		for _, b := range ms[:i] {
			if a.Root == "" || b.Root == "" {
				continue
			}
			same := a.Root == b.Root
			if !same {
				fa, errA := os.Stat(a.Root)
				fb, errB := os.Stat(b.Root)
				same = errA == nil && errB == nil && os.SameFile(fa, fb)
			}
			if same {
				return fmt.Errorf("members %s and %s have one root, %s: a root is one member", b.ID, a.ID, a.Root)
			}
		}
	}
	return nil
}

// check verifies that a task read from the store is one a stage asks for.
func (t *Task) check() error {
	if t == nil {
		return nil
	}
	switch {
	case !slices.Contains([]string{ActTag, ActVerify, ActUpdate, ActRestore, ActUntag, ActShared}, t.Action):
		return fmt.Errorf("task %d: unknown action %q", t.Seq, t.Action)
	case !slices.Contains([]string{Setup, Preinstall, Install, Postinstall, Roll, Switch, Clean, Membership}, t.Stage):
		return fmt.Errorf("task %d: unknown stage %q", t.Seq, t.Stage)
	case !slices.Contains([]string{Pending, Running, Done, Failed}, t.State):
		return fmt.Errorf("task %d: unknown state %q", t.Seq, t.State)
	case t.Config != "":
		return checkConfigID(t.Config)
	}
	return nil
}
