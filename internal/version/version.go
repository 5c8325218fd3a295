// Package version says which treeshift this is: the release it was cut
// from, and the commit it was built from when the build recorded one.
// Cluster members report it, and --version prints it.
package version

import "runtime/debug"

// Release is the version of this source tree; a release build may set it
// with -ldflags "-X github.com/treeshift/treeshift/internal/version.Release=...".
var Release = "0.5.0"

// String is Release with the commit the binary was built from, when the Go
// toolchain recorded one ("0.5.0+1a2b3c4d5e6f", "+dirty" for a modified
// checkout).
func String() string {
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return Release
	}
	rev, dirty := "", false
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			dirty = s.Value == "true"
		}
	}
	if rev == "" {
		return Release
	}
	if len(rev) > 12 {
		rev = rev[:12]
	}
	if dirty {
		rev += ".dirty"
	}
	return Release + "+" + rev
}
