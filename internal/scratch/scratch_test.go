package scratch

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
)

// A directory whose maker is gone is removed by the next Dir of its
// prefix; one whose maker lives, and other names, are left.
func TestDirSweepsTheDeadOnly(t *testing.T) {
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp)
	dead := exec.Command("true")
	if err := dead.Run(); err != nil {
		t.Fatal(err)
	}
	gone := filepath.Join(tmp, "p-"+strconv.Itoa(dead.Process.Pid)+"-1")
	living := filepath.Join(tmp, "p-"+strconv.Itoa(os.Getppid())+"-1")
	other := filepath.Join(tmp, "q-"+strconv.Itoa(dead.Process.Pid)+"-1")
	theirs := filepath.Join(tmp, "p-"+strconv.Itoa(dead.Process.Pid)+"-2")
	for _, d := range []string{gone, living, other, theirs} {
		if err := os.MkdirAll(filepath.Join(d, "x"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	// Another user's directory of that name is not this sweep's to remove
	// (as root only: others cannot give a file away).
	if os.Geteuid() == 0 {
		if err := os.Chown(theirs, 65534, 65534); err != nil {
			t.Fatal(err)
		}
	} else {
		os.RemoveAll(theirs)
		theirs = other
	}
	d, err := Dir("p")
	if err != nil {
		t.Fatal(err)
	}
	if filepath.Dir(d) != tmp {
		t.Fatalf("made %s, not in %s", d, tmp)
	}
	if _, err := os.Stat(gone); !os.IsNotExist(err) {
		t.Errorf("%s, whose maker is gone, is still there", gone)
	}
	for _, keep := range []string{living, other, theirs, d} {
		if _, err := os.Stat(keep); err != nil {
			t.Errorf("%s: %v", keep, err)
		}
	}
}
