// Package cli is treeshift's command line: it parses arguments with kong,
// calls the packages that do the work, and reports in 66's style — messages
// on stderr prefixed "treeshift: LEVEL: ", documents on stdout, and the exit
// codes 0 (success), 100 (wrong usage) and 111 (a system call failed or the
// on-disk state is refused).
package cli

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/alecthomas/kong"
	"golang.org/x/sys/unix"

	"github.com/treeshift/treeshift/format"
	"github.com/treeshift/treeshift/internal/owner"
	"github.com/treeshift/treeshift/internal/version"
	"github.com/treeshift/treeshift/system"
	"github.com/treeshift/treeshift/tree"
	"github.com/treeshift/treeshift/update"
)

// Exit codes.
const (
	ExitOK     = 0
	ExitUsage  = 100
	ExitSystem = 111
)

// Globals are the options every command takes.
type Globals struct {
	Verbosity int           `short:"v" default:"1" help:"Verbosity: 1 errors, 2 warnings and info, 3 tracing, 4 debug."`
	Color     bool          `short:"z" help:"Colour messages when stderr is a terminal and NO_COLOR is unset."`
	Live      string        `short:"l" default:"${live}" help:"Live directory (absolute, inside the root)." placeholder:"LIVE"`
	Root      string        `default:"/" help:"Prefix every path with DIR, to work on a system staged in a directory." placeholder:"DIR"`
	Wait      time.Duration `default:"30s" help:"How long to wait for another treeshift holding the owner lock." placeholder:"DURATION"`
}

// CLI is the whole command line.
type CLI struct {
	Globals

	Update  UpdateCmd  `cmd:"" help:"Move trees and their live databases to a format version without stopping services."`
	Tree    TreeCmd    `cmd:"" help:"Create, remove and arrange trees."`
	Enable  EnableCmd  `cmd:"" help:"Enable services in a tree and recompile its database."`
	Disable DisableCmd `cmd:"" help:"Disable services in a tree and recompile its database."`
	Init    InitCmd    `cmd:"" help:"Make a tree live: point its live link at its compiled database."`
	Start   StartCmd   `cmd:"" help:"Bring services of a live tree up, with their dependencies."`
	Stop    StopCmd    `cmd:"" help:"Bring services of a live tree down, with what depends on them."`
	Uninit  UninitCmd  `cmd:"" help:"Make a tree not live (its services must be down)."`
	Scandir ScandirCmd `cmd:"" help:"Start, stop and show the owner's supervisor."`
	Cluster ClusterCmd `cmd:"" help:"Rolling format upgrade of a cluster's members, stage by stage."`
	Status  StatusCmd  `cmd:"" help:"Show everything a transition preserves, for some or all trees."`
	Reverse ReverseCmd `cmd:"" help:"Print a script of the commands that recreate the trees as they are."`
	Formats FormatsCmd `cmd:"" help:"List the known format versions and their upgrade_from directives."`
	Plan    PlanCmd    `cmd:"" help:"Show how each tree would move to a format version, and whether it may now."`
	Version VersionCmd `cmd:"" help:"Print treeshift's version and the format versions it knows."`
	Help    HelpCmd    `cmd:"" help:"Show the help of a command: treeshift help [COMMAND...]."`

	VersionFlag kong.VersionFlag `name:"version" help:"Print treeshift's version and the format versions it knows."`
}

// VersionCmd is `version`.
type VersionCmd struct{}

func (*VersionCmd) Run(e *env) error {
	_, err := fmt.Fprintln(e.stdout, versionText())
	return err
}

// versionText names the binary and the formats it reads and writes.
func versionText() string {
	var vs []string
	for _, c := range format.All() {
		vs = append(vs, strconv.Itoa(c.Version()))
	}
	return fmt.Sprintf("treeshift %s\nformats: %s (newest %d)", version.String(), strings.Join(vs, " "), format.Newest())
}

// HelpCmd is `help [COMMAND...]`; Main turns it into COMMAND... --help.
type HelpCmd struct {
	Command []string `arg:"" optional:"" help:"The command, with its subcommands (tree create)."`
}

func (*HelpCmd) Run() error { return nil }

// env is what a command's Run gets: the parsed globals, the system they
// select, and where to report.
type env struct {
	*Globals
	sys    *system.System
	stdout io.Writer
	log    *logger
}

// lock takes the owner lock for a command that changes trees, and returns
// its release. An interrupted update must be dealt with first; that is
// checked with the lock held, since an update may be interrupted while this
// command waits for the lock.
func (e *env) lock() (func(), error) {
	unlock, err := e.lockFor(false)
	if err != nil {
		return nil, err
	}
	if names, err := update.Pending(e.sys); err != nil || len(names) > 0 {
		unlock()
		if err == nil {
			err = fmt.Errorf("the update of tree(s) %s was interrupted: run %s first", strings.Join(names, " "), e.sys.Suggest.Cmd("update"))
		}
		return nil, err
	}
	return unlock, nil
}

// lockFor takes the owner lock. A dry run takes it too, so that what it
// reports is not changing under it, but creates nothing: with no lock file
// there is no system directory, and nothing to lock.
func (e *env) lockFor(dryRun bool) (func(), error) {
	start := time.Now()
	waited := false
	l, err := e.sys.Store.Lock(e.Wait, !dryRun, func(h tree.Holder) {
		waited = true
		e.log.printf(2, "waiting up to %s for the owner lock %s, held by %s", e.Wait, e.sys.Owner.Inside(e.sys.Store.LockPath()), h)
	})
	if err != nil {
		return nil, err
	}
	if waited {
		e.log.printf(2, "got the owner lock after %s", time.Since(start).Round(10*time.Millisecond))
	}
	e.log.printf(4, "holding the owner lock %s", e.sys.Owner.Inside(e.sys.Store.LockPath()))
	return func() { l.Unlock() }, nil
}

// readOnly marks commands that only read: they warn about an interrupted
// update instead of refusing to run.
type readOnly interface{ readOnly() }

func (*StatusCmd) readOnly()   {}
func (*TreeListCmd) readOnly() {}
func (*PlanCmd) readOnly()     {}
func (*FormatsCmd) readOnly()  {}

type exitCode int

// Main runs treeshift with args and returns its exit code.
func Main(args []string, stdout, stderr io.Writer) (code int) {
	var c CLI
	log := &logger{w: stderr, level: 1}
	defer func() {
		if r := recover(); r != nil {
			if ec, ok := r.(exitCode); ok {
				code = int(ec)
				return
			}
			panic(r)
		}
	}()
	// A dry run's every line starts with "dry run do: ", even a complaint
	// about the command line that asked for it.
	log.dry = dryRunRequested(args)
	parser, err := newParser(&c, stdout, stderr)
	if err != nil {
		log.fatal(err)
		return ExitSystem
	}
	ctx, err := parser.Parse(args)
	var pe *kong.ParseError
	if errors.As(err, &pe) && pe.Context != nil && strings.HasPrefix(pe.Error(), "expected one of") && missingCommand(pe.Context) {
		// A command group without its subcommand (treeshift, treeshift
		// cluster): list what may follow.
		pe.Context.PrintUsage(false)
		return ExitUsage
	}
	if err != nil {
		log.fatal(err)
		return ExitUsage
	}
	if _, ok := ctx.Selected().Target.Addr().Interface().(*HelpCmd); ok {
		// help COMMAND... is COMMAND... --help.
		if _, err := parser.Parse(append(c.Help.Command, "--help")); err != nil {
			log.fatal(err)
			return ExitUsage
		}
		return ExitOK
	}
	log.level = c.Verbosity
	log.color = c.Color && isTerminal(stderr) && os.Getenv("NO_COLOR") == ""
	if c.Verbosity < 1 || c.Verbosity > 4 {
		log.fatal(fmt.Errorf("verbosity %d: expected 1 to 4", c.Verbosity))
		return ExitUsage
	}
	o, err := owner.Current(c.Root, os.Getenv)
	if err != nil {
		log.fatal(err)
		return ExitSystem
	}
	sys, err := system.New(o, c.Live)
	if err != nil {
		log.fatal(err)
		return classify(err)
	}
	sys.Log = log.printf
	e := &env{Globals: &c.Globals, sys: sys, stdout: stdout, log: log}
	if _, ok := ctx.Selected().Target.Addr().Interface().(readOnly); ok {
		if names, _ := update.Pending(sys); len(names) > 0 {
			log.emit("warning", fmt.Sprintf("the update of tree(s) %s was interrupted: run %s", strings.Join(names, " "), sys.Suggest.Cmd("update")))
		}
	}
	if err := ctx.Run(e); err != nil {
		log.fatal(err)
		return classify(err)
	}
	return ExitOK
}

// missingCommand reports whether parsing stopped at a command group that
// needs a subcommand.
func missingCommand(ctx *kong.Context) bool {
	n := ctx.Selected()
	if n == nil {
		n = ctx.Model.Node
	}
	for _, c := range n.Children {
		if c.Type == kong.CommandNode {
			return true
		}
	}
	return false
}

// dryRunRequested reports whether args ask for a dry run of a command that
// has one, before they are parsed: a parse error is reported in the dry
// run's form too.
func dryRunRequested(args []string) bool {
	cmd, dry := false, false
	for _, a := range args {
		switch a {
		case "update", "apply":
			cmd = true
		case "-d", "--dry-run":
			dry = true
		case "--":
			return cmd && dry
		}
	}
	return cmd && dry
}

// Description is the one-line summary of the command.
const Description = "Move trees and live service databases between on-disk formats without stopping services."

// newParser builds the kong parser of the command line, shared by Main and
// the man page.
func newParser(c *CLI, stdout, stderr io.Writer) (*kong.Kong, error) {
	return kong.New(c,
		kong.Name("treeshift"),
		kong.Description(Description),
		kong.Writers(stdout, stderr),
		kong.Vars{"live": owner.DefaultLive, "newest": strconv.Itoa(format.Newest()), "version": versionText()},
		kong.Exit(func(code int) { panic(exitCode(code)) }),
		kong.ConfigureHelp(kong.HelpOptions{Compact: true}),
		kong.Help(help),
	)
}

// help shows 66's style of usage line first, then kong's help.
func help(options kong.HelpOptions, ctx *kong.Context) error {
	s := rootSynopsis
	if n := ctx.Selected(); n != nil {
		s = synopsis(n, true)
	}
	fmt.Fprintf(ctx.Stdout, "%s\n\n", s)
	return kong.DefaultHelpPrinter(options, ctx)
}

// classify maps an error to its exit code: usage errors are the caller's to
// fix (100); everything else is a failed system call or refused state (111).
func classify(err error) int {
	var ue *system.UsageError
	var pe *kong.ParseError
	if errors.As(err, &ue) || errors.As(err, &pe) {
		return ExitUsage
	}
	return ExitSystem
}

// logger prints 66-style messages at or below its verbosity. In a dry run
// every line it prints starts with "dry run do: ".
type logger struct {
	w     io.Writer
	level int
	color bool
	dry   bool
}

// action prints what a dry run would do, whatever the verbosity.
func (l *logger) action(msg string) {
	for _, line := range strings.Split(msg, "\n") {
		fmt.Fprintf(l.w, "dry run do: %s\n", line)
	}
}

var levelNames = map[int]string{1: "fatal", 2: "info", 3: "tracing", 4: "debug"}

func (l *logger) printf(level int, format string, args ...any) {
	if level > l.level {
		return
	}
	name := levelNames[level]
	l.emit(name, fmt.Sprintf(format, args...))
}

func (l *logger) fatal(err error) { l.emit("fatal", err.Error()) }

func (l *logger) emit(name, msg string) {
	if l.color {
		colors := map[string]string{"fatal": "\x1b[31m", "warning": "\x1b[33m", "info": "\x1b[32m"}
		if c, ok := colors[name]; ok {
			name = c + name + "\x1b[0m"
		}
	}
	prefix := ""
	if l.dry {
		prefix = "dry run do: "
	}
	for _, line := range strings.Split(strings.TrimRight(msg, "\n"), "\n") {
		fmt.Fprintf(l.w, "%streeshift: %s: %s\n", prefix, name, line)
	}
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil
}
