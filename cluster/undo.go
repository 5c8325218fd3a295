package cluster

import (
	"fmt"
	"slices"
	"strings"

	"github.com/treeshift/treeshift/internal/model"
	"github.com/treeshift/treeshift/migrate"
	"github.com/treeshift/treeshift/tree"
)

// Undoing a roll (or the install) puts a member back as its tagged copy
// holds it. What was changed on the member since its roll — a service
// enabled and started, a tree made, a user allowed — the tagged copy does
// not hold: restoring would drop it, and a service running that the
// restored tree does not have would be left running under its supervisor
// with no tree to answer for it. So the member first finds what changed
// since its roll, and without --discard the undo is refused naming it;
// with --discard the member's engine first reconciles the system with the
// tagged copy's configuration (apply: services the copy lacks stopped
// through the supervisor, then disabled; trees the copy lacks destroyed;
// trees and services it has made again), then restores the exact bytes.
//
// "Since its roll" is measured against the member's tagged copy of the
// format it rolled to when the roll applied a cluster configuration (a
// snapshot made at the end of the roll: the configuration's own changes
// are the roll's, not changes since), and otherwise against the tagged
// copy of the old format, which the roll brought up to date first (a roll
// re-tags a member changed since setup, so that changes made before the
// roll survive its undo).

// ChangedError is a restore refused because the member changed since its
// roll.
type ChangedError struct{ Changes []string }

func (e *ChangedError) Error() string {
	return fmt.Sprintf("its trees changed since its roll (%s): restoring would drop the change(s); --discard drops them",
		strings.Join(e.Changes, "; "))
}

// diff is what differs between a member's trees and a tagged copy of them:
// Lines say what changed, in the member's terms; structural is set when a
// restore alone cannot put it back (trees made or destroyed, services
// enabled or disabled, trees enabled, reordered or made current), as
// opposed to what a restore replaces (records, users).
type diff struct {
	Lines      []string
	structural bool
}

// changedSince compares the member's trees with base, the tagged copy, and
// says what changed. up lists, per tree, the services up now.
func changedSince(cur, base *tree.Store, up map[string]map[string]bool) (*diff, error) {
	d := &diff{}
	add := func(structural bool, format string, args ...any) {
		d.Lines = append(d.Lines, fmt.Sprintf(format, args...))
		d.structural = d.structural || structural
	}
	curNames, err := cur.Names()
	if err != nil {
		return nil, err
	}
	baseNames, err := base.Names()
	if err != nil {
		return nil, fmt.Errorf("tagged copy: %w", err)
	}
	for _, n := range curNames {
		if !slices.Contains(baseNames, n) {
			add(true, "tree %s created%s", n, upNote(up[n]))
		}
	}
	for _, n := range baseNames {
		if !slices.Contains(curNames, n) {
			add(true, "tree %s destroyed", n)
		}
	}
	for _, n := range curNames {
		if !slices.Contains(baseNames, n) {
			continue
		}
		ct, err := cur.Load(n)
		if err != nil {
			return nil, err
		}
		bt, err := base.Load(n)
		if err != nil {
			return nil, fmt.Errorf("tagged copy: %w", err)
		}
		treeDiff(n, ct.Tree, bt.Tree, up[n], add)
	}
	cs, err := cur.ReadState()
	if err != nil {
		return nil, err
	}
	bs, err := base.ReadState()
	if err != nil {
		return nil, fmt.Errorf("tagged copy: %w", err)
	}
	for _, n := range cs.Order {
		if !slices.Contains(bs.Order, n) && slices.Contains(baseNames, n) {
			add(true, "tree %s enabled", n)
		}
	}
	for _, n := range bs.Order {
		if !slices.Contains(cs.Order, n) && slices.Contains(curNames, n) {
			add(true, "tree %s disabled", n)
		}
	}
	common := func(o []string) []string {
		return slices.DeleteFunc(slices.Clone(o), func(n string) bool {
			return !slices.Contains(cs.Order, n) || !slices.Contains(bs.Order, n)
		})
	}
	if a, b := common(cs.Order), common(bs.Order); !slices.Equal(a, b) {
		add(true, "start order %s (was %s)", strings.Join(a, " "), strings.Join(b, " "))
	}
	if cs.Current != bs.Current {
		add(true, "current tree %s (was %s)", dash(cs.Current), dash(bs.Current))
	}
	return d, nil
}

func dash(s string) string {
	if s == "" {
		return "none"
	}
	return s
}

func upNote(up map[string]bool) string {
	var names []string
	for n, u := range up {
		if u {
			names = append(names, n)
		}
	}
	if len(names) == 0 {
		return ""
	}
	slices.Sort(names)
	return ", services up: " + strings.Join(names, " ")
}

// treeDiff compares one tree with its tagged copy.
func treeDiff(name string, cur, base *model.Tree, up map[string]bool, add func(bool, string, ...any)) {
	if !slices.Equal(cur.Allow, base.Allow) {
		add(false, "tree %s: users %s (were %s)", name, strings.Join(cur.Allow, ","), strings.Join(base.Allow, ","))
	}
	for _, s := range cur.Services {
		b := base.Service(s.Name)
		switch {
		case s.Enabled && (b == nil || !b.Enabled):
			state := "down"
			if up[s.Name] {
				state = "up"
			}
			add(true, "tree %s: service %s enabled (%s)", name, s.Name, state)
		case !s.Enabled && b != nil && b.Enabled:
			// The undo enables it again and leaves it running or not
			// as it is now: it never starts what the operator stopped.
			state := "down"
			if up[s.Name] {
				state = "up"
			}
			add(true, "tree %s: service %s disabled (the undo enables it again; it stays %s)", name, s.Name, state)
		case s.Enabled && !sameRecord(s, *b):
			add(false, "tree %s: service %s rebuilt from a changed definition", name, s.Name)
		}
	}
	for _, b := range base.Services {
		if s := cur.Service(b.Name); s == nil && b.Enabled {
			add(true, "tree %s: service %s disabled (the undo enables it again; it stays down)", name, b.Name)
		}
	}
}

// sameRecord compares what a restore would replace of a service's record.
func sameRecord(a, b model.Service) bool {
	return a.Type == b.Type && a.Version == b.Version && a.Digest == b.Digest && a.Source == b.Source &&
		slices.Equal(a.Depends, b.Depends) && slices.Equal(a.Contents, b.Contents)
}

// undoBase is the tagged copy a member's changes since its roll are
// measured against, before a restore from the tagged copy of version v:
// the snapshot the roll left (the tagged copy of the format it rolled to,
// stamp), when there is one, else the copy of v.
func undoBase(e *migrate.Engine, v int) (*tree.Store, int, error) {
	st, err := e.Store.ReadState()
	if err != nil {
		return nil, 0, err
	}
	if st.Stamp != v && e.Store.HasTag(st.Stamp) {
		return e.Store.Tagged(st.Stamp), st.Stamp, nil
	}
	if !e.Store.HasTag(v) {
		return nil, 0, fmt.Errorf("no tagged copy of format %d at %s", v, e.Host(e.Store.TagDir(v)))
	}
	return e.Store.Tagged(v), v, nil
}

// upNow lists the services up in each live tree.
func upNow(e *migrate.Engine) (*migrate.Status, map[string]map[string]bool, error) {
	st, err := e.Status(nil)
	if st == nil {
		return nil, nil, err
	}
	up := map[string]map[string]bool{}
	for _, t := range st.Trees {
		m := map[string]bool{}
		for _, s := range t.Live.Services {
			m[s.Name] = s.Up
		}
		up[t.Name] = m
	}
	return st, up, nil
}

// changes says what changed on the member since its roll, before a
// restore from the tagged copy of version v.
func (s *site) changes(v int) ([]string, error) {
	e, err := s.engine()
	if err != nil {
		return nil, err
	}
	base, _, err := undoBase(e, v)
	if err != nil {
		return nil, err
	}
	_, up, err := upNow(e)
	if err != nil {
		return nil, err
	}
	d, err := changedSince(e.Store, base, up)
	if err != nil {
		return nil, err
	}
	return nonNilStrings(d.Lines), nil
}

func nonNilStrings(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// restore carries out a restore task: the member back to its tagged copy
// of t.Version. resumed: the task was started before (its run was cut
// short): the changes found then were already accepted or discarded, and
// what the interrupted run did is not a change of the member's own.
func (s *site) restore(e *migrate.Engine, t *Task, resumed bool) ([]string, error) {
	v := t.Version
	base, baseV, err := undoBase(e, v)
	if err != nil {
		return nil, err
	}
	st, up, err := upNow(e)
	if err != nil {
		return nil, err
	}
	d, err := changedSince(e.Store, base, up)
	if err != nil {
		return nil, err
	}
	if len(d.Lines) > 0 && !t.Discard && !resumed {
		return nil, &ChangedError{Changes: d.Lines}
	}
	// What a restore alone cannot put back — services and trees the copy
	// lacks or has — is reconciled first, against the copy of v itself:
	// the roll's own configuration is undone here too.
	full, err := changedSince(e.Store, e.Store.Tagged(v), up)
	if err != nil {
		return nil, err
	}
	var cfg *migrate.Config
	if full.structural {
		if cfg, err = taggedConfig(e.Store.Tagged(v), st); err != nil {
			return nil, err
		}
	}
	// Without a configuration, Apply only finishes an apply interrupted
	// before (this undo's, cut short): as update does, an interrupted
	// apply is finished before anything else changes. A restore cut short
	// (its transition's journal open) comes after the apply: Restore
	// finishes it.
	pending, err := e.Pending()
	if err != nil {
		return nil, err
	}
	if cfg != nil || len(pending) == 0 {
		if _, err := e.Apply(cfg, fmt.Sprintf("the tagged copy of format %d", v)); err != nil {
			return nil, err
		}
	}
	if _, err := e.Restore(v); err != nil {
		return nil, err
	}
	if baseV != v {
		// The roll's snapshot describes a state the member left.
		if err := e.Untag(baseV); err != nil {
			return nil, err
		}
	}
	if t.Discard {
		return d.Lines, nil
	}
	return nil, nil
}

// taggedConfig is the configuration of the tagged copy tagged, with the
// live state the member has now: a service the copy has and that is up
// now stays up, one it has and the member has not comes back down, a tree
// it lacks goes (with its services stopped first).
func taggedConfig(tagged *tree.Store, now *migrate.Status) (*migrate.Config, error) {
	names, err := tagged.Names()
	if err != nil {
		return nil, fmt.Errorf("tagged copy: %w", err)
	}
	state, err := tagged.ReadState()
	if err != nil {
		return nil, fmt.Errorf("tagged copy: %w", err)
	}
	live := map[string]migrate.TreeStatus{}
	for _, t := range now.Trees {
		live[t.Name] = t
	}
	c := &migrate.Config{Schema: migrate.ConfigSchema, Owner: now.Owner, Trees: []migrate.ConfigTree{}}
	// Enabled trees first, in the copy's start order: the configuration's
	// order is the start order.
	ordered := slices.Clone(state.Order)
	for _, n := range names {
		if !slices.Contains(ordered, n) {
			ordered = append(ordered, n)
		}
	}
	for _, n := range ordered {
		if !slices.Contains(names, n) {
			continue
		}
		t, err := tagged.Load(n)
		if err != nil {
			return nil, fmt.Errorf("tagged copy: %w", err)
		}
		enabled, _ := state.Enabled(n)
		lt := live[n]
		ct := migrate.ConfigTree{Name: n, Format: t.Format, Enabled: enabled, Current: state.Current == n,
			Allow: slices.Clone(t.Tree.Allow), Initialized: lt.Live.Initialized, Services: []migrate.ConfigService{}}
		up := map[string]migrate.LiveServiceStatus{}
		for _, s := range lt.Live.Services {
			up[s.Name] = s
		}
		for _, s := range t.Tree.Services {
			if !s.Enabled {
				continue
			}
			l := up[s.Name]
			ct.Services = append(ct.Services, migrate.ConfigService{Name: s.Name, Up: l.Up && ct.Initialized, Unmonitored: l.Unmonitored && ct.Initialized})
		}
		c.Trees = append(c.Trees, ct)
	}
	return c, nil
}

// retag brings the tagged copy of version v up to date before the member
// moves away from v, if the member changed since setup: what the roll
// moves is what its undo must put back. Only a member wholly at v, with
// nothing interrupted, is tagged again; otherwise (a roll resumed after a
// crash) the copy made before is kept.
func retag(e *migrate.Engine, v int) error {
	st, err := e.Store.ReadState()
	if err != nil || st.Stamp != v {
		return err
	}
	if p, err := e.Pending(); err != nil || len(p) > 0 {
		return err
	}
	names, err := e.Store.Names()
	if err != nil {
		return err
	}
	for _, n := range names {
		if f, err := e.Store.PeekFormat(n); err != nil || f != v {
			return err
		}
	}
	d, err := changedSince(e.Store, e.Store.Tagged(v), nil)
	if err != nil || len(d.Lines) == 0 {
		return err
	}
	return e.Tag(v)
}
