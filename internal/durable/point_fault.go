//go:build faultinject

package durable

import (
	"fmt"
	"os"
	"strconv"
	"sync/atomic"
	"syscall"
	"time"
)

// FaultInjection reports whether this binary was built with fault points.
const FaultInjection = true

var steps atomic.Int64

// pause lets a test act in the middle of a transition: it creates
// FILE.paused and waits (up to a minute) for FILE.resume.
func pause(file string) {
	os.WriteFile(file+".paused", nil, 0o644)
	for i := 0; i < 6000; i++ {
		if _, err := os.Stat(file + ".resume"); err == nil {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// point counts durable steps. With TREESHIFT_CRASH_AFTER=N the process kills
// itself with SIGKILL right after step N, which is what a power loss or an
// OOM kill looks like to the next run. TREESHIFT_TRACE_STEPS=1 lists steps on
// stderr so tests can learn how many there are. TREESHIFT_PAUSE_AFTER=N
// with TREESHIFT_PAUSE_FILE pauses after step N (see pause).
func point(op, path string) {
	n := steps.Add(1)
	if os.Getenv("TREESHIFT_TRACE_STEPS") == "1" {
		fmt.Fprintf(os.Stderr, "step %d: %s %s\n", n, op, path)
	}
	if v := os.Getenv("TREESHIFT_PAUSE_AFTER"); v != "" {
		if k, err := strconv.ParseInt(v, 10, 64); err == nil && k == n {
			pause(os.Getenv("TREESHIFT_PAUSE_FILE"))
		}
	}
	if v := os.Getenv("TREESHIFT_CRASH_AFTER"); v != "" {
		if k, err := strconv.ParseInt(v, 10, 64); err == nil && k == n {
			syscall.Kill(os.Getpid(), syscall.SIGKILL)
			select {}
		}
	}
}
