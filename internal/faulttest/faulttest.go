// Package faulttest builds, once per test binary, the treeshift command with
// the faultinject build tag, whose durable steps can be traced, paused and
// crashed at (see internal/durable). The released binary has no such knobs.
package faulttest

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
)

var (
	once sync.Once
	bin  string
	err  error
)

// Binary returns the path of the fault-injecting treeshift.
func Binary(t testing.TB) string {
	t.Helper()
	once.Do(func() {
		_, self, _, _ := runtime.Caller(0)
		src := filepath.Join(filepath.Dir(self), "../../cmd/treeshift")
		dir, e := os.MkdirTemp("", "treeshift-fault")
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
