package cli

import (
	"fmt"
	"os"
	"os/user"
	"path"
	"strconv"

	"github.com/treeshift/treeshift/internal/supervisor/s6"
	"github.com/treeshift/treeshift/livedb"
	"github.com/treeshift/treeshift/migrate"
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
	eng, err := e.engine()
	if err != nil {
		return err
	}
	if os.Getuid() != 0 {
		return fmt.Errorf("only root creates live areas, a user's own too (under directories only root may write): run %s as root", eng.Suggest.Cmd("scandir", "create", "--owner", c.Owner))
	}
	if err := eng.Live.CreateArea(uid, gid); err != nil {
		return err
	}
	e.log.printf(2, "live area of %s (uid %d): %s", c.Owner, uid, path.Join(eng.LiveDir, livedb.TreeName, strconv.Itoa(uid)))
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
		return 0, 0, &migrate.UsageError{Err: fmt.Errorf("no user %q", name)}
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
	return e.locked(nil, func(eng *migrate.Engine) error {
		pid, err := eng.StartSupervisor(c.Supervisor)
		if err == nil && pid > 0 {
			e.log.printf(2, "s6-svscan (pid %d) supervises %s", pid, eng.Live.ScanDir())
		}
		return err
	})
}

// ScandirStopCmd is `scandir stop`.
type ScandirStopCmd struct{}

func (c *ScandirStopCmd) Run(e *env) error {
	return e.locked(nil, func(eng *migrate.Engine) error {
		stopped, err := eng.StopSupervisor()
		if err == nil && stopped {
			e.log.printf(2, "s6-svscan on %s stopped", eng.Live.ScanDir())
		}
		return err
	})
}

// ScandirStatusCmd is `scandir status`.
type ScandirStatusCmd struct{}

func (c *ScandirStatusCmd) Run(e *env) error {
	eng, err := e.reading()
	if err != nil {
		return err
	}
	name, err := eng.Live.Backend()
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "supervisor: %s\n", name)
	if name != "s6" {
		fmt.Fprintf(e.stdout, "scandir: none (the embedded backend runs no processes)\n")
		return nil
	}
	scan := eng.Live.ScanDir()
	if pid, ok := s6.Running(eng.Host(scan)); ok {
		fmt.Fprintf(e.stdout, "scandir: %s\nstate: running (s6-svscan pid %d)\n", scan, pid)
	} else {
		fmt.Fprintf(e.stdout, "scandir: %s\nstate: not running\n", scan)
	}
	return nil
}
