// Command treeshift moves a service manager's trees and live databases from
// one on-disk format to another without a reboot and without touching running
// services. See README.md and docs/.
package main

import (
	"os"

	"github.com/treeshift/treeshift/cmd/treeshift/cli"
)

func main() {
	os.Exit(cli.Main(os.Args[1:], os.Stdout, os.Stderr))
}
