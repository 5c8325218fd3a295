package model

import (
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
