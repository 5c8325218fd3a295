package migrate

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/treeshift/treeshift/format"
	"github.com/treeshift/treeshift/internal/compile"
	"github.com/treeshift/treeshift/internal/model"
	"github.com/treeshift/treeshift/tree"
)

// applyEntry is the journal entry of an apply under way.
const applyEntry = "apply"

// applyJournal is what an apply records before its first change: the
// configuration it reconciles the system with. An apply interrupted by a
// crash is finished by reconciling again with it: every change is worked
// out afresh from the system as it is, so what was done is not done twice.
type applyJournal struct {
	Schema  int             `json:"schema"`
	Started time.Time       `json:"started"`
	File    string          `json:"file"`
	Config  json.RawMessage `json:"config"`
}

// change is one difference between the system and a configuration, and
// what removes it. Its lines say what it does: a dry run prints them, and
// they are exactly the differences.
type change struct {
	lines []string
	do    func() error
}

// ApplyReport is what an apply did (or, in a dry run, would do).
type ApplyReport struct {
	Schema int    `json:"schema"`
	DryRun bool   `json:"dry_run"`
	File   string `json:"file"`
	// Changes lists the differences removed, one line each, in order.
	Changes []string `json:"changes"`
	// Resumed names the configuration file of an interrupted apply that
	// was finished first, if there was one.
	Resumed string `json:"resumed,omitempty"`
}

// Apply reconciles the owner's system with configuration c (read from
// file, which messages name): trees are created, destroyed, enabled,
// disabled and reordered, services enabled, disabled, started, stopped,
// paused and resumed, and definitions changed since their records were
// built taken, until the system is what c says. Everything is read and
// checked before the first change. An apply interrupted earlier is
// finished first. With an empty file, only that is done.
func (e *Engine) Apply(c *Config, file string) (*ApplyReport, error) {
	unlock, err := e.lockApply()
	if err != nil {
		return nil, err
	}
	defer unlock()
	report := &ApplyReport{Schema: 1, DryRun: e.DryRun, File: file, Changes: []string{}}
	if err := e.sweep(); err != nil {
		return report, err
	}
	resumed, err := e.resumeApply(report)
	if err != nil {
		return report, err
	}
	report.Resumed = resumed
	if c == nil {
		if resumed == "" {
			e.note(2, "no interrupted apply to finish")
		}
		return report, nil
	}
	return report, e.apply(c, file, report, false)
}

// resumeApply finishes an interrupted apply, if there is one, and returns
// its file.
func (e *Engine) resumeApply(report *ApplyReport) (string, error) {
	j, c, err := e.readApplyJournal()
	if err != nil || j == nil {
		return "", err
	}
	e.note(2, "finishing the interrupted apply of %s", j.File)
	if err := e.apply(c, j.File, report, true); err != nil {
		return j.File, fmt.Errorf("finish the interrupted apply of %s: %w", j.File, err)
	}
	return j.File, nil
}

// apply works out the changes c asks for and makes them, journaled. A
// change that fails stops the run: the changes before it are done, the
// journal is closed (the failure is reported, not retried blindly), and
// the error says what failed.
func (e *Engine) apply(c *Config, file string, report *ApplyReport, resuming bool) error {
	changes, err := e.reconcile(c, file)
	if err != nil {
		return err
	}
	if len(changes) == 0 {
		if resuming {
			return e.Store.RemoveJournal(applyEntry)
		}
		e.note(2, "nothing to do: the system already is as %s says", file)
		return nil
	}
	if !resuming {
		raw, err := json.Marshal(c)
		if err != nil {
			return err
		}
		j := applyJournal{Schema: 1, Started: time.Now().UTC(), File: file, Config: raw}
		b, err := json.Marshal(j)
		if err != nil {
			return err
		}
		if err := e.Store.WriteJournal(applyEntry, func(w io.Writer) error {
			_, err := w.Write(append(b, '\n'))
			return err
		}); err != nil {
			return err
		}
	}
	for i, ch := range changes {
		for _, l := range ch.lines {
			e.act("%s", l)
		}
		if err := e.quietly(ch.do); err != nil {
			msg := fmt.Errorf("%s: %w", strings.Join(ch.lines, "; "), err)
			if rerr := e.Store.RemoveJournal(applyEntry); rerr != nil {
				return errors.Join(msg, rerr)
			}
			if i > 0 {
				return fmt.Errorf("%w (the %d change(s) before it are done; run %s again once the cause is fixed)",
					msg, i, e.Suggest.Cmd("apply", file))
			}
			return msg
		}
		report.Changes = append(report.Changes, ch.lines...)
		for _, l := range ch.lines {
			e.note(2, "applied: %s", l)
		}
	}
	if err := e.Store.RemoveJournal(applyEntry); err != nil {
		return err
	}
	e.note(2, "applied %s: %d change(s)", file, len(report.Changes))
	return nil
}

// quietly runs fn with the engine's own info messages held back: an apply
// reports each of its changes once, in its own words, rather than what
// each command it is made of would say.
func (e *Engine) quietly(fn func() error) error {
	r := e.Report
	if r != nil {
		e.Report = quiet{r}
		defer func() { e.Report = r }()
	}
	return fn()
}

type quiet struct{ Reporter }

func (q quiet) Note(level int, format string, args ...any) {
	if level > 2 {
		q.Reporter.Note(level, format, args...)
	}
}

// readApplyJournal returns the entry of an interrupted apply and its
// configuration, or nil.
func (e *Engine) readApplyJournal() (*applyJournal, *Config, error) {
	names, err := e.Store.Journals()
	if err != nil || !slices.Contains(names, applyEntry) {
		return nil, nil, err
	}
	p := e.Host(e.Store.JournalPath(applyEntry))
	b, err := e.Store.ReadJournal(applyEntry)
	if err != nil {
		return nil, nil, err
	}
	var j applyJournal
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&j); err != nil || j.Schema != 1 {
		return nil, nil, &InconsistentError{fmt.Sprintf("%s: not an apply journal treeshift can read (%v): remove it only after checking the trees by hand", p, err)}
	}
	c, err := ReadConfig(p, bytes.NewReader(j.Config))
	if err != nil {
		return nil, nil, &InconsistentError{err.Error()}
	}
	return &j, c, nil
}

// reconcile reads the system and the definitions c needs, checks c against
// them, and returns the changes that make the system what c says, in the
// order they must be made: trees c leaves out destroyed; then tree by tree
// in c's order: created, its users set, services stopped, uninitialized,
// records changed (services disabled, enabled, new definitions taken),
// initialized, services started, supervision resumed or paused; then the
// start order and the current tree. It changes nothing.
func (e *Engine) reconcile(c *Config, file string) ([]change, error) {
	bad := func(format string, args ...any) error {
		return &UsageError{Err: &ConfigError{File: file, Msg: fmt.Sprintf(format, args...)}}
	}
	if c.Owner.Name != e.Owner.Name {
		return nil, bad("the configuration of user %s, not of %s: run apply as %s, or edit owner.name",
			c.Owner.Name, e.Owner.Name, c.Owner.Name)
	}
	names, err := e.Ordered()
	if err != nil {
		return nil, err
	}
	state, err := e.Store.ReadState()
	if err != nil {
		return nil, err
	}
	// Every tree is read before anything is decided: an apply that
	// stopped at a tree it cannot read would leave the system half
	// configured.
	loaded := map[string]*tree.Tree{}
	status := map[string]TreeStatus{}
	var unreadable []string
	var why []string
	for _, n := range names {
		t, err := e.Load(n)
		if err == nil {
			var ts TreeStatus
			if ts, err = e.TreeStatus(t, state); err == nil {
				loaded[n], status[n] = t, ts
				continue
			}
		}
		var ue *UsageError
		if errors.As(err, &ue) {
			return nil, err
		}
		unreadable = append(unreadable, n)
		why = append(why, err.Error())
	}
	if len(unreadable) > 0 {
		return nil, fmt.Errorf("%s\nnothing is applied until every tree can be read; a tree no treeshift can read is removed with: %s",
			strings.Join(why, "\n"), e.Suggest.Cmd("tree", "destroy", unreadable[0]))
	}

	var changes []change
	wanted := map[string]bool{}
	for _, ct := range c.Trees {
		wanted[ct.Name] = true
	}
	for _, n := range names {
		if !wanted[n] {
			changes = append(changes, e.destroyChanges(status[n])...)
		}
	}
	for _, ct := range c.Trees {
		chs, err := e.treeChanges(ct, loaded[ct.Name], status[ct.Name], bad)
		if err != nil {
			return nil, err
		}
		changes = append(changes, chs...)
	}
	if ch := stateChange(e, c, state); ch != nil {
		changes = append(changes, *ch)
	}
	return changes, nil
}

// destroyChanges removes a tree the configuration leaves out.
func (e *Engine) destroyChanges(ts TreeStatus) []change {
	var out []change
	if up := upServices(ts); len(up) > 0 {
		slices.Reverse(up) // as they are stopped
		out = append(out, change{[]string{fmt.Sprintf("stop services of tree %s: %s", ts.Name, join(up))},
			func() error { return e.Stop(ts.Name, up) }})
	}
	return append(out, change{[]string{"destroy tree " + ts.Name}, func() error { return e.DestroyTree(ts.Name) }})
}

// treeChanges are the changes that make one tree what ct says; t is nil for
// a tree to create.
func (e *Engine) treeChanges(ct ConfigTree, t *tree.Tree, ts TreeStatus, bad func(string, ...any) error) ([]change, error) {
	T := ct.Name
	var out []change
	add := func(line string, do func() error) { out = append(out, change{[]string{line}, do}) }

	var cur *model.Tree
	if t == nil {
		cur = &model.Tree{Name: T, Allow: slices.Clone(ct.Allow)}
		add(fmt.Sprintf("create tree %s in format %d, used by %s", T, ct.Format, strings.Join(ct.Allow, ",")), func() error {
			return e.CreateTree(T, CreateOptions{Format: ct.Format, Allow: ct.Allow})
		})
	} else {
		cur = t.Tree
		if t.Format != ct.Format {
			e.note(2, "tree %s is in format %s, the configuration says %s: apply keeps formats, update moves them",
				T, format.Name(t.Format), format.Name(ct.Format))
		}
	}

	// The records the tree will hold.
	next := cloneTree(cur)
	next.Allow = slices.Clone(ct.Allow)
	var recLines []string
	if t != nil && !slices.Equal(cur.Allow, ct.Allow) {
		recLines = append(recLines, fmt.Sprintf("set the users of tree %s: %s (were %s)", T, strings.Join(ct.Allow, ","), strings.Join(cur.Allow, ",")))
	}
	want := map[string]ConfigService{}
	for _, s := range ct.Services {
		want[s.Name] = s
	}
	var disable, enable []string
	for _, rec := range cur.Services {
		if _, ok := want[rec.Name]; rec.Enabled && !ok {
			disable = append(disable, rec.Name)
			r := rec
			r.Enabled = false
			next.Put(r)
		}
	}
	for _, s := range ct.Services {
		rec := cur.Service(s.Name)
		def, err := e.definition(s.Name)
		if err != nil {
			if rec != nil && rec.Enabled {
				// Its record is all there is: the tree keeps it.
				e.warn("service %s of tree %s: %v: the tree keeps its record", s.Name, T, err)
				continue
			}
			return nil, fmt.Errorf("tree %s: %w", T, err)
		}
		def.Enabled = true
		switch {
		case rec == nil || !rec.Enabled:
			enable = append(enable, s.Name)
		case rec.Digest != def.Digest || rec.Source != def.Source:
			what := strings.Join(changedKeys(*rec, def), ", ")
			if what == "" {
				what = "comments or layout"
			}
			recLines = append(recLines, fmt.Sprintf("take the new definition of service %s of tree %s (changed: %s)", s.Name, T, what))
		default:
			continue
		}
		next.Put(def)
	}
	if len(disable) > 0 {
		recLines = append(recLines, fmt.Sprintf("disable services of tree %s: %s", T, join(disable)))
	}
	if len(enable) > 0 {
		recLines = append(recLines, fmt.Sprintf("enable services of tree %s: %s", T, join(enable)))
	}
	// The configuration lists every enabled service: one that depends on a
	// service it leaves out is refused rather than completed, so that
	// what apply does is exactly what the document says.
	for _, rec := range next.Services {
		if !rec.Enabled {
			continue
		}
		for _, d := range append(slices.Clone(rec.Depends), rec.Contents...) {
			if _, ok := want[d]; !ok {
				return nil, bad("tree %s: service %s needs %s, which the configuration does not list: add it to the services of tree %s", T, rec.Name, d, T)
			}
		}
	}
	x, err := compile.Index(next)
	if err != nil {
		return nil, bad("tree %s: %v", T, err)
	}
	next.Index = x
	for _, s := range ct.Services {
		entry := x.Entry(s.Name)
		if entry == nil {
			continue // kept record without a definition: checked above
		}
		if !s.Up {
			continue
		}
		for _, d := range entry.Deps {
			if !want[d].Up {
				return nil, bad("tree %s: service %s is up, but %s, which it needs, is not", T, s.Name, d)
			}
		}
		if s.Unmonitored && entry.Type != model.Longrun && entry.Type != model.Classic {
			return nil, bad("tree %s: service %s is a %s: only longruns and classics are supervised, and can be unmonitored", T, s.Name, entry.Type)
		}
	}

	// Live state now.
	up, unmon := map[string]bool{}, map[string]bool{}
	for _, s := range ts.Live.Services {
		up[s.Name], unmon[s.Name] = s.Up, s.Unmonitored
	}
	var stop, start, monitor, unmonitor []string
	// Listed as they are stopped: in reverse start order.
	for i := len(ts.Live.Services) - 1; i >= 0; i-- {
		s := ts.Live.Services[i]
		w, ok := want[s.Name]
		if s.Up && (!ok || !w.Up || !ct.Initialized) {
			stop = append(stop, s.Name)
		}
	}
	for _, xe := range x.Entries {
		w, ok := want[xe.Name]
		if !ok || !w.Up {
			continue
		}
		switch {
		case !up[xe.Name]:
			start = append(start, xe.Name)
			if w.Unmonitored {
				unmonitor = append(unmonitor, xe.Name)
			}
		case unmon[xe.Name] && !w.Unmonitored:
			monitor = append(monitor, xe.Name)
		case !unmon[xe.Name] && w.Unmonitored:
			unmonitor = append(unmonitor, xe.Name)
		}
	}

	if len(stop) > 0 {
		add(fmt.Sprintf("stop services of tree %s: %s", T, join(stop)), func() error { return e.Stop(T, stop) })
	}
	if ts.Live.Initialized && !ct.Initialized {
		add("uninit tree "+T, func() error { return e.Uninit(T) })
	}
	if len(recLines) > 0 {
		out = append(out, change{recLines, func() error {
			old, err := e.Load(T)
			if err != nil {
				return err
			}
			n := cloneTree(next)
			_, err = e.replace(old, n, old.Format)
			return err
		}})
	}
	if ct.Initialized && !ts.Live.Initialized {
		add("init tree "+T, func() error { return e.Init(T) })
	}
	if len(start) > 0 {
		add(fmt.Sprintf("start services of tree %s: %s", T, join(start)), func() error { return e.Start(T, start) })
	}
	if len(monitor) > 0 {
		add(fmt.Sprintf("resume supervision of services of tree %s: %s", T, join(monitor)), func() error { return e.Monitor(T, monitor) })
	}
	if len(unmonitor) > 0 {
		add(fmt.Sprintf("pause supervision of services of tree %s: %s", T, join(unmonitor)), func() error { return e.Unmonitor(T, unmonitor) })
	}
	return out, nil
}

// stateChange sets the start order and the current tree, once every tree
// exists.
func stateChange(e *Engine, c *Config, st tree.State) *change {
	var order []string
	current := ""
	for _, t := range c.Trees {
		if t.Enabled {
			order = append(order, t.Name)
		}
		if t.Current {
			current = t.Name
		}
	}
	// Trees destroyed leave the order on their own.
	wanted := map[string]bool{}
	for _, t := range c.Trees {
		wanted[t.Name] = true
	}
	was := slices.DeleteFunc(slices.Clone(st.Order), func(n string) bool { return !wanted[n] })
	wasCurrent := st.Current
	if !wanted[wasCurrent] {
		wasCurrent = ""
	}
	var lines []string
	for _, n := range order {
		if !slices.Contains(was, n) {
			lines = append(lines, "enable tree "+n)
		}
	}
	for _, n := range was {
		if !slices.Contains(order, n) {
			lines = append(lines, "disable tree "+n)
		}
	}
	// Enabling appends; the order is said only when that is not enough.
	after := slices.DeleteFunc(slices.Clone(was), func(n string) bool { return !slices.Contains(order, n) })
	for _, n := range order {
		if !slices.Contains(after, n) {
			after = append(after, n)
		}
	}
	if !slices.Equal(after, order) {
		lines = append(lines, "set the start order of trees: "+join(order))
	}
	if current != wasCurrent {
		if current == "" {
			lines = append(lines, "make no tree current")
		} else {
			lines = append(lines, "make tree "+current+" current")
		}
	}
	if len(lines) == 0 {
		return nil
	}
	return &change{lines, func() error {
		st, err := e.Store.ReadState()
		if err != nil {
			return err
		}
		st.Order, st.Current = order, current
		return e.Store.WriteState(st)
	}}
}
