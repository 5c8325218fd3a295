package tree

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"strings"

	"github.com/treeshift/treeshift/internal/durable"
	"github.com/treeshift/treeshift/internal/model"
)

// The journal holds the entries of transitions under way, so that the next
// run can finish or roll back one that was interrupted. What an entry says
// is the transition's business; the store keeps the bytes.

func (s *Store) journalDir() string { return path.Join(s.Dir, JournalName) }

// JournalPath is where entry name lives.
func (s *Store) JournalPath(name string) string { return path.Join(s.journalDir(), name) }

// maxJournal bounds a journal entry read back: it holds one line per tree
// of a run, each with the tree's saved state (about 500 bytes a service).
const maxJournal = 512 << 20

// WriteJournal records entry name atomically and durably; write produces
// its content, piece by piece.
func (s *Store) WriteJournal(name string, write func(w io.Writer) error) error {
	if err := durable.MkdirAll(s.FS, s.journalDir(), 0o700, true); err != nil {
		return err
	}
	if err := s.FS.WriteStream(s.JournalPath(name), 0o600, write); err != nil {
		return err
	}
	return s.FS.SyncDir(s.journalDir())
}

// CreateJournal records the new entry name, which must not exist, with
// what write writes, unsynced: the caller syncs the store before anything
// the entry describes is relied on. If write fails, no entry is left.
func (s *Store) CreateJournal(name string, write func(w io.Writer) error) error {
	had, err := durable.Exists(s.FS, s.journalDir())
	if err != nil {
		return err
	}
	if err := durable.MkdirAll(s.FS, s.journalDir(), 0o700, false); err != nil {
		return err
	}
	err = s.FS.CreateStream(s.JournalPath(name), 0o600, write)
	if err != nil && !had {
		// A run that gives up its journal (nothing to do, a tree refused
		// or unreadable) leaves the system directory as it found it.
		s.FS.Remove(s.journalDir())
	}
	return err
}

// RenameJournal renames entry from to to, unsynced: how a run marks its
// entry committed in one atomic step whose data is already durable.
func (s *Store) RenameJournal(from, to string) error {
	return s.FS.Rename(s.JournalPath(from), s.JournalPath(to))
}

// DropJournal removes entry name, unsynced (see RemoveJournal).
func (s *Store) DropJournal(name string) error { return s.FS.RemoveAll(s.JournalPath(name)) }

// SyncJournals makes the journal directory's entries durable, if it
// exists: a command that changes a tree calls it first, so that no entry
// a run removed unsynced can come back after the change.
func (s *Store) SyncJournals() error {
	if ok, err := durable.Exists(s.FS, s.journalDir()); err != nil || !ok {
		return err
	}
	return s.FS.SyncDir(s.journalDir())
}

// ReadJournal returns entry name.
func (s *Store) ReadJournal(name string) ([]byte, error) {
	b, err := s.FS.ReadFile(s.JournalPath(name), maxJournal)
	if err != nil {
		return nil, fmt.Errorf("read %s", durable.Describe(err))
	}
	return b, nil
}

// Journals lists the open entries, sorted.
func (s *Store) Journals() ([]string, error) {
	entries, err := s.FS.ReadDir(s.journalDir())
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var names []string
	for _, e := range entries {
		if !strings.HasPrefix(e.Name(), ".") { // a writer's temporary file
			names = append(names, e.Name())
		}
	}
	return names, nil
}

// RemoveJournal closes entry name, durably: an entry that came back after a
// power loss would redo a finished transition over whatever changed since
// (a tree destroyed, a tree made not live).
func (s *Store) RemoveJournal(name string) error {
	return durable.RemoveAllSynced(s.FS, s.JournalPath(name))
}

// A live tree's live directory is recorded in the system directory when it
// is initialized: the generations a live link uses must never be collected,
// and a command run with another -l cannot see that link.

func (s *Store) liveRecordPath(name string) string { return path.Join(s.Dir, LiveName, name) }

// LiveRecord returns the live directory (inside the root) tree name was
// initialized in, or "" if none is recorded.
func (s *Store) LiveRecord(name string) (string, error) {
	if err := model.CheckName(name); err != nil {
		return "", err
	}
	p := s.liveRecordPath(name)
	b, err := s.FS.ReadFile(p, 4096)
	if errors.Is(err, fs.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("read %s", durable.Describe(err))
	}
	v := strings.TrimSuffix(string(b), "\n")
	if !path.IsAbs(v) || path.Clean(v) != v || strings.Contains(v, "\n") {
		return "", fmt.Errorf("%s: %q is not an absolute live directory", s.Host(p), v)
	}
	return v, nil
}

// SetLiveRecord records that tree name is live in live.
func (s *Store) SetLiveRecord(name, live string) error {
	if err := durable.MkdirAll(s.FS, path.Dir(s.liveRecordPath(name)), 0o755, true); err != nil {
		return err
	}
	return durable.WriteFileSynced(s.FS, s.liveRecordPath(name), []byte(live+"\n"), 0o644)
}

// ClearLiveRecord forgets tree name's live directory.
func (s *Store) ClearLiveRecord(name string) error {
	if ok, err := durable.Exists(s.FS, s.liveRecordPath(name)); err != nil || !ok {
		return err
	}
	return durable.RemoveAllSynced(s.FS, s.liveRecordPath(name))
}
