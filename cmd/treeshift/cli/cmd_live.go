package cli

import "github.com/treeshift/treeshift/migrate"

// InitCmd is `init`.
type InitCmd struct {
	Name string `arg:"" help:"The tree to make live."`
}

func (c *InitCmd) Run(e *env) error {
	return e.locked([]string{c.Name}, func(eng *migrate.Engine) error { return eng.Init(c.Name) })
}

// UninitCmd is `uninit`.
type UninitCmd struct {
	Name string `arg:"" help:"The tree to make not live."`
}

func (c *UninitCmd) Run(e *env) error {
	return e.locked([]string{c.Name}, func(eng *migrate.Engine) error { return eng.Uninit(c.Name) })
}
