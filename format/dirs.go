package format

// RecordDirs lists the directories, relative to a tree directory, where
// the known formats keep their records: what a transition watches for
// outside writers. The compiled service directories are not records.
func RecordDirs() []string { return []string{".", "compiled", "resolve"} }
