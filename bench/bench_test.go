// Package bench holds the end-to-end benchmark script, update.sh, and this
// test of its own behaviour.
package bench

import (
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/treeshift/treeshift/internal/faulttest"
)

func TestMain(m *testing.M) { faulttest.Main(m) }

// An interrupted benchmark removes what it staged: its roots can take
// gigabytes.
func TestInterruptedRunCleansUp(t *testing.T) {
	for _, sig := range []syscall.Signal{syscall.SIGINT, syscall.SIGTERM} {
		t.Run(sig.String(), func(t *testing.T) {
			tmp := t.TempDir()
			cmd := exec.Command("sh", "update.sh", "50", "50")
			cmd.Env = append(os.Environ(), "TMPDIR="+tmp, "TREESHIFT="+faulttest.Binary(t))
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			// Interrupt once it has staged something.
			deadline := time.Now().Add(20 * time.Second)
			for {
				if m, _ := filepath.Glob(filepath.Join(tmp, "treeshift-bench.*", "staged", "var")); len(m) > 0 {
					break
				}
				if time.Now().After(deadline) {
					cmd.Process.Kill()
					t.Fatal("the benchmark staged nothing in 20 s")
				}
				time.Sleep(20 * time.Millisecond)
			}
			cmd.Process.Signal(sig)
			done := make(chan error, 1)
			go func() { done <- cmd.Wait() }()
			select {
			case <-done:
			case <-time.After(30 * time.Second):
				cmd.Process.Kill()
				t.Fatal("the benchmark did not stop within 30 s of the signal")
			}
			if left, _ := os.ReadDir(tmp); len(left) > 0 {
				t.Errorf("left behind after %v: %v", sig, left[0].Name())
			}
		})
	}
}
