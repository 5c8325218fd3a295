// Command treeshift moves a service manager's trees and live databases from
// one on-disk format to another without a reboot and without touching running
// services. See README.md and docs/.
package main

import (
	"os"
	"runtime/debug"

	"github.com/treeshift/treeshift/cmd/treeshift/cli"
)

// memoryLimit is the Go runtime's soft memory limit unless GOMEMLIMIT sets
// one. A run holds one tree's records at a time (a few MiB, 20 MiB at
// 10,000 services) but makes garbage at a great rate, encoding and decoding
// whole trees: with the default pacing alone the heap grows to twice what
// is live, and the peak RSS of a 10,000-service tree was 70-80 MiB. With
// the limit the collector runs more often as the heap nears it (docs/
// PERFORMANCE.md).
const memoryLimit = 28 << 20

func main() {
	if os.Getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(memoryLimit)
	}
	os.Exit(cli.Main(os.Args[1:], os.Stdout, os.Stderr))
}
