package migrate

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"

	"github.com/treeshift/treeshift/format"
	"github.com/treeshift/treeshift/internal/model"
)

// ConfigSchema is the version of the configuration document.
const ConfigSchema = 1

// MaxConfig bounds a configuration document read: thousands of trees of
// thousands of services fit.
const MaxConfig = 64 << 20

// Config is an owner's whole configuration, as `treeshift reverse --json`
// prints it and `treeshift apply` reconciles a system with it: the trees,
// their flags and start order, the users allowed to use them, their enabled
// services and which of those are up. What it leaves out (the services'
// definitions, the format a tree is in now) is not configuration: the
// definitions are the packages', and formats are moved by update.
type Config struct {
	Schema int         `json:"schema"`
	Owner  OwnerStatus `json:"owner"`
	// Trees lists every tree; the enabled ones start in the order they
	// are listed in.
	Trees []ConfigTree `json:"trees"`
}

// ConfigTree is one tree of a configuration.
type ConfigTree struct {
	Name string `json:"name"`
	// Format is the format a tree created by apply is written in; an
	// existing tree keeps its own (update moves it).
	Format      int      `json:"format"`
	Enabled     bool     `json:"enabled"`
	Current     bool     `json:"current"`
	Allow       []string `json:"allow"`
	Initialized bool     `json:"initialized"`
	// Services lists the enabled services, each with its live state.
	Services []ConfigService `json:"services"`
}

// ConfigService is one enabled service of a configuration.
type ConfigService struct {
	Name string `json:"name"`
	Up   bool   `json:"up"`
	// Unmonitored: up with its supervision paused.
	Unmonitored bool `json:"unmonitored,omitempty"`
}

// ConfigOf is the configuration of a system whose status is st.
func ConfigOf(st *Status) *Config {
	c := &Config{Schema: ConfigSchema, Owner: st.Owner, Trees: []ConfigTree{}}
	for _, t := range st.Trees {
		ct := ConfigTree{Name: t.Name, Format: t.Format, Enabled: t.Enabled, Current: t.Current,
			Allow: nonNil(t.Allow), Initialized: t.Live.Initialized, Services: []ConfigService{}}
		live := map[string]LiveServiceStatus{}
		for _, s := range t.Live.Services {
			live[s.Name] = s
		}
		for _, s := range t.Services {
			if s.Enabled {
				l := live[s.Name]
				ct.Services = append(ct.Services, ConfigService{Name: s.Name, Up: l.Up, Unmonitored: l.Unmonitored})
			}
		}
		c.Trees = append(c.Trees, ct)
	}
	return c
}

// ConfigError is a configuration document that cannot be applied as it
// stands: the command line reports it as a usage error.
type ConfigError struct {
	File string
	Msg  string
}

func (e *ConfigError) Error() string { return e.File + ": " + e.Msg }

// ReadConfig decodes and checks the configuration document in b, read from
// file (named in errors). Unknown fields, bad names, a tree or service
// listed twice, two current trees, a service up in a tree that is not
// initialized, or a format this treeshift cannot write are refused before
// anything is done; what needs the service definitions (dependencies) is
// checked by Apply, also before it changes anything.
func ReadConfig(file string, r io.Reader) (*Config, error) {
	bad := func(format string, args ...any) error {
		return &ConfigError{File: file, Msg: fmt.Sprintf(format, args...)}
	}
	b, err := io.ReadAll(io.LimitReader(r, MaxConfig+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", file, err)
	}
	if len(b) > MaxConfig {
		return nil, bad("over the %d-byte limit of a configuration document", MaxConfig)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var c Config
	if err := dec.Decode(&c); err != nil {
		var se *json.SyntaxError
		if errors.As(err, &se) {
			return nil, bad("not a JSON document: %v (byte %d)", err, se.Offset)
		}
		return nil, bad("not a configuration document: %v", err)
	}
	if dec.More() {
		return nil, bad("more than one JSON document")
	}
	if c.Schema != ConfigSchema {
		return nil, bad("schema %d: this treeshift reads configuration schema %d", c.Schema, ConfigSchema)
	}
	if c.Trees == nil {
		return nil, bad(`no "trees": a configuration lists every tree (an empty list destroys them all)`)
	}
	trees := map[string]bool{}
	current := ""
	for i, t := range c.Trees {
		where := fmt.Sprintf("tree %d", i+1)
		if err := model.CheckName(t.Name); err != nil {
			return nil, bad("%s: bad tree name: %v", where, err)
		}
		where = "tree " + t.Name
		if trees[t.Name] {
			return nil, bad("%s is listed twice", where)
		}
		trees[t.Name] = true
		if _, err := format.Get(t.Format); err != nil {
			return nil, bad("%s: %v", where, err)
		}
		if t.Current {
			if current != "" {
				return nil, bad("trees %s and %s are both current: at most one is", current, t.Name)
			}
			current = t.Name
		}
		if len(t.Allow) == 0 {
			return nil, bad("%s: no allowed users: list at least the owner", where)
		}
		for _, u := range t.Allow {
			if err := model.CheckName(u); err != nil {
				return nil, bad("%s: bad user name: %v", where, err)
			}
		}
		if !slices.IsSorted(t.Allow) || len(slices.Compact(slices.Clone(t.Allow))) != len(t.Allow) {
			return nil, bad("%s: allowed users %v: list them sorted, each once", where, t.Allow)
		}
		svcs := map[string]bool{}
		for _, s := range t.Services {
			if err := model.CheckName(s.Name); err != nil {
				return nil, bad("%s: bad service name: %v", where, err)
			}
			if svcs[s.Name] {
				return nil, bad("%s: service %s is listed twice", where, s.Name)
			}
			svcs[s.Name] = true
			if (s.Up || s.Unmonitored) && !t.Initialized {
				return nil, bad("%s: service %s is up, but the tree is not initialized", where, s.Name)
			}
			if s.Unmonitored && !s.Up {
				return nil, bad("%s: service %s is unmonitored but not up: only a running service can be", where, s.Name)
			}
		}
	}
	return &c, nil
}
