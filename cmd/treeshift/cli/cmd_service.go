package cli

import "github.com/treeshift/treeshift/migrate"

// EnableCmd is `enable`.
type EnableCmd struct {
	Tree     string   `short:"t" required:"" help:"The tree." placeholder:"TREE"`
	Services []string `arg:"" help:"Services to enable, with their dependencies."`
}

func (c *EnableCmd) Run(e *env) error {
	return e.locked([]string{c.Tree}, func(eng *migrate.Engine) error { return eng.EnableServices(c.Tree, c.Services) })
}

// DisableCmd is `disable`.
type DisableCmd struct {
	Tree     string   `short:"t" required:"" help:"The tree." placeholder:"TREE"`
	Services []string `arg:"" help:"Services to disable."`
}

func (c *DisableCmd) Run(e *env) error {
	return e.locked([]string{c.Tree}, func(eng *migrate.Engine) error { return eng.DisableServices(c.Tree, c.Services) })
}

// StartCmd is `start`.
type StartCmd struct {
	Tree     string   `short:"t" required:"" help:"The tree." placeholder:"TREE"`
	Services []string `arg:"" help:"Services to bring up."`
}

func (c *StartCmd) Run(e *env) error {
	return e.locked([]string{c.Tree}, func(eng *migrate.Engine) error { return eng.Start(c.Tree, c.Services) })
}

// StopCmd is `stop`.
type StopCmd struct {
	Tree     string   `short:"t" required:"" help:"The tree." placeholder:"TREE"`
	Services []string `arg:"" help:"Services to bring down."`
}

func (c *StopCmd) Run(e *env) error {
	return e.locked([]string{c.Tree}, func(eng *migrate.Engine) error { return eng.Stop(c.Tree, c.Services) })
}
