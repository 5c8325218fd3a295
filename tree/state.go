package tree

import (
	"errors"
	"fmt"
	"io/fs"
	"path"
	"slices"
	"strconv"
	"strings"

	"github.com/treeshift/treeshift/internal/durable"
	"github.com/treeshift/treeshift/internal/model"
)

// State is the owner-wide part of the system directory: what no single tree
// records about itself.
type State struct {
	// Stamp is the format version the owner's trees were last brought to;
	// 0 before the system directory exists.
	Stamp int
	// Current names the current tree, or is empty.
	Current string
	// Order lists the enabled trees in start order.
	Order []string
}

// Enabled reports whether tree name is in the start order, and its 1-based
// position (0 when not enabled).
func (st *State) Enabled(name string) (bool, int) {
	i := slices.Index(st.Order, name)
	return i >= 0, i + 1
}

// Clone returns a copy that shares nothing with st.
func (st State) Clone() State {
	st.Order = slices.Clone(st.Order)
	return st
}

// Equal reports whether two states are the same.
func (st State) Equal(o State) bool {
	return st.Stamp == o.Stamp && st.Current == o.Current && slices.Equal(st.Order, o.Order)
}

const stateHeader = "system=1"

// maxState bounds the state file: a start order of thousands of trees fits.
const maxState = 1 << 20

// StatePath is the path of the system state file.
func (s *Store) StatePath() string { return path.Join(s.Dir, StateName) }

// ReadState reads the system state. A missing file is the state of a system
// directory that does not exist yet: no trees enabled, no current tree.
func (s *Store) ReadState() (State, error) {
	p := s.StatePath()
	b, err := s.FS.ReadFile(p, maxState)
	if errors.Is(err, fs.ErrNotExist) {
		return State{}, nil
	}
	if err != nil {
		return State{}, fmt.Errorf("read %s", durable.Describe(err))
	}
	st, err := parseState(b)
	if err != nil {
		return State{}, fmt.Errorf("%s: %w", s.Host(p), err)
	}
	return st, nil
}

func parseState(b []byte) (State, error) {
	if len(b) == 0 || b[len(b)-1] != '\n' {
		return State{}, errors.New("truncated: empty or no final newline")
	}
	lines := strings.Split(string(b[:len(b)-1]), "\n")
	if k, v, _ := strings.Cut(lines[0], "="); k != "system" {
		return State{}, fmt.Errorf("line 1: expected %s, found %q", stateHeader, lines[0])
	} else if v != "1" {
		return State{}, fmt.Errorf("unknown system state version %q (this treeshift knows 1)", v)
	}
	want := []string{"stamp", "current", "order"}
	if len(lines) != 1+len(want) {
		return State{}, fmt.Errorf("has %d lines, expected %d (truncated or edited)", len(lines), 1+len(want))
	}
	var st State
	for i, k := range want {
		kk, v, ok := strings.Cut(lines[i+1], "=")
		if !ok || kk != k {
			return State{}, fmt.Errorf("line %d: expected %s=..., found %q", i+2, k, lines[i+1])
		}
		switch k {
		case "stamp":
			n, err := strconv.Atoi(v)
			if err != nil || n < 1 {
				return State{}, fmt.Errorf("line %d: stamp %q is not a format version", i+2, v)
			}
			st.Stamp = n
		case "current":
			if v != "" {
				if err := model.CheckName(v); err != nil {
					return State{}, fmt.Errorf("line %d: current tree: %v", i+2, err)
				}
			}
			st.Current = v
		case "order":
			if v != "" {
				st.Order = strings.Split(v, ",")
			}
			for j, n := range st.Order {
				if err := model.CheckName(n); err != nil {
					return State{}, fmt.Errorf("line %d: start order: %v", i+2, err)
				}
				if slices.Contains(st.Order[:j], n) {
					return State{}, fmt.Errorf("line %d: start order names %s twice", i+2, n)
				}
			}
		}
	}
	return st, nil
}

func (st State) encode() []byte {
	return []byte(fmt.Sprintf("%s\nstamp=%d\ncurrent=%s\norder=%s\n", stateHeader, st.Stamp, st.Current, strings.Join(st.Order, ",")))
}

// WriteState replaces the system state atomically and durably, creating the
// system directory if needed.
func (s *Store) WriteState(st State) error {
	if err := durable.MkdirAll(s.FS, s.Dir, 0o755, true); err != nil {
		return err
	}
	return durable.WriteFileSynced(s.FS, s.StatePath(), st.encode(), 0o644)
}

// stagedStateName is a state file written ahead of its use by a run that
// moves the stamp: hidden, beside the state, never read.
const stagedStateName = ".state.new"

func (s *Store) stagedStatePath() string { return path.Join(s.Dir, stagedStateName) }

// StageState writes st beside the state file, unsynced, for CommitState to
// put in place once a sync has made its content durable: the state is then
// replaced in one rename whose data cannot be lost, and without a flush of
// its own.
func (s *Store) StageState(st State) error {
	p := s.stagedStatePath()
	if err := s.FS.RemoveAll(p); err != nil {
		return err
	}
	b := st.encode()
	return s.FS.Create(p, b, 0o644)
}

// CommitState renames the staged state over the state file, unsynced: the
// caller syncs the store before relying on it.
func (s *Store) CommitState() error { return s.FS.Rename(s.stagedStatePath(), s.StatePath()) }

// DropStagedState removes a staged state that will not be used.
func (s *Store) DropStagedState() error { return s.FS.RemoveAll(s.stagedStatePath()) }
