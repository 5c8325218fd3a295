package migrate_test

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// An outside writer that leaves a record's size and modification time as
// they were (a tool that restores times, or two writes within the
// filesystem's timestamp granularity) is invisible to the watch's fallback,
// which compares sizes and times: only inotify sees it. The transition must
// still be rolled back, naming the record, and the write kept. With the
// inotify watch disabled this test fails: the update succeeds and the
// write is lost with the old generation.
func TestOutsideWriterSeenOnlyByInotify(t *testing.T) {
	bin := faultBinary(t)
	staged := stageRoot(t)

	// Pause once boot's live link is on its private copy: the tree has
	// been read and converted, and is about to be committed.
	out, _ := run(t, bin, []string{"TREESHIFT_TRACE_STEPS=1"}, "--root", copyRoot(t, staged), "update", "boot")
	m := regexp.MustCompile(`(?m)^step (\d+): symlink \S+/run/treeshift/tree/0/boot/compiled$`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no live link step traced:\n%s", out)
	}
	root := copyRoot(t, staged)
	pause := filepath.Join(t.TempDir(), "pause")
	cmd := exec.Command(bin, "--root", root, "update", "boot")
	cmd.Env = append(os.Environ(), "TREESHIFT_PAUSE_AFTER="+m[1], "TREESHIFT_PAUSE_FILE="+pause)
	var buf bytes.Buffer
	cmd.Stdout, cmd.Stderr = &buf, &buf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if _, err := os.Stat(pause + ".paused"); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("update never paused:\n%s", buf.String())
		}
	}

	// The writer edits a record in place, same length, and puts its time
	// back.
	record := filepath.Join(root, "var/lib/treeshift/tree/boot/resolve/syslogd")
	fi, err := os.Stat(record)
	if err != nil {
		t.Fatal(err)
	}
	old, _ := os.ReadFile(record)
	edited := bytes.Replace(old, []byte("description=system logger"), []byte("description=system LOGGER"), 1)
	if bytes.Equal(edited, old) {
		t.Fatalf("record has no description to edit:\n%s", old)
	}
	if err := os.WriteFile(record, edited, fi.Mode()); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(record, fi.ModTime(), fi.ModTime()); err != nil {
		t.Fatal(err)
	}
	if now, _ := os.Stat(record); now.Size() != fi.Size() || !now.ModTime().Equal(fi.ModTime()) {
		t.Fatalf("the write changed the record's size or time: %v %v, was %v %v", now.Size(), now.ModTime(), fi.Size(), fi.ModTime())
	}
	os.WriteFile(pause+".resume", nil, 0o644)

	err = cmd.Wait()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 111 {
		t.Fatalf("update with a write only inotify sees: %v (want exit 111: the watch missed it)\n%s", err, buf.String())
	}
	if !regexp.MustCompile(`treeshift: fatal: \S+/tree/\.boot\.\d+/resolve/syslogd was changed by another process during the transition of tree boot: rolled back`).MatchString(buf.String()) {
		t.Errorf("message does not name the record:\n%s", buf.String())
	}
	checkLinks(t, root, "after the rolled back transition")
	if got, _ := os.ReadFile(record); !bytes.Equal(got, edited) {
		t.Errorf("the outside write was lost: the record holds\n%s", got)
	}
	out, _ = run(t, bin, nil, "--root", root, "tree", "list")
	if !regexp.MustCompile(`(?m)^boot\s+1\s`).MatchString(out) || strings.Contains(out, "interrupted") {
		t.Errorf("boot is not back in format 1, journal closed:\n%s", out)
	}
}
