package model

import (
	"errors"
	"strings"
	"testing"
)

func TestCheckName(t *testing.T) {
	for _, ok := range []string{"a", "boot", "net.d", "user@host", "a-b_c+d:e", strings.Repeat("x", MaxNameLen)} {
		if err := CheckName(ok); err != nil {
			t.Errorf("CheckName(%q) = %v", ok, err)
		}
	}
	for bad, want := range map[string]string{
		"":                                "empty name",
		".x":                              "starts with a dot",
		"..":                              "starts with a dot",
		"a..b":                            `contains ".."`,
		"a/b":                             `contains "/"`,
		"a b":                             `contains ' '`,
		"a,b":                             `contains ','`,
		"a\nb":                            `contains '\n'`,
		strings.Repeat("x", MaxNameLen+1): "longer than 64 bytes",
	} {
		if err := CheckName(bad); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("CheckName(%q) = %v, want %q", bad, err, want)
		}
	}
}

func TestValidate(t *testing.T) {
	good := func() *Tree {
		return &Tree{Name: "t", Allow: []string{"a", "b"}, Services: []Service{
			{Name: "x", Type: Longrun, Enabled: true},
			{Name: "y", Type: Bundle, Enabled: true, Contents: []string{"x"}},
		}, Index: Index{Entries: []IndexEntry{{Name: "x", Type: Longrun}, {Name: "y", Type: Bundle, Deps: []string{"x"}}}}}
	}
	if err := good().Validate(); err != nil {
		t.Fatal(err)
	}
	for want, mutate := range map[string]func(*Tree){
		"allowed users are not sorted":            func(t *Tree) { t.Allow = []string{"b", "a"} },
		`service "x" is out of order or repeated`: func(t *Tree) { t.Services[1].Name = "x" },
		`unknown type "daemon"`:                   func(t *Tree) { t.Services[0].Type = "daemon" },
		"not an enabled service":                  func(t *Tree) { t.Services[0].Enabled = false },
		`places "y" before its dependency "x"`:    func(t *Tree) { t.Index.Entries = t.Index.Entries[1:] },
		"tree name":                               func(t *Tree) { t.Name = "../t" },
	} {
		tr := good()
		mutate(tr)
		if err := tr.Validate(); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("got %v, want %q", err, want)
		}
	}
}

func TestPutKeepsOrder(t *testing.T) {
	tr := &Tree{}
	for _, n := range []string{"m", "a", "z", "m"} {
		tr.Put(Service{Name: n, Type: Longrun})
	}
	var names []string
	for _, s := range tr.Services {
		names = append(names, s.Name)
	}
	if strings.Join(names, ",") != "a,m,z" || tr.Service("z") == nil || tr.Service("q") != nil {
		t.Errorf("services %v", names)
	}
}

// A name is reported as the characters it holds: a byte-wise message would
// show the first byte of 'é' as 'Ã'.
func TestCheckNameQuotesCharacters(t *testing.T) {
	for name, want := range map[string]string{
		"café":     `name "café" contains 'é': only letters, digits and ._@-+: are allowed`,
		"a\u00a0b": `name "a\u00a0b" contains '\u00a0': only letters, digits and ._@-+: are allowed`,
		"caf\xe9":  `name "caf\xe9" contains the byte 0xe9, which is not UTF-8`,
	} {
		if err := CheckName(name); err == nil || err.Error() != want {
			t.Errorf("CheckName(%q) = %v, want %s", name, err, want)
		}
	}
}

// Validate says which part of the tree breaks an invariant, so that a
// reader can name the file holding it.
func TestValidateNamesThePart(t *testing.T) {
	good := func() *Tree {
		return &Tree{Name: "t", Services: []Service{
			{Name: "x", Type: Longrun, Enabled: true, User: []string{"root"}},
			{Name: "y", Type: Bundle, Enabled: true, Contents: []string{"x"}},
		}, Index: Index{Entries: []IndexEntry{{Name: "x", Type: Longrun}, {Name: "y", Type: Bundle, Deps: []string{"x"}}}}}
	}
	for _, tc := range []struct {
		mutate  func(*Tree)
		service string
		index   bool
		want    string
	}{
		{func(t *Tree) { t.Services[0].Type = "daemon" }, "x", false, `service "x" has unknown type "daemon"`},
		{func(t *Tree) { t.Services[0].Description = "bad \xff byte" }, "x", false, `service "x": description is not valid UTF-8`},
		{func(t *Tree) { t.Services[0].Env = []EnvVar{{"K", "\xc3"}} }, "x", false, `service "x": value of environment variable "K" is not valid UTF-8`},
		{func(t *Tree) { t.Services[0].Start.Execute = "\xed\xa0\x80" }, "x", false, `service "x": start.execute is not valid UTF-8`},
		{func(t *Tree) { t.Services[0].User = []string{"a,b"} }, "x", false, `service "x": user: name "a,b" contains ',': only letters, digits and ._@-+: are allowed`},
		{func(t *Tree) { t.Services[1].Depends = []string{"x"} }, "y", false, `bundle "y" has depends: a bundle lists its members in contents`},
		{func(t *Tree) { t.Services[0].Contents = []string{"y"} }, "x", false, `service "x" is a longrun, not a bundle, but has contents`},
		{func(t *Tree) { t.Services[1].Enabled = false }, "", true, `index names "y", which is not an enabled service of the tree`},
		{func(t *Tree) { t.Index.Entries = t.Index.Entries[1:] }, "", true, `index places "y" before its dependency "x"`},
		{func(t *Tree) { t.Services[1].Name = "a" }, "", false, `service "a" is out of order or repeated`},
		{func(t *Tree) { t.Name = "café" }, "", false, `tree name: name "café" contains 'é': only letters, digits and ._@-+: are allowed`},
	} {
		tr := good()
		tc.mutate(tr)
		err := tr.Validate()
		var ie *InvalidError
		if !errors.As(err, &ie) || err.Error() != tc.want || ie.Service != tc.service || ie.Index != tc.index {
			t.Errorf("got %#v (%v), want %q in service %q, index %v", err, err, tc.want, tc.service, tc.index)
		}
	}
	if err := good().Validate(); err != nil {
		t.Fatal(err)
	}
}
