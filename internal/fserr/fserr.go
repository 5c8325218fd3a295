// Package fserr strips the standard library's path wrappers from errors, so
// that treeshift's messages, which name the path in their own words, name it
// once: "read /x/state: permission denied", not "read /x/state: open
// /x/state: permission denied".
package fserr

import (
	"errors"
	"io/fs"
	"os"
)

// ErrEscapes is os.Root's refusal of a path that leads out of it, in
// words that say why: os.Root says "path escapes from parent", which
// names no link.
var ErrEscapes = errors.New("a symbolic link on its path leads out of the root: refused")

// Cause returns the error inside a *fs.PathError, *os.LinkError or
// *os.SyscallError, or err itself; os.Root's escape is ErrEscapes.
func Cause(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		if pe.Err != nil && pe.Err.Error() == "path escapes from parent" {
			return ErrEscapes
		}
		return pe.Err
	}
	var le *os.LinkError
	if errors.As(err, &le) {
		return le.Err
	}
	var se *os.SyscallError
	if errors.As(err, &se) {
		return se.Err
	}
	return err
}
