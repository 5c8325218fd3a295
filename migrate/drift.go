package migrate

import (
	"errors"
	"strings"
	"sync"

	"github.com/treeshift/treeshift/internal/frontend"
	"github.com/treeshift/treeshift/internal/model"
	"github.com/treeshift/treeshift/tree"
)

// Drift is an enabled service whose definition file no longer matches the
// record the tree was built from: a package upgrade changed or removed it.
// A transition keeps the record (a tree's state must not change in an
// update); enable and apply take the new definition.
type Drift struct {
	Tree    string `json:"tree"`
	Service string `json:"service"`
	// File is the definition found now, as a path inside the root; empty
	// when none is found.
	File string `json:"file"`
	// Changed names the keys whose values differ ("@version", "[start]");
	// empty when only comments or layout changed. "source" means the
	// definition is now found in another file.
	Changed []string `json:"changed"`
	// Error says why the definition found cannot be used: missing, or not
	// parsed.
	Error string `json:"error,omitempty"`
}

// Drift compares the enabled services of t with their definition files.
func (e *Engine) Drift(t *tree.Tree) []Drift { return e.drift(t, nil) }

// defCache holds what a run needs of the definitions it has read: trees
// share services, and a run over many trees reads each definition once.
// It keeps a definition's digest and source, not the definition: a record
// that matches needs no more, and one that does not is read again to say
// what changed (ten thousand parsed definitions are 10 MB).
type defCache struct {
	mu sync.Mutex
	m  map[string]defResult
}

type defResult struct {
	digest, source string
	err            error
}

// matches reports whether rec's definition is the one it was built from;
// when not, cur is the definition as it is now.
func (c *defCache) matches(e *Engine, rec model.Service) (ok bool, cur model.Service, err error) {
	if c != nil {
		c.mu.Lock()
		r, seen := c.m[rec.Name]
		c.mu.Unlock()
		if seen {
			if r.err != nil {
				return false, cur, r.err
			}
			if r.digest == rec.Digest && r.source == rec.Source {
				return true, cur, nil
			}
		}
	}
	cur, err = e.definition(rec.Name)
	if c != nil {
		c.mu.Lock()
		c.m[rec.Name] = defResult{cur.Digest, cur.Source, err}
		c.mu.Unlock()
	}
	return err == nil && cur.Digest == rec.Digest && cur.Source == rec.Source, cur, err
}

func (e *Engine) drift(t *tree.Tree, defs *defCache) []Drift {
	var out []Drift
	for _, rec := range t.Services {
		if !rec.Enabled {
			continue
		}
		d := Drift{Tree: t.Name, Service: rec.Name, Changed: []string{}}
		same, cur, err := defs.matches(e, rec)
		if err != nil {
			d.Error = err.Error()
			var ue *UsageError
			if !errors.As(err, &ue) {
				d.Error = "definition not readable: " + d.Error
			}
			out = append(out, d)
			continue
		}
		if same {
			continue
		}
		d.File = cur.Source
		d.Changed = append(d.Changed, changedKeys(rec, cur)...)
		out = append(out, d)
	}
	return out
}

// changedKeys names what differs between a record and the record its
// definition makes now.
func changedKeys(rec, cur model.Service) []string {
	keys := frontend.Changed(rec, cur)
	if cur.Source != rec.Source {
		keys = append(keys, "source")
	}
	return keys
}

// String says what changed, for a message.
func (d Drift) String() string {
	switch {
	case d.Error != "":
		return "service " + d.Service + " of tree " + d.Tree + ": its definition cannot be used (" + d.Error + "): the tree keeps its record as it is"
	case len(d.Changed) == 0:
		return "service " + d.Service + " of tree " + d.Tree + ": definition " + d.File + " changed since its record was built (comments or layout only)"
	}
	return "service " + d.Service + " of tree " + d.Tree + ": definition " + d.File + " changed since its record was built (" + strings.Join(d.Changed, ", ") + ")"
}
