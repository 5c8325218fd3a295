package tree

import (
	"errors"
	"fmt"
	"io/fs"
	"path"
	"strconv"

	"github.com/treeshift/treeshift/internal/durable"
)

// A tagged copy is a read-only copy of the system directory's trees (their
// current generations) and state, kept under SYS/tagged/vN while a cluster
// upgrade runs, so that a member can be put back exactly as it was. It is a
// store of its own, inside the system directory.

// TagDir is where the tagged copy made at format version v lives.
func (s *Store) TagDir(v int) string {
	return path.Join(s.Dir, TaggedName, "v"+strconv.Itoa(v))
}

// Tagged opens the tagged copy of version v as a store of its own.
func (s *Store) Tagged(v int) *Store { return Open(s.FS, s.TagDir(v)) }

// Tag copies the state file and the current generation of every tree into
// TagDir(v), replacing an older copy, and makes it durable. Generation
// directories are never modified, so files are hard links where possible.
func (s *Store) Tag(v int) error {
	dst := s.TagDir(v)
	tmp := dst + ".new"
	if err := s.FS.RemoveAll(tmp); err != nil {
		return err
	}
	if err := durable.MkdirAll(s.FS, path.Join(tmp, TreesName), 0o755, false); err != nil {
		return err
	}
	names, err := s.Names()
	if err != nil {
		return err
	}
	for _, n := range names {
		gen, err := s.CurrentGen(n)
		if err != nil {
			return err
		}
		src := s.GenDir(n, gen)
		if err := s.FS.CloneTree(src, path.Join(tmp, TreesName, path.Base(src))); err != nil {
			return err
		}
		if err := s.FS.Symlink(path.Base(src), path.Join(tmp, TreesName, n)); err != nil {
			return fmt.Errorf("tag %s: %w", n, err)
		}
	}
	b, err := s.FS.ReadFile(s.StatePath(), maxState)
	if err == nil {
		if err := s.FS.Create(path.Join(tmp, StateName), b, 0o644); err != nil {
			return err
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("read %s", durable.Describe(err))
	}
	if err := s.FS.SyncFS(tmp); err != nil {
		return err
	}
	if err := s.FS.RemoveAll(dst); err != nil {
		return err
	}
	if err := s.FS.Rename(tmp, dst); err != nil {
		return err
	}
	return s.FS.SyncDir(path.Dir(dst))
}

// Untag removes the tagged copy of version v, durably.
func (s *Store) Untag(v int) error { return durable.RemoveAllSynced(s.FS, s.TagDir(v)) }

// HasTag reports whether a tagged copy of version v exists.
func (s *Store) HasTag(v int) bool {
	fi, err := s.FS.Lstat(s.TagDir(v))
	return err == nil && fi.IsDir()
}
