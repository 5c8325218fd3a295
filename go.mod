module github.com/treeshift/treeshift

go 1.26.8

require (
	github.com/alecthomas/kong v1.17.0
	github.com/fsnotify/fsnotify v1.10.1
	github.com/google/renameio/v2 v2.0.2
	github.com/natefinch/atomic v1.0.1
	github.com/rogpeppe/go-internal v1.16.0
	golang.org/x/sys v0.26.0
)

require golang.org/x/tools v0.26.0 // indirect
