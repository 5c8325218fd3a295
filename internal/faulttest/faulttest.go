// Package faulttest builds, once per test binary, the treeshift command with
// the faultinject build tag, whose durable steps can be traced, paused and
// crashed at (see internal/durable). The released binary has no such knobs.
//
// A test package that uses Binary calls Main from its TestMain, so that the
// build is removed when the tests end, pass or fail.
package faulttest

import (
	"bytes"
	"errors"
	"fmt"
	"github.com/treeshift/treeshift/internal/scratch"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sync"
	"syscall"
	"testing"
)

var (
	once sync.Once
	bin  string
	err  error
)

// Main runs the tests of m (a *testing.M, or something that runs one and
// cleans up after it) and removes the binary built for them.
func Main(m interface{ Run() int }) {
	code := m.Run()
	if bin != "" {
		os.RemoveAll(filepath.Dir(bin))
	}
	os.Exit(code)
}

// Binary returns the path of the fault-injecting treeshift.
func Binary(t testing.TB) string {
	t.Helper()
	once.Do(func() {
		_, self, _, _ := runtime.Caller(0)
		src := filepath.Join(filepath.Dir(self), "../../cmd/treeshift")
		dir, e := scratch.Dir("treeshift-fault")
		if e != nil {
			err = e
			return
		}
		bin = filepath.Join(dir, "treeshift")
		if out, e := exec.Command("go", "build", "-tags", "faultinject", "-o", bin, src).CombinedOutput(); e != nil {
			err = fmt.Errorf("go build -tags faultinject: %v\n%s", e, out)
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	return bin
}

// Run runs bin with args and extra environment, and returns its combined
// output and exit code; a process killed by a signal gives minus the
// signal's number.
func Run(t testing.TB, bin string, env []string, args ...string) (string, int) {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), env...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return out.String(), 0
	case errors.As(err, &ee):
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return out.String(), -int(ws.Signal())
		}
		return out.String(), ee.ExitCode()
	}
	t.Fatal(err)
	return "", 0
}

// Stride is how far apart the durable steps a crash test kills at are:
// every one under make crash (TREESHIFT_CRASH_ALL set), every n-th
// otherwise, so that make test keeps a sample spread over the whole run.
func Stride(n int) int {
	if os.Getenv("TREESHIFT_CRASH_ALL") != "" {
		return 1
	}
	return n
}
