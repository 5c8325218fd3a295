package frontend

import (
	"slices"

	"github.com/treeshift/treeshift/internal/model"
)

// Changed names the keys of a definition whose values differ between two
// records of one service, in the file's terms: "@version", "[start]",
// "[environment]". Two records parsed from files that differ only in
// comments or layout have no changed key, though their digests differ.
func Changed(old, cur model.Service) []string {
	var keys []string
	add := func(differs bool, key string) {
		if differs {
			keys = append(keys, key)
		}
	}
	add(old.Type != cur.Type, "@type")
	add(old.Description != cur.Description, "@description")
	add(old.Version != cur.Version, "@version")
	add(!slices.Equal(old.User, cur.User), "@user")
	add(!slices.Equal(old.Depends, cur.Depends), "@depends")
	add(!slices.Equal(old.Contents, cur.Contents), "@contents")
	add(old.Start != cur.Start, "[start]")
	add(old.Stop != cur.Stop, "[stop]")
	add(!slices.Equal(old.Env, cur.Env), "[environment]")
	return keys
}
