package update

import (
	"io/fs"
	"path/filepath"
	"sync"

	"github.com/fsnotify/fsnotify"
)

// watch notices writes by other processes to the directories a transition
// must not see change: the generation it converts from and the live state.
// treeshift itself only reads them while the transition runs, so any event
// there is someone else's.
type watch struct {
	w    *fsnotify.Watcher
	mu   sync.Mutex
	path string
	done chan struct{}
}

func newWatch(dirs ...string) *watch {
	fw, err := fsnotify.NewWatcher()
	if err != nil {
		// No inotify (limits reached): the transition runs unwatched, as
		// 66-update always does.
		return &watch{}
	}
	w := &watch{w: fw, done: make(chan struct{})}
	for _, d := range dirs {
		filepath.WalkDir(d, func(p string, e fs.DirEntry, err error) error {
			if err == nil && e.IsDir() {
				fw.Add(p)
			}
			return nil
		})
	}
	go func() {
		defer close(w.done)
		for {
			select {
			case ev, ok := <-fw.Events:
				if !ok {
					return
				}
				w.mu.Lock()
				if w.path == "" {
					w.path = ev.Name
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

// Tripped returns the first path written to since the watch began, or "".
func (w *watch) Tripped() string {
	if w == nil {
		return ""
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.path
}

func (w *watch) Close() {
	if w == nil || w.w == nil {
		return
	}
	w.w.Close()
	<-w.done
}
