package format

import (
	"reflect"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/treeshift/treeshift/internal/model"
	"github.com/treeshift/treeshift/internal/treetest"
)

// withoutEnv is the sample tree as version "" can hold it.
func withoutEnv() *model.Tree {
	t := treetest.Sample()
	for i := range t.Services {
		t.Services[i].Env = nil
	}
	return t
}

// Version "" is read and written: the files are v1's without the header
// and trailer, and Detect tells them from v1's.
func TestLegacyRoundTrip(t *testing.T) {
	c, err := Get(0)
	if err != nil || c.Version() != 0 {
		t.Fatalf("Get(0) = %v, %v", c, err)
	}
	files, err := c.Encode(withoutEnv())
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		if strings.HasPrefix(string(f.Data), "format=") || strings.Contains(string(f.Data), "\nend=") {
			t.Errorf("%s is stamped:\n%s", f.Name, f.Data)
		}
	}
	got, v, err := ReadFiles(files)
	if err != nil || v != 0 || !reflect.DeepEqual(got, withoutEnv()) {
		t.Fatalf("read back: version %d, %v, equal %v", v, err, reflect.DeepEqual(got, withoutEnv()))
	}
	fsys := fstest.MapFS{}
	for _, f := range files {
		fsys[f.Name] = &fstest.MapFile{Data: f.Data}
	}
	if v, err := Peek(fsys); err != nil || v != 0 {
		t.Errorf("Peek = %d, %v", v, err)
	}
	// A stamped tree is still v1.
	v1files, _ := Get(1)
	files, _ = v1files.Encode(withoutEnv())
	if _, v, err := ReadFiles(files); err != nil || v != 1 {
		t.Errorf("v1 read as %d, %v", v, err)
	}
}

// What version "" cannot hold is refused, naming it; what it holds wrongly
// is refused naming the file and line as numbered in the file.
func TestLegacyLimits(t *testing.T) {
	c, _ := Get(0)
	if _, err := c.Encode(treetest.Sample()); err == nil || !strings.Contains(err.Error(), `service syslogd has an [environment], which format "" cannot hold`) {
		t.Errorf("env in version \"\": %v", err)
	}
	files, _ := c.Encode(withoutEnv())
	fsys := fstest.MapFS{}
	for _, f := range files {
		fsys[f.Name] = &fstest.MapFile{Data: f.Data}
	}
	fsys["resolve/ntpd"] = &fstest.MapFile{Data: []byte(strings.Replace(string(fsys["resolve/ntpd"].Data), "type=classic\n", "type=classic\nbogus=1\n", 1))}
	if _, _, err := Read(fsys); err == nil || err.Error() != `resolve/ntpd: line 3: unknown key "bogus"` {
		t.Errorf("unknown key: %v", err)
	}
}
