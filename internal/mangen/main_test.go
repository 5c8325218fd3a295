package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Regenerating a current page on another day leaves the file alone, so a
// build of a clean checkout leaves the checkout clean; a changed page gets
// the date of SOURCE_DATE_EPOCH.
func TestDateOnlyChangeLeavesPageAlone(t *testing.T) {
	p := filepath.Join(t.TempDir(), "treeshift.1")
	t.Setenv("SOURCE_DATE_EPOCH", "1700000000") // 2023-11-14
	if err := run(p); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(p)
	if !strings.Contains(string(b), `.TH TREESHIFT 1 "2023-11-14"`) {
		t.Fatalf("page not dated from SOURCE_DATE_EPOCH: %.80q", b)
	}
	old := time.Now().Add(-time.Hour)
	os.Chtimes(p, old, old)
	t.Setenv("SOURCE_DATE_EPOCH", "1800000000") // another day
	if err := run(p); err != nil {
		t.Fatal(err)
	}
	b2, _ := os.ReadFile(p)
	fi, _ := os.Stat(p)
	if string(b2) != string(b) || !fi.ModTime().Equal(old) {
		t.Fatal("a page whose text did not change was rewritten")
	}
	// A changed page is rewritten, with the new date.
	os.WriteFile(p, []byte(strings.Replace(string(b), "NAME", "NAMES", 1)), 0o644)
	if err := run(p); err != nil {
		t.Fatal(err)
	}
	b3, _ := os.ReadFile(p)
	if !strings.Contains(string(b3), `.TH TREESHIFT 1 "2027-01-15"`) || strings.Contains(string(b3), "NAMES") {
		t.Fatalf("changed page not regenerated: %.80q", b3)
	}
}
