package format

import (
	"errors"
	"math/rand/v2"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/treeshift/treeshift/internal/cdb"
	"github.com/treeshift/treeshift/internal/compile"
	"github.com/treeshift/treeshift/internal/model"
	"github.com/treeshift/treeshift/internal/treetest"
)

func encode(t testing.TB, c Codec, tr *model.Tree) fstest.MapFS {
	files, err := c.Encode(tr)
	if err != nil {
		t.Fatalf("v%d: encode: %v", c.Version(), err)
	}
	fsys := fstest.MapFS{}
	for _, f := range files {
		fsys[f.Name] = &fstest.MapFile{Data: f.Data, Mode: f.Mode}
	}
	return fsys
}

func TestRoundTripSample(t *testing.T) {
	for _, c := range All() {
		want := treetest.Sample()
		got, v, err := Read(encode(t, c, want))
		if err != nil {
			t.Fatalf("v%d: %v", c.Version(), err)
		}
		if v != c.Version() {
			t.Errorf("Read detected v%d, want v%d", v, c.Version())
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("v%d: round trip changed the tree\n got %+v\nwant %+v", c.Version(), got, want)
		}
	}
}

func TestRoundTripRandom(t *testing.T) {
	for seed := uint64(0); seed < 200; seed++ {
		want := treetest.Random(rand.New(rand.NewPCG(seed, 1)), 25)
		for _, c := range All() {
			got, _, err := Read(encode(t, c, want))
			if err != nil {
				t.Fatalf("seed %d v%d: %v", seed, c.Version(), err)
			}
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("seed %d v%d: round trip changed the tree\n got %+v\nwant %+v", seed, c.Version(), got, want)
			}
		}
	}
}

func TestEncodingIsDeterministic(t *testing.T) {
	for _, c := range All() {
		a, b := encode(t, c, treetest.Sample()), encode(t, c, treetest.Sample())
		if !reflect.DeepEqual(a, b) {
			t.Errorf("v%d: two encodings of one tree differ", c.Version())
		}
	}
}

// Every prefix of every file must be refused with an error naming that file.
func TestTruncationNamesTheFile(t *testing.T) {
	for _, c := range All() {
		fsys := encode(t, c, treetest.Sample())
		for name, f := range fsys {
			full := f.Data
			for n := 0; n < len(full); n++ {
				fsys[name] = &fstest.MapFile{Data: full[:n], Mode: f.Mode}
				_, _, err := Read(fsys)
				if err == nil {
					t.Fatalf("v%d: %s truncated to %d of %d bytes was accepted", c.Version(), name, n, len(full))
				}
				if !strings.Contains(err.Error(), name) && !(name == c.Marker() && n == 0) {
					t.Fatalf("v%d: %s truncated to %d bytes: error %q does not name the file", c.Version(), name, n, err)
				}
			}
			fsys[name] = f
		}
	}
}

// Flipping any single byte of a checksummed format must be detected.
func TestBitFlipDetected(t *testing.T) {
	for _, c := range All()[1:] {
		fsys := encode(t, c, treetest.Sample())
		for name, f := range fsys {
			full := f.Data
			for i := 0; i < len(full); i++ {
				mod := append([]byte(nil), full...)
				mod[i] ^= 0x20
				fsys[name] = &fstest.MapFile{Data: mod}
				if _, _, err := Read(fsys); err == nil {
					t.Fatalf("v%d: %s with byte %d flipped was accepted", c.Version(), name, i)
				}
			}
			fsys[name] = f
		}
	}
}

func TestUnknownVersion(t *testing.T) {
	cases := map[int]func(fstest.MapFS){
		1: func(m fstest.MapFS) {
			m["meta"].Data = []byte(strings.Replace(string(m["meta"].Data), "format=1", "format=9", 1))
		},
		2: func(m fstest.MapFS) {
			m["tree.json"].Data = []byte(strings.Replace(string(m["tree.json"].Data), "treeshift-format 2", "treeshift-format 9", 1))
		},
		3: func(m fstest.MapFS) {
			files, _ := v3Build([][2]string{})
			m["tree.cdb"].Data = []byte(strings.Replace(string(files), "treeshift-format3", "treeshift-format9", 1))
		},
	}
	for v, mutate := range cases {
		c, _ := Get(v)
		fsys := encode(t, c, treetest.Sample())
		mutate(fsys)
		_, _, err := Read(fsys)
		var uv *UnknownVersionError
		if !errors.As(err, &uv) || uv.Version != "9" || uv.Name != c.Marker() {
			t.Errorf("v%d: got %v, want an unknown version 9 error naming %s", v, err, c.Marker())
		}
	}
}

func TestDetect(t *testing.T) {
	if _, err := Detect(fstest.MapFS{"other": {}}); err == nil || !strings.Contains(err.Error(), "no tree record") {
		t.Errorf("Detect(empty) = %v", err)
	}
	both := encode(t, v1{}, treetest.Sample())
	for k, v := range encode(t, v3{}, treetest.Sample()) {
		both[k] = v
	}
	if _, err := Detect(both); err == nil || !strings.Contains(err.Error(), "several formats") {
		t.Errorf("Detect(v1+v3) = %v", err)
	}
}

func TestGarbageRejected(t *testing.T) {
	garbage := []byte("\x00\x01not a tree at all\n")
	for _, c := range All() {
		fsys := encode(t, c, treetest.Sample())
		fsys[c.Marker()] = &fstest.MapFile{Data: garbage}
		_, _, err := Read(fsys)
		var fe *FileError
		if !errors.As(err, &fe) || fe.Name != c.Marker() {
			t.Errorf("v%d: garbage %s gave %v, want a FileError naming it", c.Version(), c.Marker(), err)
		}
	}
}

func TestV1RejectsBadLines(t *testing.T) {
	base := encode(t, v1{}, treetest.Sample())
	rec := string(base["resolve/ntpd"].Data)
	for _, tc := range []struct{ data, want string }{
		{strings.Replace(rec, "type=classic", "typo=classic", 1), `unknown key "typo"`},
		{strings.Replace(rec, "enabled=true", "enabled=maybe", 1), "enabled=\"maybe\""},
		{strings.Replace(rec, "name=ntpd\n", "name=ntpd\nname=ntpd\n", 1), `key "name" repeated`},
		{strings.Replace(rec, "type=classic\n", "", 1), `missing key "type"`},
		{strings.Replace(rec, "type=classic", "no equals sign", 1), "is not key=value"},
		{strings.Replace(rec, "description=time", "description=bad\\x", 1), "unknown escape"},
		{strings.Replace(rec, "name=ntpd", "name=other", 1), "records service \"other\""},
	} {
		fsys := encode(t, v1{}, treetest.Sample())
		fsys["resolve/ntpd"] = &fstest.MapFile{Data: reseal(tc.data)}
		_, _, err := Read(fsys)
		if err == nil || !strings.Contains(err.Error(), "resolve/ntpd") || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("got %v, want an error on resolve/ntpd containing %q", err, tc.want)
		}
	}
}

func TestInvalidTreeRejected(t *testing.T) {
	tr := treetest.Sample()
	tr.Index.Entries[0], tr.Index.Entries[1] = tr.Index.Entries[1], tr.Index.Entries[0]
	for _, c := range All() {
		_, _, err := Read(encode(t, c, tr))
		if err == nil || !strings.Contains(err.Error(), "before its dependency") {
			t.Errorf("v%d: index out of order gave %v", c.Version(), err)
		}
	}
}

func fuzzDecoder(f *testing.F, c Codec) {
	seed := encode(f, c, treetest.Sample())
	var names []string
	for _, n := range []string{c.Marker(), "compiled/index", "compiled/index.json", "compiled/index.cdb", "resolve/ntpd"} {
		if seed[n] != nil {
			names = append(names, n)
		}
	}
	for i, n := range names {
		f.Add(i, seed[n].Data)
		f.Add(i, seed[n].Data[:len(seed[n].Data)/2])
	}
	f.Add(0, []byte{})
	f.Fuzz(func(t *testing.T, which int, data []byte) {
		if which < 0 || which >= len(names) {
			return
		}
		fsys := encode(t, c, treetest.Sample())
		fsys[names[which]] = &fstest.MapFile{Data: data}
		tr, _, err := Read(fsys)
		if err != nil {
			var fe *FileError
			var uv *UnknownVersionError
			if !errors.As(err, &fe) && !errors.As(err, &uv) {
				t.Fatalf("error %v is neither a FileError nor an UnknownVersionError", err)
			}
			return
		}
		// Whatever decodes must encode and decode to itself.
		again, _, err := Read(encode(t, c, tr))
		if err != nil || !reflect.DeepEqual(again, tr) {
			t.Fatalf("accepted tree does not round-trip: %v", err)
		}
		// and hold the index the compiler computes from its records.
		x, err := compile.Index(tr)
		if err != nil || !sameIndex(x, tr.Index) {
			t.Fatalf("accepted index %v, the compiler's is %v (%v)", tr.Index, x, err)
		}
	})
}

// sameIndex compares indexes, an empty list of dependencies equal to none.
func sameIndex(a, b model.Index) bool {
	return slices.EqualFunc(a.Entries, b.Entries, func(x, y model.IndexEntry) bool {
		return x.Name == y.Name && x.Type == y.Type && slices.Equal(x.Deps, y.Deps)
	})
}

func FuzzV1(f *testing.F) { fuzzDecoder(f, v1{}) }
func FuzzV2(f *testing.F) { fuzzDecoder(f, v2{}) }
func FuzzV3(f *testing.F) { fuzzDecoder(f, v3{}) }

// reseal recomputes the end= trailer of an edited v1 file, so a test reaches
// the check it means to exercise.
func reseal(data string) []byte {
	lines := strings.Split(strings.TrimSuffix(data, "\n"), "\n")
	lines = lines[:len(lines)-1]
	return []byte(strings.Join(lines, "\n") + "\nend=" + strconv.Itoa(len(lines)-1) + "\n")
}

func TestV3RequiresFormatRecord(t *testing.T) {
	w := cdb.NewWriter()
	w.Add([]byte("tree"), []byte("x"))
	b, _ := w.Bytes()
	fsys := encode(t, v3{}, treetest.Sample())
	fsys["compiled/index.cdb"] = &fstest.MapFile{Data: b}
	_, _, err := Read(fsys)
	if err == nil || err.Error() != "compiled/index.cdb: no treeshift-format record: not a treeshift database" {
		t.Errorf("got %v", err)
	}
}

func TestV3RefusesRepeatedKeys(t *testing.T) {
	w := cdb.NewWriter()
	w.Add([]byte("treeshift-format"), []byte("3"))
	w.Add([]byte("index"), []byte{0})
	w.Add([]byte("index"), []byte{0})
	b, _ := w.Bytes()
	fsys := encode(t, v3{}, treetest.Sample())
	fsys["compiled/index.cdb"] = &fstest.MapFile{Data: b}
	_, _, err := Read(fsys)
	if err == nil || err.Error() != `compiled/index.cdb: record "index" repeated` {
		t.Errorf("got %v", err)
	}
}

func TestPeek(t *testing.T) {
	for _, c := range All() {
		fsys := encode(t, c, treetest.Sample())
		if v, err := Peek(fsys); err != nil || v != c.Version() {
			t.Errorf("v%d: Peek = %d, %v", c.Version(), v, err)
		}
	}
	fsys := encode(t, v2{}, treetest.Sample())
	fsys["tree.json"].Data = []byte(strings.Replace(string(fsys["tree.json"].Data), "treeshift-format 2", "treeshift-format 5", 1))
	if v, err := Peek(fsys); err != nil || v != 5 {
		t.Errorf("Peek of a newer file = %d, %v; want 5", v, err)
	}
}

// TestV1ReadLongKeyList pins that a key list longer than v1Read's stack
// buffer is still checked key by key: the buffer is an optimisation only.
func TestV1ReadLongKeyList(t *testing.T) {
	var keys []string
	var body strings.Builder
	body.WriteString(v1Header + "\n")
	for i := range 40 {
		k := "k" + strconv.Itoa(i)
		keys = append(keys, k)
		body.WriteString(k + "=" + strconv.Itoa(i) + "\n")
	}
	full := body.String()
	fsys := fstest.MapFS{"rec": {Data: []byte(full + "end=40\n")}}
	r, err := v1Read(fsys, "rec", keys, false)
	if err != nil {
		t.Fatalf("v1Read of 40 keys: %v", err)
	}
	if got := r.one("k39"); got != "39" {
		t.Errorf("k39 = %q, want 39", got)
	}
	repeated := full + "k35=again\nend=41\n"
	fsys["rec"] = &fstest.MapFile{Data: []byte(repeated)}
	if _, err := v1Read(fsys, "rec", keys, false); err == nil || !strings.Contains(err.Error(), `key "k35" repeated (first at line 37)`) {
		t.Errorf("repeated k35: err = %v", err)
	}
	missing := strings.Replace(full, "k38=38\n", "", 1) + "end=39\n"
	fsys["rec"] = &fstest.MapFile{Data: []byte(missing)}
	if _, err := v1Read(fsys, "rec", keys, false); err == nil || !strings.Contains(err.Error(), `missing key "k38"`) {
		t.Errorf("missing k38: err = %v", err)
	}
}
