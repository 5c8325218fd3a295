// Package suggest writes the treeshift commands that messages tell a user to
// run next. A suggestion must work as printed: when the command that prints
// it was given --root or -l, the suggested command carries them too, or it
// would act on another system (a package hook on a staged root printing a
// command that changes /).
package suggest

import (
	"strings"

	"github.com/treeshift/treeshift/internal/owner"
)

// Prefix is how treeshift was invoked: the options every suggested command
// must repeat. The zero Prefix suggests bare commands.
type Prefix struct {
	// Root is --root as given ("" or "/" for none).
	Root string
	// Live is -l as given ("" or the default for none).
	Live string
}

// Cmd returns the command line "treeshift [--root R] [-l L] ARGS...",
// quoting what a shell would split.
func (p Prefix) Cmd(args ...string) string {
	words := []string{"treeshift"}
	if p.Root != "" && p.Root != "/" {
		words = append(words, "--root", p.Root)
	}
	if p.Live != "" && p.Live != owner.DefaultLive {
		words = append(words, "-l", p.Live)
	}
	out := make([]string, 0, len(words)+len(args))
	for _, w := range append(words, args...) {
		out = append(out, Quote(w))
	}
	return strings.Join(out, " ")
}

// Quote returns s as one shell word.
func Quote(s string) string {
	if s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._@-+:/,=") == "" {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
