package format

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"slices"
	"strconv"
	"strings"

	"github.com/treeshift/treeshift/internal/cdb"
	"github.com/treeshift/treeshift/internal/model"
)

// v3 stores the tree and its index as constant databases (cdb), the format
// the s6 world compiles service databases into. Values are binary records of
// length-prefixed fields; a "sha256" record covers every other record.
type v3 struct{}

func (v3) Version() int   { return 3 }
func (v3) Marker() string { return "tree.cdb" }

func (v3) indexFile() string        { return indexDir + "/index.cdb" }
func (v3) recordFile(string) string { return "tree.cdb" }
func (v3) recordRef(svc string) string {
	return v3SvcPrefix + svc + " in tree.cdb"
}

const (
	v3KeyFormat   = "treeshift-format"
	v3KeySum      = "sha256"
	v3KeyTree     = "tree"
	v3KeyServices = "services"
	v3KeyIndex    = "index"
	v3SvcPrefix   = "service/"
)

// v3Enc appends length-prefixed fields.
type v3Enc struct{ b []byte }

func (e *v3Enc) str(s string) {
	e.b = binary.AppendUvarint(e.b, uint64(len(s)))
	e.b = append(e.b, s...)
}
func (e *v3Enc) list(l []string) {
	e.b = binary.AppendUvarint(e.b, uint64(len(l)))
	for _, s := range l {
		e.str(s)
	}
}
func (e *v3Enc) flag(v bool) {
	if v {
		e.b = append(e.b, 1)
	} else {
		e.b = append(e.b, 0)
	}
}

// v3Dec reads fields back, remembering the first error.
type v3Dec struct {
	b   []byte
	n   int // the record's length, to say where in it an error is
	err error
}

func newV3Dec(b []byte) *v3Dec { return &v3Dec{b: b, n: len(b)} }

func (d *v3Dec) fail(msg string) {
	if d.err == nil {
		d.err = errors.New(msg)
	}
}

func (d *v3Dec) uvarint() uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.fail("truncated or bad length field")
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *v3Dec) str() string {
	n := d.uvarint()
	if d.err != nil {
		return ""
	}
	if n > uint64(len(d.b)) {
		d.fail(fmt.Sprintf("field of %d bytes runs past the record's end", n))
		return ""
	}
	// Strings are text: raw bytes that are not UTF-8 would be carried
	// into another format, where JSON cannot even represent them.
	if i := invalidUTF8(d.b[:n]); i >= 0 {
		d.fail(fmt.Sprintf("invalid UTF-8 at byte %d of the record", d.n-len(d.b)+i))
		return ""
	}
	s := string(d.b[:n])
	d.b = d.b[n:]
	return s
}

func (d *v3Dec) list() []string {
	n := d.uvarint()
	if d.err != nil {
		return nil
	}
	if n > uint64(len(d.b)) { // every element takes at least one byte
		d.fail(fmt.Sprintf("list of %d elements runs past the record's end", n))
		return nil
	}
	var l []string
	for i := uint64(0); i < n && d.err == nil; i++ {
		l = append(l, d.str())
	}
	return l
}

func (d *v3Dec) flag() bool {
	if d.err != nil {
		return false
	}
	if len(d.b) == 0 {
		d.fail("truncated flag field")
		return false
	}
	v := d.b[0]
	d.b = d.b[1:]
	if v > 1 {
		d.fail(fmt.Sprintf("flag byte %d is neither 0 nor 1", v))
	}
	return v == 1
}

func (d *v3Dec) end() error {
	if d.err == nil && len(d.b) != 0 {
		d.fail(fmt.Sprintf("%d bytes of garbage after the record", len(d.b)))
	}
	return d.err
}

// v3Build writes records to a cdb, followed by the checksum record.
func v3Build(records [][2]string) ([]byte, error) {
	w := cdb.NewWriter()
	h := sha256.New()
	all := append([][2]string{{v3KeyFormat, "3"}}, records...)
	for _, r := range all {
		v3Hash(h, []byte(r[0]), []byte(r[1]))
		if err := w.Add([]byte(r[0]), []byte(r[1])); err != nil {
			return nil, err
		}
	}
	if err := w.Add([]byte(v3KeySum), []byte(hex.EncodeToString(h.Sum(nil)))); err != nil {
		return nil, err
	}
	return w.Bytes()
}

func v3Hash(h interface{ Write([]byte) (int, error) }, k, v []byte) {
	h.Write(binary.AppendUvarint(nil, uint64(len(k))))
	h.Write(k)
	h.Write(binary.AppendUvarint(nil, uint64(len(v))))
	h.Write(v)
}

func (v3) Encode(t *model.Tree) ([]File, error) {
	var e v3Enc
	e.str(t.Name)
	e.list(t.Allow)
	recs := [][2]string{{v3KeyTree, string(e.b)}}
	var names []string
	for _, s := range t.Services {
		names = append(names, s.Name)
		var e v3Enc
		for _, f := range []string{s.Name, s.Type, s.Description, s.Version} {
			e.str(f)
		}
		e.list(s.User)
		e.list(s.Depends)
		e.list(s.Contents)
		e.flag(s.Enabled)
		for _, f := range []string{s.Source, s.Digest, s.Start.Build, s.Start.Shebang, s.Start.Execute, s.Stop.Build, s.Stop.Shebang, s.Stop.Execute} {
			e.str(f)
		}
		var env []string
		for _, kv := range s.Env {
			env = append(env, kv.Key, kv.Value)
		}
		e.list(env)
		recs = append(recs, [2]string{v3SvcPrefix + s.Name, string(e.b)})
	}
	var ne v3Enc
	ne.list(names)
	recs = append(recs, [2]string{v3KeyServices, string(ne.b)})
	tb, err := v3Build(recs)
	if err != nil {
		return nil, err
	}
	var ie v3Enc
	ie.b = binary.AppendUvarint(ie.b, uint64(len(t.Index.Entries)))
	for _, x := range t.Index.Entries {
		ie.str(x.Name)
		ie.str(x.Type)
		ie.list(x.Deps)
	}
	ib, err := v3Build([][2]string{{v3KeyIndex, string(ie.b)}})
	if err != nil {
		return nil, err
	}
	files := []File{
		{Name: "tree.cdb", Data: tb, Mode: 0o644},
		{Name: indexDir + "/index.cdb", Data: ib, Mode: 0o644},
	}
	if err := checkEncoded(files); err != nil {
		return nil, err
	}
	return files, nil
}

// v3Open reads a cdb file, checks its version and checksum, and returns it
// with the number of its records.
func v3Open(fsys fs.FS, name string) (*cdb.Reader, int, error) {
	b, err := readFile(fsys, name)
	if err != nil {
		return nil, 0, err
	}
	r, err := cdb.Open(b)
	if err == nil {
		err = r.Verify()
	}
	if err != nil {
		return nil, 0, bad(name, "%v", err)
	}
	v, ok, err := r.Get([]byte(v3KeyFormat))
	if err != nil {
		return nil, 0, bad(name, "%v", err)
	}
	if !ok {
		return nil, 0, bad(name, "no %s record: not a treeshift database", v3KeyFormat)
	}
	if string(v) != "3" {
		if _, err := strconv.Atoi(string(v)); err == nil {
			return nil, 0, &UnknownVersionError{Name: name, Version: string(v)}
		}
		return nil, 0, bad(name, "%s record %q is not a version number", v3KeyFormat, clip(string(v)))
	}
	h := sha256.New()
	var want []byte
	seen := map[string]bool{}
	err = r.ForEach(func(k, v []byte) error {
		// treeshift never writes a key twice; a repeat would make lookups
		// depend on hash-table order.
		if seen[string(k)] {
			return fmt.Errorf("record %q repeated", clip(string(k)))
		}
		seen[string(k)] = true
		if string(k) == v3KeySum {
			want = v
			return nil
		}
		v3Hash(h, k, v)
		return nil
	})
	if err != nil {
		return nil, 0, bad(name, "%v", err)
	}
	if want == nil {
		return nil, 0, bad(name, "no %s record", v3KeySum)
	}
	if got := hex.EncodeToString(h.Sum(nil)); !bytes.Equal([]byte(got), want) {
		return nil, 0, bad(name, "checksum mismatch: recorded %s, records hash to %s (truncated or modified)", clip(string(want)), got)
	}
	return r, len(seen), nil
}

func v3Get(r *cdb.Reader, name, key string) (*v3Dec, error) {
	v, ok, err := r.Get([]byte(key))
	if err != nil {
		return nil, bad(name, "%v", err)
	}
	if !ok {
		return nil, bad(name, "missing record %q", key)
	}
	return newV3Dec(v), nil
}

func (v3) Decode(fsys fs.FS) (*model.Tree, error) {
	const tn, in = "tree.cdb", indexDir + "/index.cdb"
	r, count, err := v3Open(fsys, tn)
	if err != nil {
		return nil, err
	}
	d, err := v3Get(r, tn, v3KeyTree)
	if err != nil {
		return nil, err
	}
	t := &model.Tree{Name: d.str(), Allow: d.list()}
	if err := d.end(); err != nil {
		return nil, bad(tn, "record %q: %v", v3KeyTree, err)
	}
	d, err = v3Get(r, tn, v3KeyServices)
	if err != nil {
		return nil, err
	}
	names := d.list()
	if err := d.end(); err != nil {
		return nil, bad(tn, "record %q: %v", v3KeyServices, err)
	}
	for _, n := range names {
		key := v3SvcPrefix + n
		d, err := v3Get(r, tn, key)
		if err != nil {
			return nil, err
		}
		s := model.Service{Name: d.str(), Type: d.str(), Description: d.str(), Version: d.str(),
			User: d.list(), Depends: d.list(), Contents: d.list(), Enabled: d.flag()}
		s.Source, s.Digest = d.str(), d.str()
		s.Start = model.Script{Build: d.str(), Shebang: d.str(), Execute: d.str()}
		s.Stop = model.Script{Build: d.str(), Shebang: d.str(), Execute: d.str()}
		env := d.list()
		if err := d.end(); err != nil {
			return nil, bad(tn, "record %q: %v", key, err)
		}
		if len(env)%2 != 0 {
			return nil, bad(tn, "record %q: environment list has an odd number of fields", key)
		}
		for i := 0; i < len(env); i += 2 {
			s.Env = append(s.Env, model.EnvVar{Key: env[i], Value: env[i+1]})
		}
		if s.Name != n {
			return nil, bad(tn, "record %q holds service %q", key, s.Name)
		}
		t.Services = append(t.Services, s)
	}
	// Lookups find only what "services" lists: a record it does not would
	// be checksummed, never read, and dropped by the next conversion.
	if err := v3OnlyRecords(r, tn, count, len(names)+4, func(k string) bool {
		n, ok := strings.CutPrefix(k, v3SvcPrefix)
		return k == v3KeyFormat || k == v3KeySum || k == v3KeyTree || k == v3KeyServices || ok && slices.Contains(names, n)
	}); err != nil {
		return nil, err
	}
	ir, icount, err := v3Open(fsys, in)
	if err != nil {
		return nil, err
	}
	if err := v3OnlyRecords(ir, in, icount, 3, func(k string) bool {
		return k == v3KeyFormat || k == v3KeySum || k == v3KeyIndex
	}); err != nil {
		return nil, err
	}
	d, err = v3Get(ir, in, v3KeyIndex)
	if err != nil {
		return nil, err
	}
	entries := d.uvarint()
	if entries > uint64(len(d.b)) {
		return nil, bad(in, "record %q: %d entries cannot fit in %d bytes", v3KeyIndex, entries, len(d.b))
	}
	for i := uint64(0); i < entries && d.err == nil; i++ {
		t.Index.Entries = append(t.Index.Entries, model.IndexEntry{Name: d.str(), Type: d.str(), Deps: d.list()})
	}
	if err := d.end(); err != nil {
		return nil, bad(in, "record %q: %v", v3KeyIndex, err)
	}
	return t, nil
}

// v3OnlyRecords refuses a database of count records unless it holds only
// the want records that its decoder has read, all of which expected accepts.
// Keys are unique (v3Open), so a count equal to want leaves room for no other
// record; only otherwise are the keys walked, to name the first unexpected
// one.
func v3OnlyRecords(r *cdb.Reader, name string, count, want int, expected func(string) bool) error {
	if count == want {
		return nil
	}
	err := r.ForEach(func(k, _ []byte) error {
		if !expected(string(k)) {
			return bad(name, "unexpected record %q", clip(string(k)))
		}
		return nil
	})
	if err == nil {
		err = bad(name, "%d records where %d are expected", count, want)
	}
	return err
}

func (v3) Peek(fsys fs.FS) (int, error) {
	b, err := readFile(fsys, "tree.cdb")
	if err != nil {
		return 0, err
	}
	r, err := cdb.Open(b)
	if err != nil {
		return 0, bad("tree.cdb", "%v", err)
	}
	v, ok, err := r.Get([]byte(v3KeyFormat))
	if err != nil || !ok {
		return 0, bad("tree.cdb", "no readable %s record", v3KeyFormat)
	}
	n, err := strconv.Atoi(string(v))
	if err != nil {
		return 0, bad("tree.cdb", "%s record %q is not a version number", v3KeyFormat, clip(string(v)))
	}
	return n, nil
}
