// Package s6 is the supervisor backend on the s6 suite: an s6-svscan per
// owner on the owner's scan directory, one s6-supervise per longrun or
// classic service. Service directories are placed in the live directory
// beside the tree's compiled link, never inside the compiled database, so
// moving the link from one database to another never touches a running
// process. Oneshots have no process: their up and down scripts are run, and
// their state (and a bundle's) is kept in state files as the embedded
// backend does.
package s6

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/treeshift/treeshift/internal/compile"
	"github.com/treeshift/treeshift/internal/model"
	"github.com/treeshift/treeshift/internal/suggest"
	"github.com/treeshift/treeshift/internal/supervisor"
	"github.com/treeshift/treeshift/livedb"
)

// Programs are the s6 and execline programs the backend runs.
var Programs = []string{"s6-svscan", "s6-supervise", "s6-svscanctl", "s6-svc", "s6-svstat", "s6-svok", "execlineb"}

// MissingError names a program the backend needs and cannot find.
type MissingError struct{ Program string }

func (e *MissingError) Error() string {
	pkg := "s6"
	if e.Program == "execlineb" {
		pkg = "execline"
	}
	return fmt.Sprintf("%s not found in PATH: install the %s package (apt-get install s6 execline)", e.Program, pkg)
}

// Check reports the first missing program.
func Check() error {
	for _, p := range Programs {
		if _, err := exec.LookPath(p); err != nil {
			return &MissingError{Program: p}
		}
	}
	return nil
}

// Backend supervises services with s6 on scan directory Scan (a host path:
// s6's programs are given host paths).
type Backend struct {
	Scan string
	// Timeout bounds each wait for a service to change state.
	Timeout time.Duration
	// Suggest writes the commands its messages suggest.
	Suggest suggest.Prefix
}

func (b *Backend) Name() string { return "s6" }

// entry is the name of a service's link in the scan directory.
func entry(t *livedb.Tree, svc string) string { return t.Name + ":" + svc }

func supervised(e model.IndexEntry) bool { return e.Type == model.Longrun || e.Type == model.Classic }

// Init places each supervised service's directory, links it into the scan
// directory, has s6-svscan pick it up, and waits until it is supervised.
func (b *Backend) Init(t *livedb.Tree, compiled string, index model.Index) error {
	var dirs []string
	for _, e := range index.Entries {
		if !supervised(e) {
			continue
		}
		placed, err := t.PlaceServiceDir(e.Name, compiled)
		if err != nil {
			return err
		}
		dir := t.Host(placed)
		link := filepath.Join(b.Scan, entry(t, e.Name))
		if target, err := os.Readlink(link); err == nil {
			if target != dir {
				return fmt.Errorf("%s already points at %s", link, target)
			}
		} else if err := os.Symlink(dir, link); err != nil {
			return fmt.Errorf("link %s: %w", link, err)
		}
		dirs = append(dirs, dir)
	}
	pruned, err := b.prune(t, index)
	if err != nil {
		return err
	}
	if len(dirs) == 0 && !pruned {
		return nil
	}
	scan := "-a"
	if pruned {
		// -n lets the supervisors of the links pruned go.
		scan = "-an"
	}
	if err := run("s6-svscanctl", scan, b.Scan); err != nil {
		return err
	}
	deadline := time.Now().Add(b.Timeout)
	for _, d := range dirs {
		for exec.Command("s6-svok", d).Run() != nil {
			if time.Now().After(deadline) {
				return fmt.Errorf("%s is not supervised after %s: is s6-svscan running on %s? (%s)", d, b.Timeout, b.Scan,
					b.Suggest.Cmd("scandir", "start", "--supervisor", "s6"))
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	return nil
}

// prune unlinks from the scan directory the services of tree t that its
// index no longer holds (disabled since the tree was made live) and that
// are down: a supervisor left for a service the tree does not have would
// run it behind treeshift's back. One still up is left alone: stopping a
// process is never a side effect.
func (b *Backend) prune(t *livedb.Tree, index model.Index) (bool, error) {
	keep := map[string]bool{}
	for _, e := range index.Entries {
		if supervised(e) {
			keep[e.Name] = true
		}
	}
	dirs := t.Host(path.Join(t.Dir, livedb.ServiceDirsName))
	links, err := os.ReadDir(b.Scan)
	if err != nil {
		return false, err
	}
	pruned := false
	for _, l := range links {
		link := filepath.Join(b.Scan, l.Name())
		target, err := os.Readlink(link)
		if err != nil || filepath.Dir(target) != dirs || keep[filepath.Base(target)] {
			continue
		}
		if exec.Command("s6-svok", target).Run() == nil {
			if o, err := exec.Command("s6-svstat", "-o", "up", target).Output(); err != nil || strings.TrimSpace(string(o)) != "false" {
				continue
			}
		}
		if err := os.Remove(link); err != nil && !errors.Is(err, os.ErrNotExist) {
			return pruned, err
		}
		pruned = true
	}
	return pruned, nil
}

// Uninit unlinks the tree's services from the scan directory and has
// s6-svscan let their supervisors go.
func (b *Backend) Uninit(t *livedb.Tree, index model.Index) error {
	any := false
	for _, e := range index.Entries {
		if supervised(e) {
			os.Remove(filepath.Join(b.Scan, entry(t, e.Name)))
			any = true
		}
	}
	if !any {
		return nil
	}
	return run("s6-svscanctl", "-an", b.Scan)
}

func (b *Backend) ms() string { return strconv.FormatInt(b.Timeout.Milliseconds(), 10) }

// Start brings a service up and waits until it is.
func (b *Backend) Start(t *livedb.Tree, e model.IndexEntry) error {
	switch {
	case supervised(e):
		if exec.Command("s6-svok", t.Host(t.ServiceDir(e.Name))).Run() != nil {
			return fmt.Errorf("service %s of tree %s is not supervised: is s6-svscan running on %s? (%s; %s)",
				e.Name, t.Name, b.Scan, b.Suggest.Cmd("scandir", "start", "--supervisor", "s6"), b.Suggest.Cmd("init", t.Name))
		}
		err := run("s6-svc", "-wu", "-T", b.ms(), "-u", t.Host(t.ServiceDir(e.Name)))
		if err != nil {
			return fmt.Errorf("service %s of tree %s did not come up within %s: %w", e.Name, t.Name, b.Timeout, err)
		}
		return nil
	case e.Type == model.Oneshot:
		if err := b.oneshot(t, e, "up"); err != nil {
			return err
		}
	}
	return t.SetState(e.Name, true)
}

// Stop brings a service down and waits until it is.
func (b *Backend) Stop(t *livedb.Tree, e model.IndexEntry) error {
	switch {
	case supervised(e):
		err := run("s6-svc", "-wd", "-T", b.ms(), "-d", t.Host(t.ServiceDir(e.Name)))
		if err != nil {
			return fmt.Errorf("service %s of tree %s did not go down within %s: %w", e.Name, t.Name, b.Timeout, err)
		}
		return nil
	case e.Type == model.Oneshot:
		if err := b.oneshot(t, e, "down"); err != nil {
			return err
		}
	}
	return t.SetState(e.Name, false)
}

// Unmonitor has s6-supervise keep svc running but not restart it when it
// stops: s6-svc -O, "once". Only supervised services have a monitor.
func (b *Backend) Unmonitor(t *livedb.Tree, e model.IndexEntry) error {
	if !supervised(e) {
		return nil
	}
	dir := t.Host(t.ServiceDir(e.Name))
	if err := run("s6-svc", "-O", dir); err != nil {
		return err
	}
	return b.waitWanted(dir, false)
}

// waitWanted waits until s6-supervise has read a command that changes
// what it wants (s6-svc writes to its control pipe and returns at once;
// -O and a -u on a service that is up have no -w form): a status read
// right after the command must show it.
func (b *Backend) waitWanted(dir string, up bool) error {
	want := strconv.FormatBool(up)
	deadline := time.Now().Add(b.Timeout)
	for {
		o, err := exec.Command("s6-svstat", "-o", "wantedup", dir).Output()
		if err != nil {
			return fmt.Errorf("s6-svstat %s: %v", dir, err)
		}
		if strings.TrimSpace(string(o)) == want {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s: s6-supervise did not take the command within %s (wanted up: %s)", dir, b.Timeout, strings.TrimSpace(string(o)))
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// Monitor has s6-supervise want svc up again: s6-svc -u, which on a service
// that is up only changes what the supervisor wants.
func (b *Backend) Monitor(t *livedb.Tree, e model.IndexEntry) error {
	if !supervised(e) {
		return nil
	}
	dir := t.Host(t.ServiceDir(e.Name))
	if err := run("s6-svc", "-u", dir); err != nil {
		return err
	}
	return b.waitWanted(dir, true)
}

// oneshot runs a oneshot's up or down script from the tree's live database.
func (b *Backend) oneshot(t *livedb.Tree, e model.IndexEntry, script string) error {
	p := t.Host(path.Join(t.LinkPath(), compile.ServiceDirsName, e.Name, script))
	if _, err := os.Stat(p); errors.Is(err, os.ErrNotExist) && script == "down" {
		return nil // no [stop] section
	}
	cmd := exec.Command(p)
	cmd.Dir = filepath.Dir(p)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("oneshot %s of tree %s: %s: %w", e.Name, t.Name, p, err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			return fmt.Errorf("oneshot %s of tree %s: %s failed: %v: %s", e.Name, t.Name, script, err, strings.TrimSpace(out.String()))
		}
		return nil
	case <-time.After(b.Timeout):
		cmd.Process.Kill()
		<-done
		return fmt.Errorf("oneshot %s of tree %s: %s did not finish within %s", e.Name, t.Name, script, b.Timeout)
	}
}

// States asks s6-svstat about supervised services; oneshots and bundles
// come from the state files.
func (b *Backend) States(t *livedb.Tree, index model.Index) (map[string]supervisor.State, error) {
	files, err := t.States()
	if err != nil {
		return nil, err
	}
	out := map[string]supervisor.State{}
	for _, e := range index.Entries {
		if !supervised(e) {
			out[e.Name] = supervisor.State{Up: files[e.Name]}
			continue
		}
		dir := t.Host(t.ServiceDir(e.Name))
		if exec.Command("s6-svok", dir).Run() != nil {
			continue // not supervised (no supervisor, or enabled after init): down
		}
		o, err := exec.Command("s6-svstat", "-o", "up,pid,updownfor,wantedup", dir).Output()
		if err != nil {
			return nil, fmt.Errorf("s6-svstat %s: %v", dir, err)
		}
		f := strings.Fields(string(o))
		if len(f) != 4 {
			return nil, fmt.Errorf("s6-svstat %s: unexpected output %q", dir, o)
		}
		pid, _ := strconv.Atoi(f[1])
		secs, _ := strconv.Atoi(f[2])
		// Up but not wanted up: s6-supervise runs it once and will not
		// restart it (s6-svc -O).
		st := supervisor.State{Up: f[0] == "true", Uptime: secs, Unmonitored: f[0] == "true" && f[3] == "false"}
		if st.Up && pid > 0 {
			st.Pid = pid
		}
		out[e.Name] = st
	}
	return out, nil
}

// Running reports whether an s6-svscan runs on scan, and its pid.
func Running(scan string) (int, bool) {
	if exec.Command("s6-svscanctl", "-z", scan).Run() != nil {
		return 0, false
	}
	b, err := os.ReadFile(filepath.Join(scan, ".s6-svscan", "pid"))
	if err != nil {
		return 0, true
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	return pid, true
}

// StartScan starts an s6-svscan on scan, in its own session so it outlives
// the command, and returns once it reports ready. Its messages go to
// scan/.s6-svscan/log.
func StartScan(scan string, timeout time.Duration) (int, error) {
	if err := Check(); err != nil {
		return 0, err
	}
	if pid, ok := Running(scan); ok {
		return pid, nil
	}
	ctl := filepath.Join(scan, ".s6-svscan")
	// The scan directory is the owner's (checked by the caller); nothing
	// in it is followed if it is a link.
	if err := os.Mkdir(ctl, 0o755); err != nil && !errors.Is(err, os.ErrExist) {
		return 0, fmt.Errorf("create %s: %w", ctl, err)
	}
	if fi, err := os.Lstat(ctl); err != nil || !fi.IsDir() {
		return 0, fmt.Errorf("%s: not a directory s6-svscan can use", ctl)
	}
	logf, err := os.OpenFile(filepath.Join(ctl, "log"), os.O_WRONLY|os.O_CREATE|os.O_APPEND|syscall.O_NOFOLLOW, 0o644)
	if err != nil {
		return 0, fmt.Errorf("open %s: %w", filepath.Join(ctl, "log"), err)
	}
	defer logf.Close()
	r, w, err := os.Pipe()
	if err != nil {
		return 0, err
	}
	defer r.Close()
	cmd := exec.Command("s6-svscan", "-d", "3", scan)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.ExtraFiles = []*os.File{w}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		w.Close()
		return 0, fmt.Errorf("start s6-svscan: %w", err)
	}
	w.Close()
	pid := cmd.Process.Pid
	if f, err := os.OpenFile(filepath.Join(ctl, "pid"), os.O_WRONLY|os.O_CREATE|os.O_TRUNC|syscall.O_NOFOLLOW, 0o644); err == nil {
		f.WriteString(strconv.Itoa(pid) + "\n")
		f.Close()
	}
	cmd.Process.Release()
	ready := make(chan error, 1)
	go func() {
		_, err := bufio.NewReader(r).ReadString('\n')
		ready <- err
	}()
	select {
	case err := <-ready:
		if err != nil {
			return 0, fmt.Errorf("s6-svscan on %s exited before it was ready (see %s)", scan, filepath.Join(ctl, "log"))
		}
	case <-time.After(timeout):
		return 0, fmt.Errorf("s6-svscan on %s not ready after %s", scan, timeout)
	}
	return pid, nil
}

// StopScan has the s6-svscan on scan bring every service down and exit, and
// waits until it has.
func StopScan(scan string, timeout time.Duration) error {
	pid, ok := Running(scan)
	if !ok {
		return nil
	}
	if err := run("s6-svscanctl", "-t", scan); err != nil {
		return err
	}
	deadline := time.Now().Add(timeout)
	for {
		if _, ok := Running(scan); !ok && (pid == 0 || gone(pid)) {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("s6-svscan on %s (pid %d) still running after %s", scan, pid, timeout)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// gone reports whether pid has exited. A process this command did not start
// is reaped by init, perhaps later: a zombie has exited too.
func gone(pid int) bool {
	if syscall.Kill(pid, 0) != nil {
		return true
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return true
	}
	// The state follows the command name, which is in parentheses.
	i := bytes.LastIndexByte(b, ')')
	return i >= 0 && i+2 < len(b) && b[i+2] == 'Z'
}

func run(name string, args ...string) error {
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		msg := strings.TrimSpace(string(out))
		if msg == "" {
			msg = err.Error()
		}
		return fmt.Errorf("%s %s: %s", name, strings.Join(args, " "), msg)
	}
	return nil
}
