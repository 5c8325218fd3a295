package cli

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/treeshift/treeshift/format"
	"github.com/treeshift/treeshift/internal/version"
)

// VersionCmd is `version`.
type VersionCmd struct{}

func (*VersionCmd) Run(e *env) error {
	_, err := fmt.Fprintln(e.stdout, versionText())
	return err
}

// versionText names the binary and the formats it reads and writes.
func versionText() string {
	var vs []string
	for _, c := range format.All() {
		vs = append(vs, strconv.Itoa(c.Version()))
	}
	return fmt.Sprintf("treeshift %s\nformats: %s (newest %d)", version.String(), strings.Join(vs, " "), format.Newest())
}

// HelpCmd is `help [COMMAND...]`; Main turns it into COMMAND... --help.
type HelpCmd struct {
	Command []string `arg:"" optional:"" help:"The command, with its subcommands (tree create)."`
}

func (*HelpCmd) Run() error { return nil }
