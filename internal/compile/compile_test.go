package compile

import (
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/treeshift/treeshift/internal/model"
)

func tree(svcs ...model.Service) *model.Tree {
	t := &model.Tree{Name: "t"}
	for _, s := range svcs {
		s.Enabled = true
		if s.Type == "" {
			s.Type = model.Longrun
		}
		t.Put(s)
	}
	return t
}

func TestIndexOrder(t *testing.T) {
	tr := tree(
		model.Service{Name: "web", Depends: []string{"db", "net"}},
		model.Service{Name: "db", Depends: []string{"net"}},
		model.Service{Name: "net"},
		model.Service{Name: "all", Type: model.Bundle, Contents: []string{"web", "db"}},
		model.Service{Name: "zz"},
	)
	x, err := Index(tr)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range x.Entries {
		got = append(got, e.Name)
	}
	want := []string{"net", "db", "web", "all", "zz"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("order %v, want %v", got, want)
	}
	if e := x.Entry("all"); e == nil || !reflect.DeepEqual(e.Deps, []string{"db", "web"}) {
		t.Errorf("bundle entry %+v", e)
	}
}

func TestCycleNamed(t *testing.T) {
	tr := tree(
		model.Service{Name: "a", Depends: []string{"b"}},
		model.Service{Name: "b", Depends: []string{"c"}},
		model.Service{Name: "c", Depends: []string{"a"}},
	)
	_, err := Index(tr)
	var ce *CycleError
	if !errors.As(err, &ce) || err.Error() != "dependency cycle: a -> b -> c -> a" {
		t.Errorf("got %v", err)
	}
}

func TestMissingDependency(t *testing.T) {
	tr := tree(model.Service{Name: "a", Depends: []string{"ghost"}})
	_, err := Index(tr)
	if err == nil || !strings.Contains(err.Error(), "a depends on ghost") {
		t.Errorf("got %v", err)
	}
}

func TestDisabledLeftOut(t *testing.T) {
	tr := tree(model.Service{Name: "a"})
	tr.Put(model.Service{Name: "b", Type: model.Longrun})
	x, _ := Index(tr)
	if len(x.Entries) != 1 || x.Entries[0].Name != "a" {
		t.Errorf("index %+v includes a disabled service", x)
	}
	if files := ServiceDirs(tr); len(files) != 2 || files[0].Name != "compiled/servicedirs/a/type" {
		t.Errorf("service dirs %+v", files)
	}
}

func TestServiceDirs(t *testing.T) {
	tr := tree(
		model.Service{Name: "d", Start: model.Script{Build: "auto", Execute: "d -f"}, Stop: model.Script{Build: "custom", Shebang: "/bin/sh", Execute: "echo bye"},
			Env: []model.EnvVar{{Key: "K", Value: "v"}}},
		model.Service{Name: "o", Type: model.Oneshot, Start: model.Script{Build: "auto", Execute: "true"}},
		model.Service{Name: "b", Type: model.Bundle, Contents: []string{"d"}},
	)
	got := map[string]string{}
	for _, f := range ServiceDirs(tr) {
		got[f.Name] = string(f.Data)
	}
	want := map[string]string{
		"compiled/servicedirs/d/type":   "longrun\n",
		"compiled/servicedirs/d/run":    "#!/usr/bin/execlineb -P\nd -f\n",
		"compiled/servicedirs/d/finish": "#!/bin/sh\necho bye\n",
		"compiled/servicedirs/d/env/K":  "v\n",
		"compiled/servicedirs/o/type":   "oneshot\n",
		"compiled/servicedirs/o/up":     "#!/usr/bin/execlineb -P\ntrue\n",
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %v\nwant %v", got, want)
	}
}
