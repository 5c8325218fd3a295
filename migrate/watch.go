package migrate

import (
	"os"
	"path"
	"path/filepath"
	"strings"
	"sync"

	"github.com/fsnotify/fsnotify"

	"github.com/treeshift/treeshift/format"
)

// watch notices writes by other processes to the directories a transition
// must not see change: for each tree, the generation it converts from (its
// top directory and the record directories resolve/ and compiled/; not every
// service directory, which would take one inotify watch each) and its live
// state. treeshift itself only reads them while the transition runs, so any
// event there is someone else's. One inotify instance serves the whole run.
//
// inotify events arrive asynchronously, so a write made just before a check
// may not have been reported yet. The check therefore also compares the
// modification times and sizes of the watched directories' entries with
// those taken when watching began. (Not change times: the hard links of a
// temporary copy change those of the files linked.)
type watch struct {
	w       *fsnotify.Watcher
	mu      sync.Mutex
	dirs    map[string]string      // watched directory -> tree
	first   map[string]string      // tree -> first path written
	watched map[string][]string    // tree -> its watched directories
	snap    map[string][]dirStamps // tree -> its directories' stamps when added
	done    chan struct{}
}

func newWatch() *watch {
	w := &watch{dirs: map[string]string{}, first: map[string]string{}, watched: map[string][]string{}, snap: map[string][]dirStamps{}}
	fw, err := fsnotify.NewWatcher()
	if err != nil {
		// No inotify (limits reached): the transition runs unwatched, as
		// 66-update always does.
		return w
	}
	w.w, w.done = fw, make(chan struct{})
	go func() {
		defer close(w.done)
		for {
			select {
			case ev, ok := <-fw.Events:
				if !ok {
					return
				}
				w.mu.Lock()
				if t, ok := w.dirs[filepath.Dir(ev.Name)]; ok && w.first[t] == "" {
					w.first[t] = ev.Name
				} else if t, ok := w.dirs[ev.Name]; ok && w.first[t] == "" {
					w.first[t] = ev.Name
				}
				w.mu.Unlock()
			case _, ok := <-fw.Errors:
				if !ok {
					return
				}
			}
		}
	}()
	return w
}

// Add watches the directories dirs (host paths) for tree.
func (w *watch) Add(tree string, dirs ...string) {
	snap := stamps(dirs)
	w.mu.Lock()
	w.watched[tree], w.snap[tree] = dirs, snap
	w.mu.Unlock()
	if w.w == nil {
		return
	}
	for _, d := range dirs {
		if w.w.Add(d) == nil { // a directory that does not exist has nothing to watch
			w.mu.Lock()
			w.dirs[strings.TrimSuffix(d, "/")] = tree
			w.mu.Unlock()
		}
	}
}

// Tripped returns the first path of tree written to since it was added, or "".
func (w *watch) Tripped(tree string) string {
	if w == nil {
		return ""
	}
	w.mu.Lock()
	first, dirs, snap := w.first[tree], w.watched[tree], w.snap[tree]
	w.mu.Unlock()
	if first != "" {
		return first
	}
	for i, now := range stamps(dirs) {
		if p := snap[i].differs(now); p != "" {
			return p
		}
	}
	return ""
}

// stamp is what a write to a file changes: its modification time or size.
type stamp struct{ mtime, size int64 }

// dirStamps is the stamps of a directory's entries, sorted by name. A run
// holds one for each watched directory of every tree it moves (a thousand
// entries for a tree of a thousand services in format 1): names, not
// paths, in slices, not maps.
type dirStamps struct {
	dir    string
	names  []string
	stamps []stamp
}

// stamps takes the stamps of the entries of each of the directories dirs.
func stamps(dirs []string) []dirStamps {
	out := make([]dirStamps, len(dirs))
	for i, d := range dirs {
		out[i].dir = d
		entries, err := os.ReadDir(d) // sorted by name
		if err != nil {
			continue
		}
		for _, e := range entries {
			if info, err := e.Info(); err == nil {
				out[i].names = append(out[i].names, e.Name())
				out[i].stamps = append(out[i].stamps, stamp{info.ModTime().UnixNano(), info.Size()})
			}
		}
	}
	return out
}

// differs returns the path of an entry whose stamp differs between d and
// now, or that only one of them has, or "".
func (d dirStamps) differs(now dirStamps) string {
	i, j := 0, 0
	for i < len(d.names) || j < len(now.names) {
		switch {
		case j == len(now.names) || (i < len(d.names) && d.names[i] < now.names[j]):
			return d.dir + string(filepath.Separator) + d.names[i]
		case i == len(d.names) || now.names[j] < d.names[i]:
			return d.dir + string(filepath.Separator) + now.names[j]
		case d.stamps[i] != now.stamps[j]:
			return d.dir + string(filepath.Separator) + d.names[i]
		}
		i, j = i+1, j+1
	}
	return ""
}

func (w *watch) Close() {
	if w == nil || w.w == nil {
		return
	}
	w.w.Close()
	<-w.done
}

// watched lists, as host paths, what a transition of tree name from
// generation gen must not see written by another process: the generation's
// record directories and the tree's live state.
func (e *Engine) watched(name string, gen int) []string {
	var dirs []string
	for _, d := range format.RecordDirs() {
		dirs = append(dirs, e.Host(path.Join(e.Store.GenDir(name, gen), d)))
	}
	return append(dirs, e.Host(e.Live.Tree(name).StateDir()))
}
