package cli

import (
	"fmt"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"time"

	"github.com/treeshift/treeshift/internal/supervisor/s6"
	"github.com/treeshift/treeshift/system"
)

// ScandirCmd groups the scan directory commands (66-scandir's job).
type ScandirCmd struct {
	Create ScandirCreateCmd `cmd:"" help:"Make a user's live area, owned by the user (root only)."`
	Start  ScandirStartCmd  `cmd:"" help:"Start the owner's supervisor and record it for every later command."`
	Stop   ScandirStopCmd   `cmd:"" help:"Stop the owner's supervisor, bringing its services down."`
	Status ScandirStatusCmd `cmd:"" help:"Show the owner's supervisor and whether it runs."`
}

// ScandirCreateCmd is `scandir create --owner USER`: 66-scandir's -o, for
// a live directory that only root may write to.
type ScandirCreateCmd struct {
	Owner string `required:"" help:"The user whose live area to make: a name or a numeric uid." placeholder:"USER"`
}

func (c *ScandirCreateCmd) Run(e *env) error {
	uid, gid, err := lookupUser(c.Owner)
	if err != nil {
		return err
	}
	if os.Getuid() != 0 {
		return fmt.Errorf("only root creates live areas for other users: run %s as root", e.sys.Suggest.Cmd("scandir", "create", "--owner", c.Owner))
	}
	if err := e.sys.Live.CreateArea(uid, gid); err != nil {
		return err
	}
	e.log.printf(2, "live area of %s (uid %d): %s", c.Owner, uid, e.sys.Owner.Inside(filepath.Join(e.sys.Live.Path, "tree", strconv.Itoa(uid))))
	return nil
}

// lookupUser finds a user by name or number; a number need not be in the
// password database (a staged system's users may not be the host's).
func lookupUser(name string) (uid, gid int, err error) {
	if n, err := strconv.Atoi(name); err == nil && n >= 0 {
		if u, err := user.LookupId(name); err == nil {
			g, _ := strconv.Atoi(u.Gid)
			return n, g, nil
		}
		return n, n, nil
	}
	u, err := user.Lookup(name)
	if err != nil {
		return 0, 0, &system.UsageError{Err: fmt.Errorf("no user %q", name)}
	}
	uid, _ = strconv.Atoi(u.Uid)
	gid, _ = strconv.Atoi(u.Gid)
	return uid, gid, nil
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
		if err := e.sys.Live.PrepareScan(); err != nil {
			return err
		}
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
