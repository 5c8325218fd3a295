package cli

import (
	"fmt"
	"time"

	"github.com/treeshift/treeshift/supervisor/s6"
	"github.com/treeshift/treeshift/system"
)

// ScandirCmd groups the scan directory commands (66-scandir's job).
type ScandirCmd struct {
	Start  ScandirStartCmd  `cmd:"" help:"Start the owner's supervisor and record it for every later command."`
	Stop   ScandirStopCmd   `cmd:"" help:"Stop the owner's supervisor, bringing its services down."`
	Status ScandirStatusCmd `cmd:"" help:"Show the owner's supervisor and whether it runs."`
}

// ScandirStartCmd is `scandir start`.
type ScandirStartCmd struct {
	Supervisor string `default:"files" enum:"files,s6" help:"Backend: files (embedded, no processes) or s6."`
}

func (c *ScandirStartCmd) Run(e *env) error {
	unlock, err := e.lock()
	if err != nil {
		return err
	}
	defer unlock()
	cur, err := e.sys.Live.Backend()
	if err != nil {
		return err
	}
	if cur != c.Supervisor && e.hasLiveTrees() {
		return fmt.Errorf("trees are live under the %s supervisor: stop their services and uninit them before switching to %s", cur, c.Supervisor)
	}
	if c.Supervisor == "s6" {
		pid, err := s6.StartScan(e.sys.Live.ScanDir(), 10*time.Second)
		if err != nil {
			return err
		}
		e.log.printf(2, "s6-svscan (pid %d) supervises %s", pid, e.sys.Owner.Inside(e.sys.Live.ScanDir()))
	}
	return e.sys.Live.SetBackend(c.Supervisor)
}

// hasLiveTrees reports whether any of the owner's trees is initialized.
func (e *env) hasLiveTrees() bool {
	names, _ := e.sys.Store.Names()
	for _, n := range names {
		if live, _ := e.sys.Live.Tree(n).Initialized(); live {
			return true
		}
	}
	return false
}

// ScandirStopCmd is `scandir stop`.
type ScandirStopCmd struct{}

func (c *ScandirStopCmd) Run(e *env) error {
	unlock, err := e.lock()
	if err != nil {
		return err
	}
	defer unlock()
	name, err := e.sys.Live.Backend()
	if err != nil || name != "s6" {
		return err
	}
	if err := s6.StopScan(e.sys.Live.ScanDir(), system.ServiceTimeout); err != nil {
		return err
	}
	e.log.printf(2, "s6-svscan on %s stopped", e.sys.Owner.Inside(e.sys.Live.ScanDir()))
	return nil
}

// ScandirStatusCmd is `scandir status`.
type ScandirStatusCmd struct{}

func (*ScandirStatusCmd) readOnly() {}

func (c *ScandirStatusCmd) Run(e *env) error {
	name, err := e.sys.Live.Backend()
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "supervisor: %s\n", name)
	if name != "s6" {
		fmt.Fprintf(e.stdout, "scandir: none (the embedded backend runs no processes)\n")
		return nil
	}
	scan := e.sys.Owner.Inside(e.sys.Live.ScanDir())
	if pid, ok := s6.Running(e.sys.Live.ScanDir()); ok {
		fmt.Fprintf(e.stdout, "scandir: %s\nstate: running (s6-svscan pid %d)\n", scan, pid)
	} else {
		fmt.Fprintf(e.stdout, "scandir: %s\nstate: not running\n", scan)
	}
	return nil
}
