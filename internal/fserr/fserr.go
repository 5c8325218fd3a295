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

// Cause returns the error inside a *fs.PathError, *os.LinkError or
// *os.SyscallError, or err itself.
func Cause(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
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
