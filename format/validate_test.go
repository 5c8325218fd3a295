package format

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/treeshift/treeshift/internal/cdb"
	"github.com/treeshift/treeshift/internal/model"
	"github.com/treeshift/treeshift/internal/treetest"
)

// Where each codec keeps what, as the messages below name it.
var wantIndexFile = map[int]string{1: "compiled/index", 2: "compiled/index.json", 3: "compiled/index.cdb"}

func wantRecordFile(v int, svc string) string {
	return map[int]string{1: "resolve/" + svc, 2: "tree.json", 3: "tree.cdb"}[v]
}

func wantRecordRef(v int, svc string) string {
	return map[int]string{1: "resolve/" + svc, 2: "in tree.json", 3: "service/" + svc + " in tree.cdb"}[v]
}

// wantFileError fails unless err is a *FileError naming name with message msg.
func wantFileError(t *testing.T, what string, err error, name, msg string) {
	t.Helper()
	var fe *FileError
	if !errors.As(err, &fe) {
		t.Errorf("%s: got %v, want %s: %s", what, err, name, msg)
		return
	}
	if fe.Name != name || fe.Msg != msg {
		t.Errorf("%s:\n got %s: %s\nwant %s: %s", what, fe.Name, fe.Msg, name, msg)
	}
}

// An encoder writes whatever tree it is given, checksums included, so a tree
// whose parts disagree is what an attacker (or a bug) would leave on disk.
// Every codec must refuse each one, naming the file at fault.
func TestInconsistentTreeRefused(t *testing.T) {
	entry := func(tr *model.Tree, name string) *model.IndexEntry { return tr.Index.Entry(name) }
	for _, tc := range []struct {
		name   string
		mutate func(*model.Tree)
		// inIndex: the index file is at fault; otherwise the record of svc.
		inIndex bool
		svc     string
		msg     func(v int) string
	}{
		{"index type differs", func(tr *model.Tree) { entry(tr, "syslogd").Type = model.Oneshot }, true, "",
			func(v int) string {
				return `entry "syslogd" has type oneshot, its record ` + wantRecordRef(v, "syslogd") + ` says longrun`
			}},
		{"entry repeated", func(tr *model.Tree) { tr.Index.Entries = append(tr.Index.Entries, tr.Index.Entries[3]) }, true, "",
			func(int) string { return `entry "net" repeated (entries 4 and 5)` }},
		{"enabled service missing from the index", func(tr *model.Tree) { tr.Index.Entries = tr.Index.Entries[:3] }, true, "",
			func(v int) string {
				return `no entry for "net", which its record ` + wantRecordRef(v, "net") + ` says is enabled`
			}},
		{"entry without a record", func(tr *model.Tree) {
			tr.Index.Entries = append(tr.Index.Entries, model.IndexEntry{Name: "ghost", Type: model.Longrun})
		}, true, "", func(int) string { return `index names "ghost", which is not an enabled service of the tree` }},
		{"entry of a disabled service", func(tr *model.Tree) {
			tr.Index.Entries = append(tr.Index.Entries, model.IndexEntry{Name: "old-daemon", Type: model.Longrun})
		}, true, "", func(int) string { return `index names "old-daemon", which is not an enabled service of the tree` }},
		{"index dependencies differ", func(tr *model.Tree) { entry(tr, "ntpd").Deps = []string{"mount-run"} }, true, "",
			func(v int) string {
				return `entry "ntpd" has dependencies [mount-run], its record ` + wantRecordRef(v, "ntpd") + ` says [mount-run syslogd]`
			}},
		{"record dependencies differ", func(tr *model.Tree) { tr.Service("ntpd").Depends = []string{"mount-run"} }, true, "",
			func(v int) string {
				return `entry "ntpd" has dependencies [mount-run syslogd], its record ` + wantRecordRef(v, "ntpd") + ` says [mount-run]`
			}},
		{"disabled record depends on a service with no record", func(tr *model.Tree) { tr.Service("old-daemon").Depends = []string{"ghost"} },
			false, "old-daemon", func(int) string { return `service "old-daemon" depends on "ghost", which has no record in the tree` }},
		{"bundle contains a service with no record", func(tr *model.Tree) { tr.Service("net").Contents = []string{"ntpd", "syslogd", "zz"} },
			false, "net", func(int) string { return `bundle "net" contains "zz", which has no record in the tree` }},
		{"cycle among disabled records", func(tr *model.Tree) {
			tr.Put(model.Service{Name: "a", Type: model.Longrun, Depends: []string{"b"}})
			tr.Put(model.Service{Name: "b", Type: model.Longrun, Depends: []string{"a"}})
		}, false, "a", func(int) string { return `dependency cycle: a -> b -> a` }},
		{"cycle among enabled records", func(tr *model.Tree) { tr.Service("mount-run").Depends = []string{"ntpd"} },
			false, "mount-run", func(int) string { return `dependency cycle: mount-run -> ntpd -> syslogd -> mount-run` }},
		{"enabled service depends on a disabled one", func(tr *model.Tree) {
			tr.Service("ntpd").Depends = []string{"old-daemon", "syslogd", "mount-run"}
		}, false, "ntpd", func(int) string { return `service "ntpd" is enabled but depends on "old-daemon", which is not` }},
		{"bundle with depends", func(tr *model.Tree) { tr.Service("net").Depends = []string{"mount-run"} },
			false, "net", func(int) string { return `bundle "net" has depends: a bundle lists its members in contents` }},
		{"contents of a service that is not a bundle", func(tr *model.Tree) { tr.Service("ntpd").Contents = []string{"syslogd"} },
			false, "ntpd", func(int) string { return `service "ntpd" is a classic, not a bundle, but has contents` }},
		{"index in another order than the compiler's", func(tr *model.Tree) {
			tr.Put(model.Service{Name: "zz", Type: model.Longrun, Enabled: true})
			treetest.Finish(tr)
			x := tr.Index.Entries
			tr.Index.Entries = append([]model.IndexEntry{x[len(x)-1]}, x[:len(x)-1]...)
		}, true, "", func(int) string {
			return `entry 1 is "zz", but start order (dependencies first, ties by name) puts "mount-run" there`
		}},
	} {
		for _, c := range All() {
			v := c.Version()
			tr := treetest.Sample()
			tc.mutate(tr)
			_, _, err := Read(encode(t, c, tr))
			name := wantIndexFile[v]
			if !tc.inIndex {
				name = wantRecordFile(v, tc.svc)
			}
			wantFileError(t, fmt.Sprintf("v%d: %s", v, tc.name), err, name, tc.msg(v))
		}
	}
}

// ReadFiles, which verifies a conversion's intermediate format, checks as
// much as Read.
func TestReadFilesRefusesInconsistentTree(t *testing.T) {
	tr := treetest.Sample()
	tr.Index.Entry("syslogd").Type = model.Oneshot
	files, err := v2{}.Encode(tr)
	if err != nil {
		t.Fatal(err)
	}
	_, _, err = ReadFiles(files)
	wantFileError(t, "ReadFiles", err, "compiled/index.json", `entry "syslogd" has type oneshot, its record in tree.json says longrun`)
}

// Sorting index entries of another valid start order: every one is refused,
// so the check cannot drift from compile.Index without TestRoundTripRandom
// (whose indexes compile.Index computes) noticing.
func TestIndexOrderIsTheCompilers(t *testing.T) {
	tr := &model.Tree{Name: "t"}
	for _, n := range []string{"a", "b", "c", "d"} {
		tr.Put(model.Service{Name: n, Type: model.Longrun, Enabled: true})
	}
	tr.Service("d").Depends = []string{"c"}
	treetest.Finish(tr)
	want := []string{"a", "b", "c", "d"}
	for i, e := range tr.Index.Entries {
		if e.Name != want[i] {
			t.Fatalf("compile.Index order %v, want %v", tr.Index.Entries, want)
		}
	}
	orig := tr.Index.Entries
	for _, order := range [][]int{{1, 0, 2, 3}, {0, 2, 1, 3}, {0, 2, 3, 1}, {2, 3, 0, 1}, {2, 0, 1, 3}} {
		x := make([]model.IndexEntry, len(orig))
		for i, j := range order {
			x[i] = orig[j]
		}
		tr.Index.Entries = x
		for _, c := range All() {
			if _, _, err := Read(encode(t, c, tr)); err == nil || !strings.Contains(err.Error(), "start order") {
				t.Errorf("v%d: order %v: got %v, want a start order error", c.Version(), order, err)
			}
		}
	}
}

// v2Reseal recomputes a v2 file's header after an edit, as anyone able to
// write the file can.
func v2Reseal(data []byte) []byte {
	_, body, _ := bytes.Cut(data, []byte("\n"))
	sum := sha256.Sum256(body)
	return append([]byte(v2Magic+" 2 sha256:"+hex.EncodeToString(sum[:])+"\n"), body...)
}

// The checksum proves only that whoever wrote a v2 document computed it:
// what encoding/json would let through (keys matched case-insensitively,
// duplicate keys, null for a list) must still be refused.
func TestV2RefusesWhatTreeshiftNeverWrites(t *testing.T) {
	compact := func(s string) string {
		_, body, _ := strings.Cut(s, "\n")
		var b bytes.Buffer
		json.Compact(&b, []byte(body))
		return "header\n" + b.String() + "\n"
	}
	for _, tc := range []struct {
		name, file string
		edit       func(string) string
		want       string // the message, or its start when it ends in "..."
	}{
		{"duplicate key", "tree.json", func(s string) string {
			return strings.Replace(s, "\t\"name\": \"boot\",\n", "\t\"name\": \"boot\",\n\t\"name\": \"boot\",\n", 1)
		}, `key "name" repeated`},
		{"duplicate key in a service", "tree.json", func(s string) string {
			return strings.Replace(s, "\"type\": \"oneshot\",\n", "\"type\": \"longrun\",\n\t\t\t\"type\": \"oneshot\",\n", 1)
		}, `services[0]: key "type" repeated`},
		{"key in another case", "tree.json", func(s string) string { return strings.Replace(s, `"name": "boot"`, `"Name": "boot"`, 1) },
			`key "Name" where the format has "name"`},
		{"key that folds to another", "tree.json", func(s string) string { return strings.Replace(s, `"source"`, `"ſource"`, 1) },
			`services[0]: key "ſource" where the format has "source"`},
		{"unknown key", "tree.json", func(s string) string {
			return strings.Replace(s, "\t\"name\": \"boot\",\n", "\t\"name\": \"boot\",\n\t\"x\": 1,\n", 1)
		}, `unknown key "x"`},
		{"null allow", "tree.json", func(s string) string {
			return strings.Replace(s, "\"allow\": [\n\t\t\"alice\",\n\t\t\"root\"\n\t]", `"allow": null`, 1)
		}, `allow: null where a list belongs`},
		{"null depends", "tree.json", func(s string) string { return strings.Replace(s, `"depends": []`, `"depends": null`, 1) },
			`services[0].depends: null where a list belongs`},
		{"null string", "tree.json", func(s string) string { return strings.Replace(s, `"shebang": ""`, `"shebang": null`, 1) },
			`services[0].start.shebang: null where a string belongs`},
		{"null deps in the index", "compiled/index.json", func(s string) string { return strings.Replace(s, `"deps": []`, `"deps": null`, 1) },
			`entries[0].deps: null where a list belongs`},
		{"duplicate key in the index", "compiled/index.json", func(s string) string {
			return strings.Replace(s, "\"type\": \"oneshot\",\n", "\"type\": \"oneshot\",\n\t\t\t\"type\": \"oneshot\",\n", 1)
		}, `entries[0]: key "type" repeated`},
		{"key in another case in the index", "compiled/index.json", func(s string) string { return strings.Replace(s, `"entries"`, `"ENTRIES"`, 1) },
			`key "ENTRIES" where the format has "entries"`},
		{"not indented", "tree.json", compact, `not as treeshift writes it: line 2 is "{\"name\":\"boot\"...`},
		{"escaped character", "tree.json", func(s string) string { return strings.Replace(s, `"mount /run"`, `"mount \/run"`, 1) },
			fmt.Sprintf("not as treeshift writes it: line 12 is %q, where treeshift writes %q", "\t\t\t\"description\": \"mount \\/run\",", "\t\t\t\"description\": \"mount /run\",")},
		{"lone surrogate", "tree.json", func(s string) string { return strings.Replace(s, `"mount /run"`, `"mount \ud800"`, 1) },
			fmt.Sprintf("not as treeshift writes it: line 12 is %q, where treeshift writes %q", "\t\t\t\"description\": \"mount \\ud800\",", "\t\t\t\"description\": \"mount \ufffd\",")},
	} {
		fsys := encode(t, v2{}, treetest.Sample())
		orig := string(fsys[tc.file].Data)
		edited := tc.edit(orig)
		if edited == orig {
			t.Fatalf("%s: the edit changed nothing", tc.name)
		}
		fsys[tc.file] = &fstest.MapFile{Data: v2Reseal([]byte(edited))}
		_, _, err := Read(fsys)
		var fe *FileError
		if !errors.As(err, &fe) || fe.Name != tc.file || !strings.HasPrefix(fe.Msg, strings.TrimSuffix(tc.want, "...")) ||
			!strings.HasSuffix(tc.want, "...") && fe.Msg != tc.want {
			t.Errorf("%s: got %v, want %s: %s", tc.name, err, tc.file, tc.want)
		}
	}
}

// Invalid UTF-8 is refused where it is read, naming the file and where in it
// the first bad byte is, instead of failing a later verification.
func TestInvalidUTF8Refused(t *testing.T) {
	fsys := encode(t, v1{}, treetest.Sample())
	rec := strings.Replace(string(fsys["resolve/ntpd"].Data), "description=time", "description=ti\xffme", 1)
	fsys["resolve/ntpd"] = &fstest.MapFile{Data: []byte(rec)}
	_, _, err := Read(fsys)
	wantFileError(t, "v1 record", err, "resolve/ntpd", fmt.Sprintf("invalid UTF-8 at byte %d (line 4)", strings.IndexByte(rec, 0xff)))

	fsys = encode(t, v1{}, treetest.Sample())
	meta := strings.Replace(string(fsys["meta"].Data), "services=", "services=caf\xe9,", 1)
	fsys["meta"] = &fstest.MapFile{Data: []byte(meta)}
	_, _, err = Read(fsys)
	wantFileError(t, "v1 meta", err, "meta", fmt.Sprintf("invalid UTF-8 at byte %d (line 4)", strings.IndexByte(meta, 0xe9)))

	fsys = encode(t, v2{}, treetest.Sample())
	doc := v2Reseal([]byte(strings.Replace(string(fsys["tree.json"].Data), "mount /run", "mount \xc3/run", 1)))
	fsys["tree.json"] = &fstest.MapFile{Data: doc}
	_, _, err = Read(fsys)
	off := bytes.IndexByte(doc, 0xc3)
	wantFileError(t, "v2", err, "tree.json", fmt.Sprintf("invalid UTF-8 at byte %d (line %d)", off, bytes.Count(doc[:off], []byte("\n"))+1))

	tr := treetest.Sample()
	tr.Service("ntpd").Description = "ti\xffme"
	_, _, err = Read(encode(t, v3{}, tr))
	// The record: "ntpd" and "classic", each behind its length byte, then
	// the description's length byte and "ti".
	wantFileError(t, "v3", err, "tree.cdb", `record "service/ntpd": invalid UTF-8 at byte 16 of the record`)

	tr = treetest.Sample()
	tr.Index.Entries[0].Type = "one\xe2shot"
	_, _, err = Read(encode(t, v3{}, tr))
	wantFileError(t, "v3 index", err, "compiled/index.cdb", `record "index": invalid UTF-8 at byte 15 of the record`)
}

// A name is quoted as the characters it holds, not as bytes.
func TestNameMessagesShowCharacters(t *testing.T) {
	fsys := encode(t, v1{}, treetest.Sample())
	meta := strings.Replace(string(fsys["meta"].Data), "services=", "services=café,", 1)
	fsys["meta"] = &fstest.MapFile{Data: []byte(meta)}
	_, _, err := Read(fsys)
	wantFileError(t, "v1 meta", err, "meta", `services: name "café" contains 'é': only letters, digits and ._@-+: are allowed`)
}

// sizedFS stands for a tree whose files have the sizes of size, not those
// of their data, and fails the test when it is asked for the contents of one
// larger than readable: a limit must be checked before a file is read.
type sizedFS struct {
	fstest.MapFS
	t        *testing.T
	size     map[string]int64
	readable int64
}

type sizedInfo struct {
	fs.FileInfo
	size int64
}

func (i sizedInfo) Size() int64 { return i.size }

type sizedEntry struct {
	fs.DirEntry
	fsys sizedFS
	name string
}

func (e sizedEntry) Info() (fs.FileInfo, error) { return e.fsys.Stat(e.name) }

func (f sizedFS) checkRead(name string) {
	if s, ok := f.size[name]; ok && s > f.readable {
		f.t.Errorf("%s (%d bytes) read", name, s)
	}
}

func (f sizedFS) Open(name string) (fs.File, error) {
	f.checkRead(name)
	return f.MapFS.Open(name)
}

func (f sizedFS) ReadFile(name string) ([]byte, error) {
	f.checkRead(name)
	return f.MapFS.ReadFile(name)
}

func (f sizedFS) Stat(name string) (fs.FileInfo, error) {
	fi, err := f.MapFS.Stat(name)
	if s, ok := f.size[name]; ok && err == nil {
		return sizedInfo{fi, s}, nil
	}
	return fi, err
}

func (f sizedFS) ReadDir(name string) ([]fs.DirEntry, error) {
	entries, err := f.MapFS.ReadDir(name)
	for i, e := range entries {
		entries[i] = sizedEntry{e, f, path.Join(name, e.Name())}
	}
	return entries, err
}

var _ interface {
	fs.ReadDirFS
	fs.ReadFileFS
	fs.StatFS
} = sizedFS{}

func TestSizeLimits(t *testing.T) {
	const record, whole = 1 << 20, 64 << 20
	for _, tc := range []struct {
		v    int
		name string
		size int64
		want string // "" when accepted
	}{
		{1, "resolve/ntpd", record + 1, "1048577 bytes, over the 1048576-byte limit of a record"},
		{1, "resolve/ntpd", record, ""},
		{1, "meta", whole + 1, "67108865 bytes, over the 67108864-byte limit of a tree file"},
		{1, "meta", whole, ""},
		{1, "compiled/index", whole + 1, "67108865 bytes, over the 67108864-byte limit of a tree file"},
		{2, "tree.json", 1 << 40, "1099511627776 bytes, over the 67108864-byte limit of a tree file"},
		{2, "tree.json", whole, ""},
		{2, "compiled/index.json", whole + 1, "67108865 bytes, over the 67108864-byte limit of a tree file"},
		{3, "tree.cdb", whole + 1, "67108865 bytes, over the 67108864-byte limit of a tree file"},
		{3, "tree.cdb", whole, ""},
		{3, "compiled/index.cdb", whole + 1, "67108865 bytes, over the 67108864-byte limit of a tree file"},
	} {
		c, _ := Get(tc.v)
		fsys := sizedFS{MapFS: encode(t, c, treetest.Sample()), t: t, size: map[string]int64{tc.name: tc.size}, readable: whole}
		if tc.name == "resolve/ntpd" {
			fsys.readable = record
		}
		_, _, err := Read(fsys)
		if tc.want == "" {
			if err != nil {
				t.Errorf("v%d: %s of %d bytes: %v", tc.v, tc.name, tc.size, err)
			}
			continue
		}
		wantFileError(t, fmt.Sprintf("v%d: %s of %d bytes", tc.v, tc.name, tc.size), err, tc.name, tc.want)
	}

	// v1 spreads a tree over files: its records together are held to the
	// limit of a tree file, so v1 cannot load more than v2 or v3 would.
	tr := &model.Tree{Name: "t"}
	size := map[string]int64{}
	for i := range 70 {
		n := fmt.Sprintf("s%02d", i)
		tr.Put(model.Service{Name: n, Type: model.Longrun})
		size["resolve/"+n] = record
	}
	fsys := sizedFS{MapFS: encode(t, v1{}, tr), t: t, size: size, readable: 0}
	_, _, err := Read(fsys)
	wantFileError(t, "70 records of 1 MiB", err, "resolve", "73400320 bytes in 70 records, over the 67108864-byte limit of a tree file")
}

// What the encoder writes, the decoder must read back: a record over the
// limit is refused when written, not after.
func TestEncodeRefusesOverLimit(t *testing.T) {
	tr := treetest.Sample()
	tr.Service("ntpd").Description = strings.Repeat("x", 1<<20)
	_, err := v1{}.Encode(tr)
	var fe *FileError
	if !errors.As(err, &fe) || fe.Name != "resolve/ntpd" || !strings.HasSuffix(fe.Msg, "bytes, over the 1048576-byte limit of a record") {
		t.Errorf("v1 encode of a 1 MiB description: %v", err)
	}
	for _, c := range All()[1:] {
		if _, err := c.Encode(tr); err != nil {
			t.Errorf("v%d: a 1 MiB description fits a tree file: %v", c.Version(), err)
		}
	}
}

// A decoder that checks sizes from the directory listing must still see a
// file missing, and report it as before.
func TestMissingFileNamed(t *testing.T) {
	for _, c := range All() {
		fsys := encode(t, c, treetest.Sample())
		name := wantIndexFile[c.Version()]
		delete(fsys, name)
		_, _, err := Read(fsys)
		var fe *FileError
		if !errors.As(err, &fe) || fe.Name != name || !strings.Contains(fe.Msg, "not exist") {
			t.Errorf("v%d: %s missing: %v", c.Version(), name, err)
		}
	}
}

// A v3 record that no lookup reaches is checksummed like the others but
// never read: it would vanish in the next conversion, unnoticed.
func TestV3RefusesUnlistedRecords(t *testing.T) {
	// The records of a tree with one service more, but the "services" list
	// of the tree without.
	more := treetest.Sample()
	more.Put(model.Service{Name: "extra", Type: model.Longrun})
	records := func(tr *model.Tree) map[string]string {
		db, err := cdb.Open(encode(t, v3{}, tr)["tree.cdb"].Data)
		if err != nil {
			t.Fatal(err)
		}
		m := map[string]string{}
		db.ForEach(func(k, v []byte) error { m[string(k)] = string(v); return nil })
		return m
	}
	want := records(treetest.Sample())
	var recs [][2]string
	for k, v := range records(more) {
		if k == v3KeyServices {
			v = want[k]
		}
		if k != v3KeyFormat && k != v3KeySum {
			recs = append(recs, [2]string{k, v})
		}
	}
	b, err := v3Build(recs)
	if err != nil {
		t.Fatal(err)
	}
	fsys := encode(t, v3{}, treetest.Sample())
	fsys["tree.cdb"] = &fstest.MapFile{Data: b}
	_, _, err = Read(fsys)
	wantFileError(t, "unlisted service", err, "tree.cdb", `unexpected record "service/extra"`)

	b, err = v3Build([][2]string{{v3KeyIndex, "\x00"}, {"note", "x"}})
	if err != nil {
		t.Fatal(err)
	}
	fsys = encode(t, v3{}, &model.Tree{Name: "t"})
	fsys["compiled/index.cdb"] = &fstest.MapFile{Data: b}
	_, _, err = Read(fsys)
	wantFileError(t, "index", err, "compiled/index.cdb", `unexpected record "note"`)
}

// The v2 header is compared as written, not as fields: spacing the
// checksum does not cover is refused like any other.
func TestV2HeaderAsWritten(t *testing.T) {
	fsys := encode(t, v2{}, treetest.Sample())
	data := fsys["tree.json"].Data
	fsys["tree.json"] = &fstest.MapFile{Data: append([]byte(v2Magic+"  2"), data[len(v2Magic)+2:]...)}
	_, _, err := Read(fsys)
	var fe *FileError
	if !errors.As(err, &fe) || fe.Name != "tree.json" || !strings.Contains(fe.Msg, "is not as treeshift writes it") {
		t.Errorf("two spaces in the header: %v", err)
	}
}
