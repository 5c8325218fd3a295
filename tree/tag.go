package tree

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"

	"github.com/treeshift/treeshift/internal/durable"
)

// A tagged copy is a read-only copy of the system directory's trees (their
// current generations) and state, kept beside it under a visible name while a
// cluster upgrade runs, so that a member can be put back exactly as it was.

// TagDir is where the tagged copy made at format version v lives.
func (s *Store) TagDir(v int) string { return s.Dir + ".tagged-v" + strconv.Itoa(v) }

// Tagged opens the tagged copy of version v as a store of its own.
func (s *Store) Tagged(v int) *Store { return Open(s.TagDir(v)) }

// Tag copies the state file and the current generation of every tree into
// TagDir(v), replacing an older copy, and makes it durable. Generation
// directories are never modified, so files are hard links where possible.
func (s *Store) Tag(v int) error {
	dst := s.TagDir(v)
	tmp := dst + ".new"
	os.RemoveAll(tmp)
	if err := os.MkdirAll(filepath.Join(tmp, treesName), 0o755); err != nil {
		return fmt.Errorf("create %s: %w", tmp, unwrap(err))
	}
	names, err := s.Names()
	if err != nil {
		return err
	}
	for _, n := range names {
		gen, err := s.current(n)
		if err != nil {
			return err
		}
		src := s.GenDir(n, gen)
		to := filepath.Join(tmp, treesName, filepath.Base(src))
		if err := durable.CloneTree(src, to); err != nil {
			return err
		}
		if err := os.Symlink(filepath.Base(src), filepath.Join(tmp, treesName, n)); err != nil {
			return fmt.Errorf("tag %s: %w", n, err)
		}
	}
	if b, err := os.ReadFile(s.StatePath()); err == nil {
		if err := os.WriteFile(filepath.Join(tmp, stateName), b, 0o644); err != nil {
			return err
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("read %s: %w", s.StatePath(), unwrap(err))
	}
	if err := durable.SyncFS(tmp); err != nil {
		return err
	}
	os.RemoveAll(dst)
	return durable.Replace(tmp, dst)
}

// Untag removes the tagged copy of version v.
func (s *Store) Untag(v int) error { return durable.RemoveAll(s.TagDir(v)) }

// HasTag reports whether a tagged copy of version v exists.
func (s *Store) HasTag(v int) bool {
	fi, err := os.Stat(s.TagDir(v))
	return err == nil && fi.IsDir()
}

// Restore makes tree name's generation in the tagged copy of version v its
// current generation again: the tagged generation is copied in as a new
// generation, synced, and committed. The caller moves a live link to the
// returned tree's database before collecting the generation it replaced.
func (s *Store) Restore(v int, name string) (*Tree, error) {
	tagged := s.Tagged(v)
	gen, err := tagged.current(name)
	if err != nil {
		return nil, fmt.Errorf("tagged copy of tree %s: %w", name, err)
	}
	next, err := s.nextGen(name)
	if err != nil {
		return nil, err
	}
	dir := s.GenDir(name, next)
	if err := durable.CloneTree(tagged.GenDir(name, gen), dir); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	if err := durable.SyncFS(dir); err != nil {
		return nil, err
	}
	t, err := s.LoadGen(name, next)
	if err != nil {
		s.RemoveGen(name, next)
		return nil, err
	}
	if err := s.Commit(t); err != nil {
		return nil, err
	}
	return t, nil
}
