package migrate

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"slices"
	"strings"
	"syscall"

	"github.com/treeshift/treeshift/internal/compile"
	"github.com/treeshift/treeshift/internal/frontend"
	"github.com/treeshift/treeshift/internal/fserr"
	"github.com/treeshift/treeshift/internal/model"
	"github.com/treeshift/treeshift/livedb"
	"github.com/treeshift/treeshift/tree"
)

// maxDefinition bounds a service definition file.
const maxDefinition = 1 << 20

// definitions opens the root for reading service definitions. Links are
// followed within the root (a package may install a definition as a link),
// never out of it: a staged root is no way to read the host's files.
func (e *Engine) definitions() (*os.Root, error) {
	e.defsOnce.Do(func() { e.defs, e.defsErr = os.OpenRoot(e.Owner.Root) })
	return e.defs, e.defsErr
}

// FindDefinition returns the path inside the root of service name's
// definition, the first found in the owner's service directories.
func (e *Engine) FindDefinition(name string) (string, error) {
	rt, err := e.definitions()
	if err != nil {
		return "", err
	}
	dirs := e.Owner.ServiceDirs()
	for _, d := range dirs {
		p := path.Join(d, name)
		fi, err := rt.Stat(strings.TrimPrefix(p, "/"))
		if err == nil && fi.Mode().IsRegular() {
			return p, nil
		}
		if err == nil {
			return "", usage("%s: service definition is not a regular file", p)
		}
		if !errors.Is(err, fs.ErrNotExist) {
			return "", fmt.Errorf("%s: %w", p, fserr.Cause(err))
		}
	}
	return "", usage("service %s: no definition in %s", name, join(dirs))
}

// readDefinition reads the definition at p (inside the root), refusing one
// over maxDefinition.
func (e *Engine) readDefinition(p string) ([]byte, error) {
	rt, err := e.definitions()
	if err != nil {
		return nil, err
	}
	// Non-blocking: a pipe swapped in since it was found must not hang
	// the command; it is refused as not a regular file.
	f, err := rt.OpenFile(strings.TrimPrefix(p, "/"), os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", p, fserr.Cause(err))
	}
	defer f.Close()
	if fi, err := f.Stat(); err != nil {
		return nil, err
	} else if !fi.Mode().IsRegular() {
		return nil, usage("%s: service definition is not a regular file", p)
	} else if fi.Size() > maxDefinition {
		return nil, usage("%s: %d bytes, over the %d-byte limit of a service definition", p, fi.Size(), maxDefinition)
	}
	b := make([]byte, 0, 4096)
	for {
		if len(b) == cap(b) {
			b = append(b, 0)[:len(b)]
		}
		n, err := f.Read(b[len(b):cap(b)])
		b = b[:len(b)+n]
		if len(b) > maxDefinition {
			return nil, usage("%s: over the %d-byte limit of a service definition", p, maxDefinition)
		}
		if err == io.EOF {
			return b, nil
		}
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", p, fserr.Cause(err))
		}
	}
}

// EnableServices parses the definitions of names and of everything they
// depend on, enables them in tree tname, and recompiles its database, keeping
// the tree's format.
func (e *Engine) EnableServices(tname string, names []string) error {
	old, err := e.Load(tname)
	if err != nil {
		return err
	}
	t := cloneTree(old.Tree)
	queue := slices.Clone(names)
	seen := map[string]bool{}
	for len(queue) > 0 {
		n := queue[0]
		queue = queue[1:]
		if seen[n] {
			continue
		}
		seen[n] = true
		svc, err := e.definition(n)
		if err != nil {
			return err
		}
		svc.Enabled = true
		t.Put(svc)
		queue = append(queue, svc.Depends...)
		queue = append(queue, svc.Contents...)
	}
	if sameRecords(old.Tree, t) {
		e.note(2, "tree %s: %s already enabled, from the same definitions", tname, join(names))
		return nil
	}
	if err := e.recompile(old, t); err != nil {
		return err
	}
	e.note(2, "enabled in tree %s: %s", tname, join(names))
	return nil
}

// definition parses the definition of service name, found in the owner's
// service directories.
func (e *Engine) definition(name string) (model.Service, error) {
	if err := checkName("service", name); err != nil {
		return model.Service{}, err
	}
	p, err := e.FindDefinition(name)
	if err != nil {
		return model.Service{}, err
	}
	data, err := e.readDefinition(p)
	if err != nil {
		return model.Service{}, err
	}
	svc, err := frontend.Parse(name, p, data)
	if err != nil {
		return model.Service{}, &UsageError{Err: err}
	}
	return svc, nil
}

// sameRecords reports whether two trees hold the same records and users:
// a change that makes none writes no generation.
func sameRecords(a, b *model.Tree) bool {
	return slices.Equal(a.Allow, b.Allow) && slices.EqualFunc(a.Services, b.Services, sameService)
}

func sameService(a, b model.Service) bool {
	return a.Name == b.Name && a.Enabled == b.Enabled && a.Source == b.Source && a.Digest == b.Digest &&
		frontend.Changed(a, b) == nil
}

// DisableServices disables names in tree tname. A service still needed by an
// enabled service that stays enabled, or one that is up, is refused.
func (e *Engine) DisableServices(tname string, names []string) error {
	old, err := e.Load(tname)
	if err != nil {
		return err
	}
	t := cloneTree(old.Tree)
	for _, n := range names {
		if err := checkName("service", n); err != nil {
			return err
		}
		if t.Service(n) == nil {
			return usage("service %s is not in tree %s", n, tname)
		}
	}
	for _, svc := range t.Services {
		if !svc.Enabled || slices.Contains(names, svc.Name) {
			continue
		}
		for _, d := range append(slices.Clone(svc.Depends), svc.Contents...) {
			if slices.Contains(names, d) {
				return usage("service %s of tree %s depends on %s: disable %s too", svc.Name, tname, d, svc.Name)
			}
		}
	}
	lt := e.Live.Tree(tname)
	if live, err := lt.Initialized(); err != nil {
		return err
	} else if live {
		up, err := e.up(lt, old)
		if err != nil {
			return err
		}
		var running []string
		for _, n := range names {
			if up[n] {
				running = append(running, n)
			}
		}
		if len(running) > 0 {
			return fmt.Errorf("service(s) %s of tree %s are up: stop them first with: %s",
				join(running), tname, e.Suggest.Cmd(append([]string{"stop", "-t", tname}, running...)...))
		}
	}
	for _, n := range names {
		svc := *t.Service(n)
		svc.Enabled = false
		t.Put(svc)
	}
	if err := e.recompile(old, t); err != nil {
		return err
	}
	e.note(2, "disabled in tree %s: %s", tname, join(names))
	return nil
}

// recompile computes t's index and replaces old with it in old's format.
func (e *Engine) recompile(old *tree.Tree, t *model.Tree) error {
	x, err := compile.Index(t)
	if err != nil {
		return &UsageError{Err: fmt.Errorf("tree %s: %w", t.Name, err)}
	}
	t.Index = x
	_, err = e.replace(old, t, old.Format)
	return err
}

// liveTree loads an initialized tree for start and stop.
func (e *Engine) liveTree(name string) (*tree.Tree, *livedb.Tree, error) {
	t, err := e.Load(name)
	if err != nil {
		return nil, nil, err
	}
	lt := e.Live.Tree(name)
	live, err := lt.Initialized()
	if err != nil {
		return nil, nil, err
	}
	if !live {
		return nil, nil, fmt.Errorf("tree %s is not initialized: run %s", name, e.Suggest.Cmd("init", name))
	}
	return t, lt, nil
}

// Start brings names and everything they depend on up, in start order.
func (e *Engine) Start(tname string, names []string) error {
	t, lt, err := e.liveTree(tname)
	if err != nil {
		return err
	}
	need, err := closure(t, names, func(x model.IndexEntry) []string { return x.Deps })
	if err != nil {
		return err
	}
	up, err := e.up(lt, t)
	if err != nil {
		return err
	}
	for _, x := range t.Index.Entries {
		if need[x.Name] && !up[x.Name] {
			if err := e.Backend.Start(lt, x); err != nil {
				return err
			}
			e.note(2, "started %s of tree %s", x.Name, tname)
		}
	}
	return nil
}

// Stop brings names and everything depending on them down, in reverse start
// order.
func (e *Engine) Stop(tname string, names []string) error {
	t, lt, err := e.liveTree(tname)
	if err != nil {
		return err
	}
	users := map[string][]string{}
	for _, x := range t.Index.Entries {
		for _, d := range x.Deps {
			users[d] = append(users[d], x.Name)
		}
	}
	need, err := closure(t, names, func(x model.IndexEntry) []string { return users[x.Name] })
	if err != nil {
		return err
	}
	up, err := e.up(lt, t)
	if err != nil {
		return err
	}
	for i := len(t.Index.Entries) - 1; i >= 0; i-- {
		x := t.Index.Entries[i]
		if need[x.Name] && up[x.Name] {
			if err := e.Backend.Stop(lt, x); err != nil {
				return err
			}
			e.note(2, "stopped %s of tree %s", x.Name, tname)
		}
	}
	return nil
}

// closure returns names and everything next reaches from them.
func closure(t *tree.Tree, names []string, next func(model.IndexEntry) []string) (map[string]bool, error) {
	need := map[string]bool{}
	queue := slices.Clone(names)
	for len(queue) > 0 {
		n := queue[0]
		queue = queue[1:]
		if need[n] {
			continue
		}
		if err := checkName("service", n); err != nil {
			return nil, err
		}
		x := t.Index.Entry(n)
		if x == nil {
			if t.Service(n) != nil {
				return nil, usage("service %s of tree %s is not enabled", n, t.Name)
			}
			return nil, usage("service %s is not in tree %s", n, t.Name)
		}
		need[n] = true
		queue = append(queue, next(*x)...)
	}
	return need, nil
}

// up reports which services of t are up.
func (e *Engine) up(lt *livedb.Tree, t *tree.Tree) (map[string]bool, error) {
	states, err := e.Backend.States(lt, t.Index)
	if err != nil {
		return nil, err
	}
	up := map[string]bool{}
	for n, st := range states {
		up[n] = st.Up
	}
	return up, nil
}

func upNames(t *tree.Tree, up map[string]bool) []string {
	var out []string
	for _, x := range t.Index.Entries {
		if up[x.Name] {
			out = append(out, x.Name)
		}
	}
	return out
}

func cloneTree(t *model.Tree) *model.Tree {
	c := *t
	c.Services = slices.Clone(t.Services)
	c.Allow = slices.Clone(t.Allow)
	return &c
}
