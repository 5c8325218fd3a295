package tree

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/treeshift/treeshift/internal/durable"
)

// The journal holds one entry per tree whose transition is under way, so
// that the next run can finish or roll back one that was interrupted. What
// an entry says is the transition's business; the store keeps the bytes.

func (s *Store) journalDir() string { return filepath.Join(s.Dir, "journal") }

// JournalPath is where tree name's journal entry lives.
func (s *Store) JournalPath(name string) string { return filepath.Join(s.journalDir(), name) }

// WriteJournal records tree name's entry atomically and durably; write
// produces its content, piece by piece.
func (s *Store) WriteJournal(name string, write func(w io.Writer) error) error {
	if err := durable.MkdirAll(s.journalDir(), 0o700); err != nil {
		return err
	}
	return durable.WriteStream(s.JournalPath(name), 0o600, write)
}

// ReadJournal returns tree name's entry.
func (s *Store) ReadJournal(name string) ([]byte, error) {
	b, err := os.ReadFile(s.JournalPath(name))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", s.JournalPath(name), unwrap(err))
	}
	return b, nil
}

// Journals lists the trees with an open entry, sorted.
func (s *Store) Journals() ([]string, error) {
	entries, err := os.ReadDir(s.journalDir())
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", s.journalDir(), unwrap(err))
	}
	var names []string
	for _, e := range entries {
		if !strings.HasPrefix(e.Name(), ".") { // a writer's temporary file
			names = append(names, e.Name())
		}
	}
	return names, nil
}

// RemoveJournal closes tree name's entry, durably: an entry that came back
// after a power loss would redo a finished transition over whatever changed
// since (a tree destroyed, a tree made not live).
func (s *Store) RemoveJournal(name string) error {
	return durable.RemoveAll(s.JournalPath(name))
}

// A live tree's live directory is recorded in the system directory when it
// is initialized: the generations a live link uses must never be collected,
// and a command run with another -l cannot see that link.

func (s *Store) liveRecordPath(name string) string { return filepath.Join(s.Dir, "live", name) }

// LiveRecord returns the live directory (inside the root) tree name was
// initialized in, or "" if none is recorded.
func (s *Store) LiveRecord(name string) (string, error) {
	b, err := os.ReadFile(s.liveRecordPath(name))
	if errors.Is(err, fs.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("read %s: %w", s.liveRecordPath(name), unwrap(err))
	}
	v := strings.TrimSuffix(string(b), "\n")
	if !filepath.IsAbs(v) || strings.Contains(v, "\n") {
		return "", fmt.Errorf("%s: %q is not an absolute live directory", s.liveRecordPath(name), v)
	}
	return v, nil
}

// SetLiveRecord records that tree name is live in live.
func (s *Store) SetLiveRecord(name, live string) error {
	if err := durable.MkdirAll(filepath.Dir(s.liveRecordPath(name)), 0o755); err != nil {
		return err
	}
	return durable.WriteFile(s.liveRecordPath(name), []byte(live+"\n"), 0o644)
}

// ClearLiveRecord forgets tree name's live directory.
func (s *Store) ClearLiveRecord(name string) error {
	if _, err := os.Lstat(s.liveRecordPath(name)); errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	return durable.RemoveAll(s.liveRecordPath(name))
}
