package cli

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/treeshift/treeshift/migrate"
)

// ApplyCmd is `apply`: reconcile the system with a configuration document.
type ApplyCmd struct {
	DryRun bool   `short:"d" name:"dry-run" help:"Do every read and check, print every change prefixed \"dry run do: \", change nothing."`
	JSON   bool   `name:"json" help:"Print a JSON result document on stdout (docs/JSON.md)."`
	Resume bool   `help:"Finish an interrupted apply, and do nothing else."`
	File   string `arg:"" optional:"" help:"Configuration document, as reverse --json prints it; - reads standard input."`
}

func (c *ApplyCmd) Run(e *env) error {
	e.dry, e.log.dry = c.DryRun, c.DryRun
	if (c.File == "") == !c.Resume {
		return &migrate.UsageError{Err: errors.New("apply: give a configuration FILE, or --resume to finish an interrupted apply")}
	}
	var cfg *migrate.Config
	if c.File != "" {
		var err error
		if cfg, err = readConfig(e, c.File); err != nil {
			return err
		}
	}
	eng, err := e.engine()
	if err != nil {
		return err
	}
	report, err := eng.Apply(cfg, configName(c.File))
	if c.JSON && report != nil {
		if jerr := printJSON(e, report); jerr != nil {
			return jerr
		}
	}
	return err
}

// configName is how a configuration file is recorded and named later: an
// absolute path, which an interrupted apply's message can give back from
// any directory.
func configName(file string) string {
	if file == "" || file == "-" {
		return file
	}
	if abs, err := filepath.Abs(file); err == nil {
		return abs
	}
	return file
}

// readConfig reads a configuration document from a file, or from standard
// input for "-". A file that is missing or not a configuration is a usage
// error.
func readConfig(e *env, file string) (*migrate.Config, error) {
	var r io.Reader = e.stdin
	name := "standard input"
	if file != "-" {
		f, err := os.Open(file)
		if errors.Is(err, fs.ErrNotExist) {
			return nil, &migrate.UsageError{Err: fmt.Errorf("configuration %s: no such file", file)}
		}
		if err != nil {
			return nil, fmt.Errorf("configuration: %w", err)
		}
		defer f.Close()
		if fi, err := f.Stat(); err != nil {
			return nil, err
		} else if !fi.Mode().IsRegular() {
			return nil, &migrate.UsageError{Err: fmt.Errorf("configuration %s: not a regular file", file)}
		}
		r, name = f, configName(file)
	}
	c, err := migrate.ReadConfig(name, r)
	var ce *migrate.ConfigError
	if errors.As(err, &ce) {
		return nil, &migrate.UsageError{Err: err}
	}
	return c, err
}
