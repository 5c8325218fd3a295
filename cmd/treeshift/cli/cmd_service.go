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

// UnmonitorCmd is `unmonitor`: what a WHEN_UNMONITORED hop asks for.
type UnmonitorCmd struct {
	Tree     string   `short:"t" required:"" help:"The tree." placeholder:"TREE"`
	Services []string `arg:"" help:"Services whose supervision to pause; they keep running."`
}

func (c *UnmonitorCmd) Run(e *env) error {
	return e.locked([]string{c.Tree}, func(eng *migrate.Engine) error { return eng.Unmonitor(c.Tree, c.Services) })
}

// MonitorCmd is `monitor`.
type MonitorCmd struct {
	Tree     string   `short:"t" required:"" help:"The tree." placeholder:"TREE"`
	Services []string `arg:"" help:"Services whose supervision to resume."`
}

func (c *MonitorCmd) Run(e *env) error {
	return e.locked([]string{c.Tree}, func(eng *migrate.Engine) error { return eng.Monitor(c.Tree, c.Services) })
}
