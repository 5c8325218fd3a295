package cli

import (
	"io"

	mangokong "github.com/alecthomas/mango-kong"
	"github.com/muesli/roff"
)

// ManPage returns treeshift(1) in roff: the commands and options from the
// command-line model, and the sections no model holds.
func ManPage() (string, error) {
	var c CLI
	parser, err := newParser(&c, io.Discard, io.Discard)
	if err != nil {
		return "", err
	}
	man := mangokong.NewManPage(1, parser.Model).
		WithLongDescription(longDescription).
		WithSection("Exit Status", exitStatus).
		WithSection("Files", files).
		WithSection("Environment", environment).
		WithSection("Examples", examples)
	return man.Build(roff.NewDocument()), nil
}

// Each line of these texts is a paragraph of the page.

const longDescription = "treeshift moves a service manager's trees and live databases from one on-disk format to another without a reboot and without stopping or restarting any running service. It is modelled on 66-update: per tree it saves the state, moves the live database to a private copy, builds the tree in the new format beside the old one, verifies it and switches the live database over. A crash at any point is finished or rolled back by the next treeshift update."

const exitStatus = `0: success, also when there is nothing to do.
100: wrong usage: a bad option, an unknown tree or service, a bad name, a service definition error, a dependency cycle.
111: a system call failed, or the transition was refused (tunability) or found an inconsistent or corrupt state; nothing was changed.`

const files = `/var/lib/treeshift (root) or $XDG_DATA_HOME/treeshift (a user): the system directory: the state file, the owner lock, tree/NAME links to tree generations, live/NAME records, journal/update while a transition runs.
/run/treeshift (changed with -l): the live directory: tree/UID/NAME/compiled links, service states, s6 service directories, scandir/UID, supervisor/UID.
/etc/treeshift/service and /usr/share/treeshift/service, after $XDG_CONFIG_HOME/treeshift/service for a user: service definitions.
Every path is prefixed with the directory given by --root.`

const environment = `NO_COLOR: when set, -z does not colour.
HOME, XDG_DATA_HOME, XDG_CONFIG_HOME: where a user's trees and service definitions are.`

const examples = `A dry run first, then the real run, as root: treeshift update -d; then treeshift -v 3 update.
A user updating their own trees: treeshift update.
A downgrade to format 1, after seeing what it requires: treeshift plan --to 1; then treeshift update --to 1.`
