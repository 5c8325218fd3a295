package migrate

import (
	"errors"
	"fmt"

	"github.com/treeshift/treeshift/format"
)

// UpdateReport is what an update did: the document `update --json` prints.
type UpdateReport struct {
	Schema    int      `json:"schema"`
	DryRun    bool     `json:"dry_run"`
	To        int      `json:"to"`
	Recovered []string `json:"recovered"`
	// Applied lists the changes a configuration given to the update made
	// (update --config), before any tree moved.
	Applied []string `json:"applied,omitempty"`
	Trees   []Result `json:"trees"`
}

// CleanupError reports trees an update moved whose cleanup failed: each
// one's reason is in the report (Result.Cleanup); the next update
// finishes it.
type CleanupError struct {
	Trees []string
	Cmd   string
}

func (e *CleanupError) Error() string {
	return fmt.Sprintf("tree(s) %s moved, but removing what the update no longer uses failed: run %s again", join(e.Trees), e.Cmd)
}

// NotUpdatedError reports the trees an update did not move; each one's
// reason is in the report.
type NotUpdatedError struct{ Trees []string }

func (e *NotUpdatedError) Error() string {
	return fmt.Sprintf("tree(s) not updated: %s", join(e.Trees))
}

// Update moves the trees names (all of the owner's, in start order, when
// there are none) to format to, as `treeshift update` does: under the owner
// lock, it first finishes or rolls back an interrupted update, then runs
// the transition, then moves the owner's format stamp if every tree is in
// format to. The report says what happened to each tree; the error is set
// when a tree was not moved (a *NotUpdatedError), or when the run could not
// start. Unknown trees and formats are usage errors, found before the lock
// is taken.
func (e *Engine) Update(names []string, to int) (*UpdateReport, error) {
	return e.UpdateWith(nil, "", names, to)
}

// UpdateWith is Update after applying configuration c (read from file) in
// the same run, under the same lock: the configuration of the trees and
// their formats change together, as tpm's update does after configure.
// With a configuration no trees may be named: it is the whole system's.
func (e *Engine) UpdateWith(c *Config, file string, names []string, to int) (*UpdateReport, error) {
	if c != nil && len(names) > 0 {
		return nil, usage("a configuration is the whole system's: name no trees with it")
	}
	if e.Registry.Version(to) == nil {
		_, err := format.Get(to)
		if err == nil {
			err = fmt.Errorf("format %d has no directives", to)
		}
		return nil, &UsageError{Err: err}
	}
	for _, n := range names {
		if err := e.CheckTree(n); err != nil {
			return nil, err
		}
	}
	unlock, err := e.Lock()
	if err != nil {
		return nil, err
	}
	defer unlock()
	report := &UpdateReport{Schema: 1, DryRun: e.DryRun, To: to, Recovered: []string{}, Trees: []Result{}}
	// A journal that cannot be read refuses the run before anything is
	// touched, leftovers included: a refusal changes nothing.
	if _, err := e.readJournal(); err != nil {
		return report, err
	}
	// Temporary files an interrupted atomic write left (beside the state,
	// in the journal directory) are removed whatever else the run does.
	if err := e.sweep(); err != nil {
		return report, err
	}
	recovered, err := e.Recover()
	report.Recovered = append(report.Recovered, recovered...)
	var stuck *StuckError
	if errors.As(err, &stuck) {
		// The trees that could not be recovered stay as they are; the
		// others are free to move.
		names = without(names, stuck.Trees)
	} else if err != nil {
		return report, err
	}
	// An interrupted apply is finished before anything else changes.
	applied := &ApplyReport{Changes: []string{}}
	if _, err := e.resumeApply(applied); err != nil {
		return report, err
	}
	if c != nil {
		if stuck != nil {
			return report, errors.Join(stuck, fmt.Errorf("%s is not applied while a tree is stuck in an interrupted update", file))
		}
		if err := e.apply(c, file, applied, false); err != nil {
			report.Applied = applied.Changes
			return report, err
		}
	}
	report.Applied = applied.Changes
	whole := len(names) == 0 && stuck == nil
	if len(names) == 0 {
		all, err := e.Ordered()
		if err != nil {
			return report, err
		}
		names = all
		if stuck != nil {
			names = without(names, stuck.Trees)
		}
	}
	report.Trees = e.transition(names, target{to: to})
	var bad []string
	for _, r := range report.Trees {
		if r.Error != "" {
			bad = append(bad, r.Tree)
		}
	}
	if stuck != nil {
		return report, errors.Join(stuck, notUpdated(bad))
	}
	if len(bad) > 0 {
		return report, &NotUpdatedError{Trees: bad}
	}
	// Run over every tree, the transition has seen each one's format: the
	// stamp needs no second look at them.
	if whole {
		for _, r := range report.Trees {
			if r.Outcome != Updated && (r.Outcome != Unchanged || r.From != to) {
				whole = false
			}
		}
	}
	if err := e.stamp(to, whole); err != nil {
		return report, err
	}
	var dirty []string
	for _, r := range report.Trees {
		if r.Cleanup != "" {
			dirty = append(dirty, r.Tree)
		}
	}
	if len(dirty) > 0 {
		return report, &CleanupError{Trees: dirty, Cmd: e.Suggest.Cmd("update")}
	}
	return report, nil
}

func notUpdated(bad []string) error {
	if len(bad) == 0 {
		return nil
	}
	return &NotUpdatedError{Trees: bad}
}

func without(names []string, drop map[string]error) []string {
	var out []string
	for _, n := range names {
		if drop[n] == nil {
			out = append(out, n)
		}
	}
	return out
}

// sweep removes what interrupted changes left in the system directory:
// temporary files, half-made link swaps, and the generations of trees
// whose creation or destruction was cut short.
func (e *Engine) sweep() error {
	if err := e.Store.Sweep(); err != nil {
		return err
	}
	return e.Store.SweepOrphans()
}

// stamp records v as the owner's format stamp once every tree is in it
// (known: the caller has seen that they are). A
// system directory without a stamp yet (no tree was ever created) keeps
// none.
func (e *Engine) stamp(v int, known bool) error {
	names, err := e.Store.Names()
	if err != nil || known {
		names = nil
	}
	if err != nil {
		return err
	}
	for _, n := range names {
		f, err := e.Store.PeekFormat(n)
		if err != nil {
			return err
		}
		if f != v {
			return nil
		}
	}
	st, err := e.Store.ReadState()
	if err != nil || st.Stamp == v || st.Stamp == 0 {
		return err
	}
	e.act("update format stamp of %s to: %d", e.Store.Dir, v)
	st.Stamp = v
	return e.Store.WriteState(st)
}
