package format

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"slices"
	"strconv"
	"strings"

	"github.com/treeshift/treeshift/internal/model"
)

// v1 is the line-based text format: a meta file, one resolve file per service
// and a text index, each a list of key=value lines starting with format=1
// and ending with an end= trailer.
//
// With legacy set it is version "" (0): the same files as written before
// records stated their version — no format=1 header, no trailer, and no
// environment, which those records could not hold. Such trees are read for
// what they are; without a trailer, a record cut at a line boundary cannot
// be told from a short one, which is why the shipped directives move a
// legacy tree only when nothing uses it.
type v1 struct{ legacy bool }

func (c v1) Version() int {
	if c.legacy {
		return 0
	}
	return 1
}

func (v1) Marker() string { return "meta" }

func (v1) indexFile() string            { return indexDir + "/index" }
func (v1) recordFile(svc string) string { return v1RecordDir + "/" + svc }
func (v1) recordRef(svc string) string  { return v1RecordDir + "/" + svc }

const v1Header = "format=1"

// v1Keys lists, in file order, the keys of a v1 resolve file; env repeats.
var v1Keys = []string{"name", "type", "description", "version", "user", "depends", "contents", "enabled",
	"source", "digest", "start.build", "start.shebang", "start.execute", "stop.build", "stop.shebang", "stop.execute"}

func (c v1) Encode(t *model.Tree) ([]File, error) {
	var files []File
	var b strings.Builder
	kv := func(k, v string) { b.WriteString(k + "=" + escape(v) + "\n") }
	header := func() {
		if !c.legacy {
			b.WriteString(v1Header + "\n")
		}
	}
	end := func() []byte {
		if c.legacy {
			return []byte(b.String())
		}
		return v1End(&b)
	}
	header()
	kv("name", t.Name)
	kv("allow", strings.Join(t.Allow, ","))
	names := make([]string, len(t.Services))
	for i, s := range t.Services {
		names[i] = s.Name
	}
	kv("services", strings.Join(names, ","))
	files = append(files, File{Name: "meta", Data: end(), Mode: 0o644})
	for _, s := range t.Services {
		if c.legacy && len(s.Env) > 0 {
			return nil, fmt.Errorf("service %s has an [environment], which format \"\" cannot hold", s.Name)
		}
		b.Reset()
		header()
		vals := []string{s.Name, s.Type, s.Description, s.Version, strings.Join(s.User, ","), strings.Join(s.Depends, ","),
			strings.Join(s.Contents, ","), strconv.FormatBool(s.Enabled), s.Source, s.Digest,
			s.Start.Build, s.Start.Shebang, s.Start.Execute, s.Stop.Build, s.Stop.Shebang, s.Stop.Execute}
		for i, k := range v1Keys {
			kv(k, vals[i])
		}
		for _, e := range s.Env {
			kv("env", e.Key+"="+e.Value)
		}
		files = append(files, File{Name: v1RecordDir + "/" + s.Name, Data: end(), Mode: 0o644})
	}
	b.Reset()
	header()
	for _, e := range t.Index.Entries {
		deps := strings.Join(e.Deps, ",")
		if deps == "" {
			deps = "-"
		}
		kv("entry", e.Name+" "+e.Type+" "+deps)
	}
	files = append(files, File{Name: indexDir + "/index", Data: end(), Mode: 0o644})
	if err := checkEncoded(files); err != nil {
		return nil, err
	}
	return files, nil
}

// v1End appends the trailer that makes truncation at a line boundary visible:
// "end=N", N counting the lines between the header and the trailer.
func v1End(b *strings.Builder) []byte {
	n := strings.Count(b.String(), "\n") - 1
	b.WriteString("end=" + strconv.Itoa(n) + "\n")
	return []byte(b.String())
}

var (
	v1MetaKeys    = []string{"name", "allow", "services"}
	v1ResolveKeys = append(slices.Clone(v1Keys), "env")
	v1IndexKeys   = []string{"entry"}
)

func (c v1) Decode(fsys fs.FS) (*model.Tree, error) {
	meta, err := v1Read(fsys, "meta", v1MetaKeys, c.legacy)
	if err != nil {
		return nil, err
	}
	t := &model.Tree{Name: meta.one("name"), Allow: list(meta.one("allow"))}
	listed := list(meta.one("services"))
	isListed := make(map[string]bool, len(listed))
	for _, svc := range listed {
		// Checked before the name becomes a path: "../meta" would read
		// another file as a record.
		if err := model.CheckName(svc); err != nil {
			return nil, bad("meta", "services: %v", err)
		}
		isListed[svc] = true
	}
	// A resolve file that meta does not list is as wrong as a missing one:
	// either means the tree was changed behind treeshift's back. The
	// directory listing also says what each entry is and its size, so a
	// record that is not a regular file (a FIFO would block) or is too
	// large is refused without opening it, and so are records too large
	// together, before any is read.
	if entries, err := fs.ReadDir(fsys, v1RecordDir); err == nil {
		var total int64
		for _, de := range entries {
			name := path.Join(v1RecordDir, de.Name())
			if !isListed[de.Name()] {
				return nil, bad(name, "not listed in meta's services=")
			}
			size, err := checkEntry(name, de)
			if err != nil {
				return nil, err
			}
			total += size
		}
		if err := checkResolveTotal(total, len(entries)); err != nil {
			return nil, err
		}
	} else if len(listed) > 0 || !errors.Is(err, fs.ErrNotExist) {
		return nil, bad(v1RecordDir, "%v", unwrapFS(err))
	}
	if len(listed) > 0 {
		t.Services = make([]model.Service, 0, len(listed))
	}
	for _, svc := range listed {
		name := path.Join(v1RecordDir, svc)
		b, err := readChecked(fsys, name)
		if err != nil {
			return nil, err
		}
		parse := v1Parse
		if c.legacy {
			parse = v1ParseLegacy
		}
		r, err := parse(name, b, v1ResolveKeys)
		if err != nil {
			return nil, err
		}
		enabled, err := strconv.ParseBool(r.one("enabled"))
		if err != nil {
			return nil, bad(name, "enabled=%q is not true or false", r.one("enabled"))
		}
		s := model.Service{
			Name: r.one("name"), Type: r.one("type"), Description: r.one("description"), Version: r.one("version"),
			User: list(r.one("user")), Depends: list(r.one("depends")), Contents: list(r.one("contents")),
			Enabled: enabled, Source: r.one("source"), Digest: r.one("digest"),
			Start: model.Script{Build: r.one("start.build"), Shebang: r.one("start.shebang"), Execute: r.one("start.execute")},
			Stop:  model.Script{Build: r.one("stop.build"), Shebang: r.one("stop.shebang"), Execute: r.one("stop.execute")},
		}
		for _, e := range r.all("env") {
			k, v, ok := strings.Cut(e, "=")
			if !ok {
				return nil, bad(name, "env=%q is not KEY=VALUE", e)
			}
			s.Env = append(s.Env, model.EnvVar{Key: k, Value: v})
		}
		if s.Name != svc {
			return nil, bad(name, "records service %q under the name %q", s.Name, svc)
		}
		t.Services = append(t.Services, s)
	}
	idx, err := v1Read(fsys, indexDir+"/index", v1IndexKeys, c.legacy)
	if err != nil {
		return nil, err
	}
	for _, e := range idx.all("entry") {
		f := strings.Split(e, " ")
		if len(f) != 3 {
			return nil, bad(indexDir+"/index", "entry=%q is not \"NAME TYPE DEPS\"", e)
		}
		deps := []string(nil)
		if f[2] != "-" {
			deps = list(f[2])
		}
		t.Index.Entries = append(t.Index.Entries, model.IndexEntry{Name: f[0], Type: f[1], Deps: deps})
	}
	return t, nil
}

// v1Record is a decoded key=value file: keys in order with their values.
type v1Record struct {
	keys, vals []string
}

func (r *v1Record) one(k string) string {
	for i, kk := range r.keys {
		if kk == k {
			return r.vals[i]
		}
	}
	return ""
}

func (r *v1Record) all(k string) []string {
	var out []string
	for i, kk := range r.keys {
		if kk == k {
			out = append(out, r.vals[i])
		}
	}
	return out
}

// v1Read reads and parses the v1 file name, whose keys are keys.
func v1Read(fsys fs.FS, name string, keys []string, legacy bool) (*v1Record, error) {
	b, err := readFile(fsys, name)
	if err != nil {
		return nil, err
	}
	if legacy {
		return v1ParseLegacy(name, b, keys)
	}
	return v1Parse(name, b, keys)
}

// v1ParseLegacy parses an unstamped file: v1's lines without the header and
// the trailer, and no env.
func v1ParseLegacy(name string, b []byte, keys []string) (*v1Record, error) {
	// An empty file is a file of no lines (an empty index); one whose keys
	// are required is refused for the missing keys.
	if len(b) > 0 && b[len(b)-1] != '\n' {
		return nil, bad(name, "truncated: the last line has no newline")
	}
	if bytes.HasPrefix(b, []byte("format=")) {
		return nil, bad(name, "line 1: a format= header in a tree of format \"\"")
	}
	keys = slices.DeleteFunc(slices.Clone(keys), func(k string) bool { return k == "env" })
	lines := bytes.Count(b, []byte("\n"))
	stamped := append(append([]byte(v1Header+"\n"), b...), "end="+strconv.Itoa(lines)+"\n"...)
	r, err := v1Parse(name, stamped, keys)
	var fe *FileError
	if errors.As(err, &fe) {
		// The lines are numbered as in the file, which has no header.
		fe.Msg = renumber(fe.Msg)
	}
	return r, err
}

// renumber turns "line N" of a message about a stamped file into "line N-1".
func renumber(msg string) string {
	var out strings.Builder
	for {
		i := strings.Index(msg, "line ")
		if i < 0 {
			return out.String() + msg
		}
		j := i + len("line ")
		k := j
		for k < len(msg) && msg[k] >= '0' && msg[k] <= '9' {
			k++
		}
		n, err := strconv.Atoi(msg[j:k])
		out.WriteString(msg[:j])
		if err == nil {
			out.WriteString(strconv.Itoa(n - 1))
		} else {
			out.WriteString(msg[j:k])
		}
		msg = msg[k:]
	}
}

// v1Parse parses b, the v1 file name, whose keys are keys. Only "env" and
// "entry" may repeat; every other key must appear exactly once.
func v1Parse(name string, b []byte, keys []string) (*v1Record, error) {
	if len(b) == 0 {
		return nil, bad(name, "empty file")
	}
	if b[len(b)-1] != '\n' {
		return nil, bad(name, "truncated: the last line has no newline")
	}
	text := string(b[:len(b)-1])
	lines := strings.Count(text, "\n") + 1
	first, body, _ := strings.Cut(text, "\n")
	if k, v, _ := strings.Cut(first, "="); k != "format" {
		return nil, bad(name, "line 1: expected format=1, found %q", clip(first))
	} else if v != "1" {
		if _, err := strconv.Atoi(v); err == nil {
			return nil, &UnknownVersionError{Name: name, Version: v}
		}
		return nil, bad(name, "line 1: format=%q is not a version number", clip(v))
	}
	last := text[strings.LastIndexByte(text, '\n')+1:]
	if want := "end=" + strconv.Itoa(lines-2); lines < 2 || last != want {
		if strings.HasPrefix(last, "end=") {
			return nil, bad(name, "has %d records but its trailer says %s (truncated or edited)", lines-2, clip(last))
		}
		return nil, bad(name, "truncated: the last line is %q, not the end= trailer", clip(last))
	}
	// Every value is text: a byte that is not UTF-8 is damage, and would
	// otherwise be carried into another format, to fail a later check that
	// can no longer say which file it came from.
	if i := invalidUTF8(b); i >= 0 {
		return nil, bad(name, "invalid UTF-8 at byte %d (line %d)", i, bytes.Count(b[:i], []byte("\n"))+1)
	}
	r := &v1Record{keys: make([]string, 0, lines-2), vals: make([]string, 0, lines-2)}
	// seenAt holds the line of each key's first appearance. Every key list of
	// the format fits buf, so a record costs no allocation for it; a longer
	// list still works, on the heap.
	var buf [32]int
	seenAt := append(buf[:0], make([]int, len(keys))...)
	for n := 2; n < lines; n++ {
		var line string
		line, body, _ = strings.Cut(body, "\n")
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			return nil, bad(name, "line %d: %q is not key=value", n, clip(line))
		}
		ki := slices.Index(keys, k)
		if ki < 0 {
			return nil, bad(name, "line %d: unknown key %q", n, clip(k))
		}
		if prev := seenAt[ki]; prev != 0 && k != "env" && k != "entry" {
			return nil, bad(name, "line %d: key %q repeated (first at line %d)", n, k, prev)
		} else if prev == 0 {
			seenAt[ki] = n
		}
		uv, err := unescape(v)
		if err != nil {
			return nil, bad(name, "line %d: %v", n, err)
		}
		r.keys = append(r.keys, keys[ki])
		r.vals = append(r.vals, uv)
	}
	for i, k := range keys {
		if seenAt[i] == 0 && k != "env" && k != "entry" {
			return nil, bad(name, "missing key %q", k)
		}
	}
	return r, nil
}

// escape makes a value fit on one line: backslash and newline are escaped.
func escape(s string) string {
	if !strings.ContainsAny(s, "\\\n") {
		return s
	}
	s = strings.ReplaceAll(s, "\\", "\\\\")
	return strings.ReplaceAll(s, "\n", "\\n")
}

func unescape(s string) (string, error) {
	if !strings.Contains(s, "\\") {
		return s, nil
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '\\' {
			b.WriteByte(s[i])
			continue
		}
		if i+1 == len(s) {
			return "", fmt.Errorf("value ends in a lone backslash")
		}
		i++
		switch s[i] {
		case '\\':
			b.WriteByte('\\')
		case 'n':
			b.WriteByte('\n')
		default:
			return "", fmt.Errorf("unknown escape \\%c", s[i])
		}
	}
	return b.String(), nil
}

func list(s string) []string {
	if s == "" {
		return nil
	}
	return strings.Split(s, ",")
}

// clip shortens garbage before quoting it in a message.
func clip(s string) string {
	if len(s) > 40 {
		return s[:40] + "..."
	}
	return s
}

func (c v1) Peek(fsys fs.FS) (int, error) {
	line, err := metaLine(fsys)
	if err != nil {
		return 0, err
	}
	if c.legacy {
		if strings.HasPrefix(line, "format=") {
			return 0, bad("meta", "line 1: a format= header in a tree of format \"\"")
		}
		return 0, nil
	}
	v, err := strconv.Atoi(strings.TrimPrefix(line, "format="))
	if !strings.HasPrefix(line, "format=") || err != nil {
		return 0, bad("meta", "line 1: expected format=N, found %q", clip(line))
	}
	return v, nil
}

// metaLine returns the first line of meta (or of its first 32 bytes): what
// tells an unstamped tree from a stamped one.
func metaLine(fsys fs.FS) (string, error) {
	// Opened only once the listing shows a regular file within its limit:
	// opening follows a link, and blocks on a FIFO.
	entries, err := fs.ReadDir(fsys, ".")
	if err != nil {
		return "", bad(".", "%v", unwrapFS(err))
	}
	for _, de := range entries {
		if de.Name() == "meta" {
			if _, err := checkEntry("meta", de); err != nil {
				return "", err
			}
		}
	}
	f, err := fsys.Open("meta")
	if err != nil {
		return "", bad("meta", "%v", unwrapFS(err))
	}
	defer f.Close()
	buf := make([]byte, 32)
	n, _ := io.ReadFull(f, buf)
	line, _, _ := strings.Cut(string(buf[:n]), "\n")
	return line, nil
}
