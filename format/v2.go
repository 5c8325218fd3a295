package format

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"io/fs"
	"strconv"
	"strings"

	"github.com/treeshift/treeshift/internal/model"
)

// v2 stores one JSON document per tree, and one for the compiled index, each
// behind a header line carrying the version and a SHA-256 of the document.
type v2 struct{}

func (v2) Version() int   { return 2 }
func (v2) Marker() string { return "tree.json" }

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
	idx := v2Index{Entries: []v2Entry{}}
	for _, e := range t.Index.Entries {
		idx.Entries = append(idx.Entries, v2Entry{Name: e.Name, Type: e.Type, Deps: nonNil(e.Deps)})
	}
	tb, err := v2Seal(doc)
	if err != nil {
		return nil, err
	}
	ib, err := v2Seal(idx)
	if err != nil {
		return nil, err
	}
	return []File{
		{Name: "tree.json", Data: tb, Mode: 0o644},
		{Name: "compiled/index.json", Data: ib, Mode: 0o644},
	}, nil
}

// v2Seal encodes doc behind its header line: "treeshift-format 2 sha256:HEX\n".
func v2Seal(doc any) ([]byte, error) {
	body, err := json.MarshalIndent(doc, "", "\t")
	if err != nil {
		return nil, err
	}
	body = append(body, '\n')
	sum := sha256.Sum256(body)
	return append([]byte(v2Magic+" 2 sha256:"+hex.EncodeToString(sum[:])+"\n"), body...), nil
}

// v2Open checks the header and checksum of name and decodes its document.
func v2Open(fsys fs.FS, name string, doc any) error {
	b, err := readFile(fsys, name)
	if err != nil {
		return err
	}
	header, body, ok := bytes.Cut(b, []byte("\n"))
	if !ok {
		if len(b) == 0 {
			return bad(name, "empty file")
		}
		return bad(name, "truncated: no complete header line")
	}
	f := strings.Fields(string(header))
	if len(f) != 3 || f[0] != v2Magic || !strings.HasPrefix(f[2], "sha256:") {
		return bad(name, "header %q is not \"%s VERSION sha256:HEX\"", clip(string(header)), v2Magic)
	}
	if f[1] != "2" {
		if _, err := strconv.Atoi(f[1]); err == nil {
			return &UnknownVersionError{Name: name, Version: f[1]}
		}
		return bad(name, "header version %q is not a number", clip(f[1]))
	}
	sum := sha256.Sum256(body)
	if got := hex.EncodeToString(sum[:]); got != f[2][len("sha256:"):] {
		return bad(name, "checksum mismatch: header says %s, content hashes to sha256:%s (truncated or modified)", f[2], got)
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(doc); err != nil {
		return bad(name, "bad document: %v", err)
	}
	if dec.More() {
		return bad(name, "bad document: data after the end of the document")
	}
	return nil
}

func (v2) Decode(fsys fs.FS) (*model.Tree, error) {
	var doc v2Tree
	if err := v2Open(fsys, "tree.json", &doc); err != nil {
		return nil, err
	}
	var idx v2Index
	if err := v2Open(fsys, "compiled/index.json", &idx); err != nil {
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
	for _, e := range idx.Entries {
		t.Index.Entries = append(t.Index.Entries, model.IndexEntry{Name: e.Name, Type: e.Type, Deps: nilIfEmpty(e.Deps)})
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
