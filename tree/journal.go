package tree

import (
	"errors"
	"fmt"
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

// WriteJournal records tree name's entry atomically and durably.
func (s *Store) WriteJournal(name string, data []byte) error {
	if err := durable.MkdirAll(s.journalDir(), 0o700); err != nil {
		return err
	}
	return durable.WriteFile(s.JournalPath(name), data, 0o600)
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

// RemoveJournal closes tree name's entry.
func (s *Store) RemoveJournal(name string) error {
	return durable.RemoveAll(s.JournalPath(name))
}
