package frontend

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/treeshift/treeshift/internal/model"
)

const ntpd = `# time daemon
[main]
@type = classic
@version = 0.0.1
@description = "ntpd daemon"
@user = ( root ntp )
@depends = ( syslogd mount-run )

[start]
@build = auto
@execute = (
    foreground { mkdir -p /run/ntpd }
    ntpd -d -f ${CONF}
)

[stop]
@build = custom
@shebang = /bin/sh
@execute = ( echo "stopped (really)" )

[environment]
CONF=/etc/ntpd.conf
EMPTY=
`

func TestParseFull(t *testing.T) {
	s, err := Parse("ntpd", "/etc/treeshift/service/ntpd", []byte(ntpd))
	if err != nil {
		t.Fatal(err)
	}
	if s.Type != model.Classic || s.Description != "ntpd daemon" || s.Version != "0.0.1" {
		t.Errorf("main section parsed as %+v", s)
	}
	if strings.Join(s.User, ",") != "root,ntp" || strings.Join(s.Depends, ",") != "syslogd,mount-run" {
		t.Errorf("lists parsed as user=%v depends=%v", s.User, s.Depends)
	}
	wantExec := "foreground { mkdir -p /run/ntpd }\n    ntpd -d -f ${CONF}"
	if s.Start.Execute != wantExec || s.Start.Build != "auto" {
		t.Errorf("start = %+v, want execute %q", s.Start, wantExec)
	}
	if s.Stop.Execute != `echo "stopped (really)"` || s.Stop.Shebang != "/bin/sh" {
		t.Errorf("stop = %+v", s.Stop)
	}
	if len(s.Env) != 2 || s.Env[0] != (model.EnvVar{Key: "CONF", Value: "/etc/ntpd.conf"}) || s.Env[1].Value != "" {
		t.Errorf("env = %+v", s.Env)
	}
	if !strings.HasPrefix(s.Digest, "sha256:") || len(s.Digest) != 7+64 || s.Source != "/etc/treeshift/service/ntpd" {
		t.Errorf("digest %q source %q", s.Digest, s.Source)
	}
}

func TestParseBundle(t *testing.T) {
	s, err := Parse("net", "net", []byte("[main]\n@type = bundle\n@version = 1.0.0\n@description = \"all\"\n@contents = ( a b )\n"))
	if err != nil {
		t.Fatal(err)
	}
	if s.Type != model.Bundle || strings.Join(s.Contents, " ") != "a b" {
		t.Errorf("bundle parsed as %+v", s)
	}
}

func TestParseErrorsNameFileAndLine(t *testing.T) {
	main := "[main]\n@type = longrun\n@version = 1.0.0\n@description = \"d\"\n@user = ( root )\n"
	start := "[start]\n@execute = ( run )\n"
	for _, tc := range []struct {
		name, data string
		line       int
		want       string
	}{
		{"a", "[main]\n@type = daemon\n", 2, `@type "daemon"`},
		{"a", "@type = longrun\n", 1, "before any section"},
		{"a", "[mian]\n", 1, "unknown section [mian]"},
		{"a", main + "@colour = red\n" + start, 6, "unknown key @colour"},
		{"a", main + "@type = oneshot\n" + start, 6, "key @type repeated"},
		{"a", main + start + "[main]\n", 8, "section [main] repeated"},
		{"a", main + "[start]\n@execute = ( run\n", 7, "never closed"},
		{"a", strings.Replace(main, "1.0.0", "1.0", 1) + start, 3, "three numbers"},
		{"a", main, 0, "no [start] section"},
		{"a", strings.Replace(main, "@user = ( root )\n", "", 1) + start, 1, "lacks @user"},
		{"a", main + "@depends = ( a )\n" + start, 6, "names the service itself"},
		{"a", main + "@depends = ( x/y )\n" + start, 6, `contains "/"`},
		{"a", main + "@depends = ( x..y )\n" + start, 6, `contains ".."`},
		{"a", main + "@depends = solo\n" + start, 6, "takes a list"},
		{"a", main + "[start]\n@build = custom\n@execute = ( run )\n", 6, "needs @shebang"},
		{"a", main + start + "[environment]\n1BAD=x\n", 9, "not KEY=VALUE"},
		{"a", "[main]\n@type = bundle\n@version = 1.0.0\n@description = \"d\"\n", 1, "needs @contents"},
		{".hidden", main + start, 0, "bad service name"},
	} {
		_, err := Parse(tc.name, "/svc/"+tc.name, []byte(tc.data))
		var fe *Error
		if !errors.As(err, &fe) {
			t.Errorf("%q: got %v, want a frontend.Error", tc.want, err)
			continue
		}
		if fe.File != "/svc/"+tc.name || fe.Line != tc.line || !strings.Contains(fe.Msg, tc.want) {
			t.Errorf("got %q (line %d), want line %d containing %q", err, fe.Line, tc.line, tc.want)
		}
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte(ntpd))
	f.Add([]byte("[main]\n@type = bundle\n@contents = ( a b )\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := Parse("svc", "svc", data)
		if err == nil {
			if err := (&model.Tree{Name: "t", Services: []model.Service{s}}).Validate(); err != nil {
				t.Fatalf("accepted a definition that makes an invalid record: %v", err)
			}
		}
	})
}

func TestChanged(t *testing.T) {
	const base = "[main]\n@type = longrun\n@description = \"svc\"\n@version = 1.0.0\n@user = ( root )\n[start]\n@execute = ( run )\n"
	old, err := Parse("svc", "/svc", []byte(base))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		def  string
		want []string
	}{
		{base, nil},
		{"# a comment\n" + base + "\n", nil},
		{strings.Replace(base, "1.0.0", "1.1.0", 1), []string{"@version"}},
		{strings.Replace(base, "( run )", "( run -v )", 1) + "[environment]\nA=1\n", []string{"[start]", "[environment]"}},
		{strings.Replace(base, "longrun", "classic", 1) + "[stop]\n@execute = ( halt )\n", []string{"@type", "[stop]"}},
		{strings.Replace(base, "( root )", "( root daemon )", 1), []string{"@user"}},
	} {
		cur, err := Parse("svc", "/svc", []byte(c.def))
		if err != nil {
			t.Fatal(err)
		}
		if got := Changed(old, cur); !slices.Equal(got, c.want) {
			t.Errorf("%q: changed %q, want %q", c.def, got, c.want)
		}
	}
}
