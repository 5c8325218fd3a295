// Command mangen writes treeshift(1), generated from the command-line model,
// to the file given (make man: docs/treeshift.1).
package main

import (
	"fmt"
	"os"

	"github.com/treeshift/treeshift/cmd/treeshift/cli"
)

func main() {
	page, err := cli.ManPage()
	if err == nil {
		err = os.WriteFile(os.Args[1], []byte(page), 0o644)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "mangen:", err)
		os.Exit(1)
	}
}
