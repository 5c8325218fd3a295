package format

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"reflect"
	"strconv"
	"strings"

	"github.com/treeshift/treeshift/internal/model"
)

// v2 stores one JSON document per tree, and one for the compiled index, each
// behind a header line carrying the version and a SHA-256 of the document.
type v2 struct{}

func (v2) Version() int   { return 2 }
func (v2) Marker() string { return "tree.json" }

func (v2) indexFile() string        { return indexDir + "/index.json" }
func (v2) recordFile(string) string { return "tree.json" }
func (v2) recordRef(string) string  { return "in tree.json" }

type v2Tree struct {
	Name     string      `json:"name"`
	Allow    []string    `json:"allow"`
	Services []v2Service `json:"services"`
}

type v2Service struct {
	Name        string      `json:"name"`
	Type        string      `json:"type"`
	Description string      `json:"description"`
	Version     string      `json:"version"`
	User        []string    `json:"user"`
	Depends     []string    `json:"depends"`
	Contents    []string    `json:"contents"`
	Enabled     bool        `json:"enabled"`
	Source      string      `json:"source"`
	Digest      string      `json:"digest"`
	Start       v2Script    `json:"start"`
	Stop        v2Script    `json:"stop"`
	Env         [][2]string `json:"env"`
}

type v2Script struct {
	Build   string `json:"build"`
	Shebang string `json:"shebang"`
	Execute string `json:"execute"`
}

type v2Index struct {
	Entries []v2Entry `json:"entries"`
}

type v2Entry struct {
	Name string   `json:"name"`
	Type string   `json:"type"`
	Deps []string `json:"deps"`
}

const v2Magic = "treeshift-format"

func (v2) Encode(t *model.Tree) ([]File, error) {
	tb, err := v2Seal(v2TreeDoc(t))
	if err != nil {
		return nil, err
	}
	ib, err := v2Seal(v2IndexDoc(t))
	if err != nil {
		return nil, err
	}
	files := []File{
		{Name: "tree.json", Data: tb, Mode: 0o644},
		{Name: indexDir + "/index.json", Data: ib, Mode: 0o644},
	}
	if err := checkEncoded(files); err != nil {
		return nil, err
	}
	return files, nil
}

func v2TreeDoc(t *model.Tree) v2Tree {
	doc := v2Tree{Name: t.Name, Allow: nonNil(t.Allow), Services: []v2Service{}}
	for _, s := range t.Services {
		env := [][2]string{}
		for _, e := range s.Env {
			env = append(env, [2]string{e.Key, e.Value})
		}
		doc.Services = append(doc.Services, v2Service{
			Name: s.Name, Type: s.Type, Description: s.Description, Version: s.Version,
			User: nonNil(s.User), Depends: nonNil(s.Depends), Contents: nonNil(s.Contents),
			Enabled: s.Enabled, Source: s.Source, Digest: s.Digest,
			Start: v2Script(s.Start), Stop: v2Script(s.Stop), Env: env,
		})
	}
	return doc
}

func v2IndexDoc(t *model.Tree) v2Index {
	idx := v2Index{Entries: []v2Entry{}}
	for _, e := range t.Index.Entries {
		idx.Entries = append(idx.Entries, v2Entry{Name: e.Name, Type: e.Type, Deps: nonNil(e.Deps)})
	}
	return idx
}

// v2Header is the header line of a document whose body hashes to sum.
func v2Header(sum [sha256.Size]byte) string {
	return v2Magic + " 2 sha256:" + hex.EncodeToString(sum[:]) + "\n"
}

// v2Seal encodes doc behind its header line: "treeshift-format 2 sha256:HEX\n".
func v2Seal(doc any) ([]byte, error) {
	body, err := json.MarshalIndent(doc, "", "\t")
	if err != nil {
		return nil, err
	}
	body = append(body, '\n')
	return append([]byte(v2Header(sha256.Sum256(body))), body...), nil
}

// v2Open checks the header, checksum and encoding of name, decodes its
// document into doc, and returns the document's bytes.
func v2Open(fsys fs.FS, name string, doc any) ([]byte, error) {
	b, err := readFile(fsys, name)
	if err != nil {
		return nil, err
	}
	header, body, ok := bytes.Cut(b, []byte("\n"))
	if !ok {
		if len(b) == 0 {
			return nil, bad(name, "empty file")
		}
		return nil, bad(name, "truncated: no complete header line")
	}
	f := strings.Fields(string(header))
	if len(f) != 3 || f[0] != v2Magic || !strings.HasPrefix(f[2], "sha256:") {
		return nil, bad(name, "header %q is not \"%s VERSION sha256:HEX\"", clip(string(header)), v2Magic)
	}
	if f[1] != "2" {
		if _, err := strconv.Atoi(f[1]); err == nil {
			return nil, &UnknownVersionError{Name: name, Version: f[1]}
		}
		return nil, bad(name, "header version %q is not a number", clip(f[1]))
	}
	sum := sha256.Sum256(body)
	if got := hex.EncodeToString(sum[:]); got != f[2][len("sha256:"):] {
		return nil, bad(name, "checksum mismatch: header says %s, content hashes to sha256:%s (truncated or modified)", f[2], got)
	}
	if want := v2Header(sum); string(header)+"\n" != want {
		return nil, bad(name, "header %q is not as treeshift writes it, %q", clip(string(header)), strings.TrimSuffix(want, "\n"))
	}
	// encoding/json would replace a bad byte with U+FFFD without a word.
	if i := invalidUTF8(b); i >= 0 {
		return nil, bad(name, "invalid UTF-8 at byte %d (line %d)", i, bytes.Count(b[:i], []byte("\n"))+1)
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(doc); err != nil {
		if why := v2Explain(body, reflect.TypeOf(doc).Elem()); why != "" {
			return nil, bad(name, "%s", why)
		}
		return nil, bad(name, "bad document: %v", err)
	}
	if dec.More() {
		return nil, bad(name, "bad document: data after the end of the document")
	}
	return body, nil
}

// v2Canonical refuses body, the document of name that decoded to doc, unless
// it is byte for byte what treeshift writes for doc.
//
// encoding/json accepts more than the format: keys in any case (and any
// Unicode case folding: "ſource" is "source"), a key twice (the last wins),
// null for a list or a string, escapes, any spacing. Each would let one
// tree be written in many ways, which a checksum then vouches for, and some
// lose what the writer meant. Rather than catch each of these while
// decoding, the decoded tree is encoded again and compared: whatever
// encoding/json lets through, what does not encode back to itself is
// refused. v2Explain then says why, for the cases it recognises.
func v2Canonical(name string, body []byte, doc any) error {
	want, err := json.MarshalIndent(doc, "", "\t")
	if err != nil {
		return bad(name, "%v", err)
	}
	want = append(want, '\n')
	if bytes.Equal(body, want) {
		return nil
	}
	if why := v2Explain(body, reflect.TypeOf(doc)); why != "" {
		return bad(name, "%s", why)
	}
	return bad(name, "not as treeshift writes it: %s", firstDiff(body, want, 2))
}

// firstDiff describes the first line where got differs from want, numbering
// got's first line first.
func firstDiff(got, want []byte, first int) string {
	for n := first; ; n++ {
		g, grest, gok := bytes.Cut(got, []byte("\n"))
		w, wrest, wok := bytes.Cut(want, []byte("\n"))
		switch {
		case !bytes.Equal(g, w) || gok == wok && !gok:
			return fmt.Sprintf("line %d is %q, where treeshift writes %q", n, clip(string(g)), clip(string(w)))
		case !wok:
			return fmt.Sprintf("line %d is %q, after the end of what treeshift writes", n+1, clip(string(grest)))
		case !gok:
			return fmt.Sprintf("the document ends at line %d, where treeshift writes %q", n, clip(string(w)))
		}
		got, want = grest, wrest
	}
}

// v2Explain walks body's tokens against typ, the Go type it decodes into, and
// names the first thing treeshift would not have written: a key that is
// unknown, in another case or repeated, or null. It returns "" when it finds
// none of these (the caller then reports what it knows), including when the
// document is not even JSON of the right shape.
func v2Explain(body []byte, typ reflect.Type) string {
	dec := json.NewDecoder(bytes.NewReader(body))
	// lost is set when the tokens stop matching typ: the walk can no longer
	// tell where it is, and says nothing rather than something wrong.
	lost := false
	var walk func(t reflect.Type, at string) string
	walk = func(t reflect.Type, at string) string {
		where := func(msg string, args ...any) string {
			if at != "" {
				return at + ": " + fmt.Sprintf(msg, args...)
			}
			return fmt.Sprintf(msg, args...)
		}
		tok, err := dec.Token()
		if err != nil {
			lost = true
			return ""
		}
		if tok == nil {
			switch t.Kind() {
			case reflect.Struct:
				return where("null where an object belongs")
			case reflect.Slice, reflect.Array:
				return where("null where a list belongs")
			}
			return where("null where a %s belongs", t.Kind())
		}
		switch t.Kind() {
		case reflect.Struct:
			if tok != json.Delim('{') {
				lost = true
				return ""
			}
			fields := map[string]reflect.Type{}
			for i := range t.NumField() {
				f := t.Field(i)
				fields[strings.Split(f.Tag.Get("json"), ",")[0]] = f.Type
			}
			seen := map[string]bool{}
			for dec.More() {
				kt, err := dec.Token()
				key, ok := kt.(string)
				if err != nil || !ok {
					lost = true
					return ""
				}
				ft, known := fields[key]
				if !known {
					for k := range fields {
						if strings.EqualFold(k, key) {
							return where("key %q where the format has %q", key, k)
						}
					}
					return where("unknown key %q", key)
				}
				if seen[key] {
					return where("key %q repeated", key)
				}
				seen[key] = true
				sub := key
				if at != "" {
					sub = at + "." + key
				}
				if why := walk(ft, sub); why != "" || lost {
					return why
				}
			}
		case reflect.Slice, reflect.Array:
			if tok != json.Delim('[') {
				lost = true
				return ""
			}
			for i := 0; dec.More(); i++ {
				if why := walk(t.Elem(), fmt.Sprintf("%s[%d]", at, i)); why != "" || lost {
					return why
				}
			}
		default:
			if _, ok := tok.(json.Delim); ok {
				lost = true
			}
			return ""
		}
		// The closing delimiter.
		if _, err := dec.Token(); err != nil {
			lost = true
		}
		return ""
	}
	return walk(typ, "")
}

func (v2) Decode(fsys fs.FS) (*model.Tree, error) {
	var doc v2Tree
	body, err := v2Open(fsys, "tree.json", &doc)
	if err != nil {
		return nil, err
	}
	t := &model.Tree{Name: doc.Name, Allow: nilIfEmpty(doc.Allow)}
	for _, s := range doc.Services {
		var env []model.EnvVar
		for _, e := range s.Env {
			env = append(env, model.EnvVar{Key: e[0], Value: e[1]})
		}
		t.Services = append(t.Services, model.Service{
			Name: s.Name, Type: s.Type, Description: s.Description, Version: s.Version,
			User: nilIfEmpty(s.User), Depends: nilIfEmpty(s.Depends), Contents: nilIfEmpty(s.Contents),
			Enabled: s.Enabled, Source: s.Source, Digest: s.Digest,
			Start: model.Script(s.Start), Stop: model.Script(s.Stop), Env: env,
		})
	}
	if err := v2Canonical("tree.json", body, v2TreeDoc(t)); err != nil {
		return nil, err
	}
	var idx v2Index
	body, err = v2Open(fsys, indexDir+"/index.json", &idx)
	if err != nil {
		return nil, err
	}
	for _, e := range idx.Entries {
		t.Index.Entries = append(t.Index.Entries, model.IndexEntry{Name: e.Name, Type: e.Type, Deps: nilIfEmpty(e.Deps)})
	}
	if err := v2Canonical(indexDir+"/index.json", body, v2IndexDoc(t)); err != nil {
		return nil, err
	}
	return t, nil
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

func nilIfEmpty(s []string) []string {
	if len(s) == 0 {
		return nil
	}
	return s
}

func (v2) Peek(fsys fs.FS) (int, error) {
	f, err := fsys.Open("tree.json")
	if err != nil {
		return 0, bad("tree.json", "%v", unwrapFS(err))
	}
	defer f.Close()
	buf := make([]byte, 128)
	n, _ := io.ReadFull(f, buf)
	line, _, _ := strings.Cut(string(buf[:n]), "\n")
	fields := strings.Fields(line)
	if len(fields) < 2 || fields[0] != v2Magic {
		return 0, bad("tree.json", "header %q is not \"%s VERSION sha256:HEX\"", clip(line), v2Magic)
	}
	v, err := strconv.Atoi(fields[1])
	if err != nil {
		return 0, bad("tree.json", "header version %q is not a number", clip(fields[1]))
	}
	return v, nil
}
