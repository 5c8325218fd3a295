// Package frontend parses service definitions written in the 66 frontend file
// syntax into resolve records. It accepts a documented subset (docs/FRONTEND.md)
// and rejects everything outside it with the file and line, so that a typo
// never silently becomes a default.
package frontend

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"regexp"
	"slices"
	"strings"

	"github.com/treeshift/treeshift/internal/model"
)

// Error is a syntax or content error at a line of a definition file.
type Error struct {
	File string
	Line int // 0 when the error concerns the whole file
	Msg  string
}

func (e *Error) Error() string {
	if e.Line == 0 {
		return fmt.Sprintf("%s: %s", e.File, e.Msg)
	}
	return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Msg)
}

var (
	versionRE = regexp.MustCompile(`^[0-9]+\.[0-9]+\.[0-9]+$`)
	envKeyRE  = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
)

// keys lists the keys each section accepts, and whether the value is a list.
var keys = map[string]map[string]bool{
	"main":  {"@type": false, "@description": false, "@version": false, "@user": true, "@depends": true, "@contents": true},
	"start": {"@build": false, "@shebang": false, "@execute": false},
	"stop":  {"@build": false, "@shebang": false, "@execute": false},
}

// Parse parses the definition of service name read from file (a path used in
// messages and recorded as the record's Source). Enabled is left false.
func Parse(name, file string, data []byte) (model.Service, error) {
	fail := func(line int, format string, args ...any) (model.Service, error) {
		return model.Service{}, &Error{File: file, Line: line, Msg: fmt.Sprintf(format, args...)}
	}
	if err := model.CheckName(name); err != nil {
		return fail(0, "bad service name: %v", err)
	}
	lines := strings.Split(string(data), "\n")
	section := ""
	seenSection := map[string]int{}
	values := map[string]map[string]string{}
	where := map[string]int{} // "section.key" -> line
	svc := model.Service{Name: name, Source: file}
	for i := 0; i < len(lines); i++ {
		ln := i + 1
		line := strings.TrimSpace(lines[i])
		if line == "" || line[0] == '#' {
			continue
		}
		if line[0] == '[' {
			if !strings.HasSuffix(line, "]") {
				return fail(ln, "section header %q lacks its closing ]", line)
			}
			section = line[1 : len(line)-1]
			if _, ok := keys[section]; !ok && section != "environment" {
				return fail(ln, "unknown section [%s]: expected [main], [start], [stop] or [environment]", section)
			}
			if prev, ok := seenSection[section]; ok {
				return fail(ln, "section [%s] repeated (first at line %d)", section, prev)
			}
			seenSection[section] = ln
			values[section] = map[string]string{}
			continue
		}
		if section == "" {
			return fail(ln, "%q before any section: a definition starts with [main]", line)
		}
		if section == "environment" {
			k, v, ok := strings.Cut(line, "=")
			k = strings.TrimSpace(k)
			if !ok || !envKeyRE.MatchString(k) {
				return fail(ln, "environment line %q is not KEY=VALUE", line)
			}
			for _, e := range svc.Env {
				if e.Key == k {
					return fail(ln, "environment variable %s set twice", k)
				}
			}
			svc.Env = append(svc.Env, model.EnvVar{Key: k, Value: strings.TrimSpace(v)})
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		k, v = strings.TrimSpace(k), strings.TrimSpace(v)
		if !ok || !strings.HasPrefix(k, "@") {
			return fail(ln, "expected \"@key = value\", found %q", line)
		}
		isList, known := keys[section][k]
		if !known {
			return fail(ln, "unknown key %s in section [%s]", k, section)
		}
		if prev, dup := where[section+"."+k]; dup {
			return fail(ln, "key %s repeated in section [%s] (first at line %d)", k, section, prev)
		}
		where[section+"."+k] = ln
		switch {
		case strings.HasPrefix(v, "("):
			// A parenthesised value may span lines; parentheses nest, so
			// execline blocks and shell subshells survive intact.
			text, end, err := paren(lines, i, v)
			if err != nil {
				return fail(ln, "%s: %v", k, err)
			}
			v, i = text, end
		case isList:
			return fail(ln, "%s takes a list in parentheses, e.g. %s = ( a b )", k, k)
		case strings.HasPrefix(v, "\""):
			if len(v) < 2 || !strings.HasSuffix(v, "\"") {
				return fail(ln, "%s: unterminated quoted string", k)
			}
			v = v[1 : len(v)-1]
		}
		values[section][k] = v
	}

	m, ok := values["main"]
	if !ok {
		return fail(0, "no [main] section")
	}
	need := func(sec, k string) (string, error) {
		v, ok := values[sec][k]
		if !ok || v == "" {
			line := seenSection[sec]
			return "", &Error{File: file, Line: line, Msg: fmt.Sprintf("section [%s] lacks %s", sec, k)}
		}
		return v, nil
	}
	var err error
	if svc.Type, err = need("main", "@type"); err != nil {
		return model.Service{}, err
	}
	switch svc.Type {
	case model.Classic, model.Longrun, model.Oneshot, model.Bundle:
	default:
		return fail(where["main.@type"], "@type %q: expected classic, longrun, oneshot or bundle", svc.Type)
	}
	if svc.Description, err = need("main", "@description"); err != nil {
		return model.Service{}, err
	}
	if svc.Version, err = need("main", "@version"); err != nil {
		return model.Service{}, err
	}
	if !versionRE.MatchString(svc.Version) {
		return fail(where["main.@version"], "@version %q: expected three numbers, x.y.z", svc.Version)
	}
	svc.User = strings.Fields(m["@user"])
	svc.Depends = strings.Fields(m["@depends"])
	svc.Contents = strings.Fields(m["@contents"])
	for _, f := range []struct {
		key   string
		names []string
	}{{"@user", svc.User}, {"@depends", svc.Depends}, {"@contents", svc.Contents}} {
		for j, n := range f.names {
			if err := model.CheckName(n); err != nil {
				return fail(where["main."+f.key], "%s: %v", f.key, err)
			}
			if slices.Contains(f.names[:j], n) {
				return fail(where["main."+f.key], "%s names %q twice", f.key, n)
			}
			if n == name && f.key != "@user" {
				return fail(where["main."+f.key], "%s names the service itself", f.key)
			}
		}
	}
	if svc.Type == model.Bundle {
		if len(svc.Contents) == 0 {
			return fail(seenSection["main"], "a bundle needs @contents = ( ... )")
		}
		for _, sec := range []string{"start", "stop", "environment"} {
			if ln, ok := seenSection[sec]; ok {
				return fail(ln, "a bundle has no [%s] section", sec)
			}
		}
		if len(svc.Depends) > 0 {
			return fail(where["main.@depends"], "a bundle has no @depends: list its members in @contents")
		}
	} else {
		if len(svc.Contents) > 0 {
			return fail(where["main.@contents"], "only a bundle has @contents")
		}
		if len(svc.User) == 0 {
			return fail(seenSection["main"], "section [main] lacks @user")
		}
		if _, ok := values["start"]; !ok {
			return fail(0, "no [start] section: a %s service needs @execute", svc.Type)
		}
		for _, sec := range []string{"start", "stop"} {
			if _, ok := values[sec]; !ok {
				continue
			}
			s := model.Script{Build: values[sec]["@build"], Shebang: values[sec]["@shebang"]}
			if s.Execute, err = need(sec, "@execute"); err != nil {
				return model.Service{}, err
			}
			switch s.Build {
			case "":
				s.Build = "auto"
			case "auto", "custom":
			default:
				return fail(where[sec+".@build"], "@build %q: expected auto or custom", s.Build)
			}
			if s.Build == "custom" && s.Shebang == "" {
				return fail(seenSection[sec], "@build = custom needs @shebang")
			}
			if s.Build == "auto" && s.Shebang != "" {
				return fail(where[sec+".@shebang"], "@shebang only goes with @build = custom")
			}
			if sec == "start" {
				svc.Start = s
			} else {
				svc.Stop = s
			}
		}
	}
	sum := sha256.Sum256(data)
	svc.Digest = "sha256:" + hex.EncodeToString(sum[:])
	return svc, nil
}

// paren returns the text inside the balanced parentheses that open at first
// (the remainder of lines[start] after "="), and the index of the line where
// they close.
func paren(lines []string, start int, first string) (string, int, error) {
	depth := 0
	var b strings.Builder
	text := first
	for i := start; i < len(lines); i++ {
		if i > start {
			text = lines[i]
			b.WriteByte('\n')
		}
		for j := 0; j < len(text); j++ {
			c := text[j]
			switch c {
			case '(':
				depth++
				if depth == 1 && i == start && j == 0 {
					continue
				}
			case ')':
				depth--
				if depth == 0 {
					if rest := strings.TrimSpace(text[j+1:]); rest != "" {
						return "", 0, fmt.Errorf("text %q after the closing parenthesis", rest)
					}
					return strings.TrimSpace(b.String()), i, nil
				}
			}
			b.WriteByte(c)
		}
	}
	return "", 0, fmt.Errorf("opening parenthesis never closed")
}
