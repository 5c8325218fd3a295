package format

import "github.com/treeshift/treeshift/internal/compile"

// indexDir is where every codec keeps its index: in the compiled database's
// directory, beside the service directories.
const indexDir = compile.Dir

// v1RecordDir is where v1 keeps one record per service.
const v1RecordDir = "resolve"

// RecordDirs lists the directories, relative to a tree directory, where
// the known formats keep their records: what a transition watches for
// outside writers. The compiled service directories are not records.
func RecordDirs() []string { return []string{".", indexDir, v1RecordDir} }
