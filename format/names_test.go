package format

import (
	"strings"
	"testing"
	"testing/fstest"

	"github.com/treeshift/treeshift/internal/treetest"
)

// A name read from disk is checked before it is used as a path: a v1 meta
// listing "../x" is refused naming meta, and the file it points at is never
// read.
func TestNamesFromDiskAreCheckedBeforeUse(t *testing.T) {
	files, err := v1{}.Encode(treetest.Sample())
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"../x", "resolve/../../x", ".hidden", "a/b"} {
		fsys := fstest.MapFS{"x": {Data: []byte("format=1\nsecret\n")}}
		for _, f := range files {
			data := f.Data
			if f.Name == "meta" {
				data = []byte(strings.Replace(string(data), "services=", "services="+name+",", 1))
			}
			fsys[f.Name] = &fstest.MapFile{Data: data, Mode: f.Mode}
		}
		opened := map[string]bool{}
		_, _, err := Read(watched{fsys, opened})
		if err == nil || !strings.HasPrefix(err.Error(), "meta: ") {
			t.Errorf("services=%s: %v, want a refusal naming meta", name, err)
		}
		for p := range opened {
			if !strings.HasPrefix(p, "resolve/") && p != "meta" && p != "resolve" && p != "." && !strings.HasPrefix(p, "compiled") &&
				p != "tree.json" && p != "tree.cdb" {
				t.Errorf("services=%s: read %s", name, p)
			}
		}
	}
}

// watched records the files opened through it.
type watched struct {
	fstest.MapFS
	opened map[string]bool
}

func (w watched) ReadFile(name string) ([]byte, error) {
	w.opened[name] = true
	return w.MapFS.ReadFile(name)
}
