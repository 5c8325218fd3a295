package cli

import (
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
)

// The committed man page is what the command line generates: `make man`
// regenerates it.
func TestManPageIsCurrent(t *testing.T) {
	want, err := ManPage("DATE")
	if err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile("../../../docs/treeshift.1")
	if err != nil {
		t.Fatal(err)
	}
	date := regexp.MustCompile(`(?m)^(\.TH TREESHIFT 1) "[0-9-]+"`)
	if date.ReplaceAllString(string(got), `$1 "DATE"`) != want {
		t.Fatal("docs/treeshift.1 is out of date: run make man")
	}
}

// The page renders as a manual page should: its header names the page and
// the manual, and the synopsis of every command is there, as the parser
// accepts it.
func TestManPageRenders(t *testing.T) {
	if _, err := exec.LookPath("groff"); err != nil {
		t.Skip("groff is not installed: apt-get install groff-base")
	}
	page, err := ManPage("2026-01-02")
	if err != nil {
		t.Fatal(err)
	}
	// A long line length keeps each synopsis on one line; no overstriking.
	cmd := exec.Command("groff", "-man", "-Tutf8", "-P-cbou", "-rLL=300n")
	cmd.Stdin = strings.NewReader(page)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("groff: %v\n%s", err, out)
	}
	// groff may set the minus sign and hyphen as their own characters.
	text := strings.NewReplacer("\u2212", "-", "\u2010", "-").Replace(string(out))
	lines := strings.Split(text, "\n")
	if !regexp.MustCompile(`^TREESHIFT\(1\) +User Commands +TREESHIFT\(1\)$`).MatchString(lines[0]) {
		t.Errorf("header: %q", lines[0])
	}
	if !regexp.MustCompile(`(?m)^treeshift 0\.\d+\.\d+ +2026-01-02 +TREESHIFT\(1\)$`).MatchString(text) {
		t.Errorf("no footer with version and date:\n%s", lines[len(lines)-3:])
	}
	if !strings.Contains(text, "\nNAME\n       treeshift - move trees and live service databases between on-disk formats without stopping services\n") {
		t.Errorf("NAME section:\n%s", text[:min(len(text), 400)])
	}
	var c CLI
	parser, err := newParser(&c, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, leaf := range leaves(parser.Model.Node) {
		want := "       " + synopsis(leaf, false) + "\n"
		if strings.Count(text, want) != 2 { // in SYNOPSIS and under COMMANDS
			t.Errorf("synopsis %q is not in the page twice", strings.TrimSpace(want))
		}
		if strings.Contains(want, "[argument") {
			t.Errorf("synopsis %q is not the command's", want)
		}
		n++
	}
	if n < 30 {
		t.Errorf("only %d commands in the page", n)
	}
	// EXIT STATUS says what a failure leaves, not that nothing changed.
	if !strings.Contains(text, "Each tree named in a fatal message is as it was before the command") {
		t.Error("EXIT STATUS does not say what 111 guarantees")
	}
}
