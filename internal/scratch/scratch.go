// Package scratch makes the temporary directories of treeshift's tests and
// tools so that none outlives a run, however the run ends. A deferred
// removal does not run when a process is killed (SIGKILL, a test binary's
// timeout panic): each directory is named after the process that made it,
// and the next one made with the same prefix removes those whose process
// is gone.
//
// Limits: a directory is swept only by a later Dir call with its prefix, on
// the same host and temporary directory; a process id reused since is
// taken for the living maker, and its directory left for a later sweep.
package scratch

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// Dir makes a new directory PREFIX-PID-RANDOM in the temporary directory,
// after removing the PREFIX-PID-* directories of processes that no longer
// exist.
func Dir(prefix string) (string, error) { return DirIn(os.TempDir(), prefix) }

// DirIn is Dir in parent.
func DirIn(parent, prefix string) (string, error) {
	sweep(parent, prefix)
	return os.MkdirTemp(parent, prefix+"-"+strconv.Itoa(os.Getpid())+"-")
}

func sweep(tmp, prefix string) {
	entries, err := os.ReadDir(tmp)
	if err != nil {
		return
	}
	for _, e := range entries {
		rest, ok := strings.CutPrefix(e.Name(), prefix+"-")
		if !ok || !e.IsDir() {
			continue
		}
		pid, _, ok := strings.Cut(rest, "-")
		n, err := strconv.Atoi(pid)
		if !ok || err != nil || n <= 0 || n == os.Getpid() || alive(n) {
			continue
		}
		// Only this user's own: in a shared temporary directory anyone
		// may make a directory of that name.
		p := filepath.Join(tmp, e.Name())
		var st syscall.Stat_t
		if syscall.Lstat(p, &st) != nil || int(st.Uid) != os.Geteuid() {
			continue
		}
		os.RemoveAll(p)
	}
}

// alive reports whether process pid exists (EPERM: it does, another
// user's).
func alive(pid int) bool {
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}
