package cli

import (
	"os"
	"regexp"
	"testing"
)

// The committed man page is what the command line generates: `make man`
// regenerates it.
func TestManPageIsCurrent(t *testing.T) {
	want, err := ManPage()
	if err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile("../../../docs/treeshift.1")
	if err != nil {
		t.Fatal(err)
	}
	// The generator dates the page with the day it runs.
	date := regexp.MustCompile(`(?m)^(\.TH TREESHIFT 1) "[0-9-]+"`)
	if date.ReplaceAllString(string(got), "$1") != date.ReplaceAllString(want, "$1") {
		t.Fatal("docs/treeshift.1 is out of date: run make man")
	}
}
