package suggest

import "testing"

func TestCmd(t *testing.T) {
	for _, c := range []struct {
		p    Prefix
		args []string
		want string
	}{
		{Prefix{}, []string{"update"}, "treeshift update"},
		{Prefix{Root: "/", Live: "/run/treeshift"}, []string{"plan"}, "treeshift plan"},
		{Prefix{Root: "/mnt/new root"}, []string{"stop", "-t", "boot", "a", "b"}, "treeshift --root '/mnt/new root' stop -t boot a b"},
		{Prefix{Root: "/mnt", Live: "/run/other"}, []string{"init", "t"}, "treeshift --root /mnt -l /run/other init t"},
		{Prefix{Root: "/it's"}, []string{"update"}, `treeshift --root '/it'\''s' update`},
	} {
		if got := c.p.Cmd(c.args...); got != c.want {
			t.Errorf("%+v.Cmd(%q) = %q, want %q", c.p, c.args, got, c.want)
		}
	}
}
