// Package cli is treeshift's command line: it parses arguments with kong,
// calls the library that does the work — one call per command, in one file
// per command (cmd_*.go) — and reports in 66's style: messages on stderr
// prefixed "treeshift: LEVEL: ", documents on stdout, and the exit codes 0
// (success), 100 (wrong usage) and 111 (a system call failed or the on-disk
// state is refused). No rule of treeshift lives here.
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
	"github.com/treeshift/treeshift/migrate"
	"github.com/treeshift/treeshift/tree"
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

	Update    UpdateCmd    `cmd:"" help:"Move trees and their live databases to a format version without stopping services."`
	Tree      TreeCmd      `cmd:"" help:"Create, remove and arrange trees."`
	Enable    EnableCmd    `cmd:"" help:"Enable services in a tree and recompile its database."`
	Disable   DisableCmd   `cmd:"" help:"Disable services in a tree and recompile its database."`
	Init      InitCmd      `cmd:"" help:"Make a tree live: point its live link at its compiled database."`
	Start     StartCmd     `cmd:"" help:"Bring services of a live tree up, with their dependencies."`
	Stop      StopCmd      `cmd:"" help:"Bring services of a live tree down, with what depends on them."`
	Unmonitor UnmonitorCmd `cmd:"" help:"Pause the supervision of services of a live tree; they keep running."`
	Monitor   MonitorCmd   `cmd:"" help:"Resume the supervision of services of a live tree."`
	Uninit    UninitCmd    `cmd:"" help:"Make a tree not live (its services must be down)."`
	Apply     ApplyCmd     `cmd:"" help:"Reconcile the system with a configuration document (reverse --json)."`
	Scandir   ScandirCmd   `cmd:"" help:"Start, stop and show the owner's supervisor."`
	Cluster   ClusterCmd   `cmd:"" help:"Rolling format upgrade of a cluster's members, stage by stage."`
	Status    StatusCmd    `cmd:"" help:"Show everything a transition preserves, for some or all trees."`
	Reverse   ReverseCmd   `cmd:"" help:"Print a script of the commands that recreate the trees as they are."`
	Formats   FormatsCmd   `cmd:"" help:"List the known format versions and their upgrade_from directives."`
	Selftest  SelftestCmd  `cmd:"" help:"Check on this machine what treeshift promises: selftest crash."`
	Plan      PlanCmd      `cmd:"" help:"Show how each tree would move to a format version, and whether it may now."`
	Version   VersionCmd   `cmd:"" help:"Print treeshift's version and the format versions it knows."`
	Help      HelpCmd      `cmd:"" help:"Show the help of a command: treeshift help [COMMAND...]."`

	VersionFlag kong.VersionFlag `name:"version" help:"Print treeshift's version and the format versions it knows."`
}

// env is what a command's Run gets: the parsed globals, where to report,
// and the owner's engine, opened on first use: a command that does not
// touch the owner's system (cluster, formats, version) never opens it.
type env struct {
	*Globals
	stdin  io.Reader
	stdout io.Writer
	log    *logger
	// dry opens the engine on an overlay: a dry run.
	dry bool
	eng *migrate.Engine
}

// engine opens the invoking owner's engine.
func (e *env) engine() (*migrate.Engine, error) {
	if e.eng != nil {
		return e.eng, nil
	}
	o, err := owner.Current(e.Root, os.Getenv)
	if err != nil {
		return nil, err
	}
	eng, err := migrate.Open(o, migrate.Options{Live: e.Live, Wait: e.Wait, DryRun: e.dry, Report: e.log})
	if err != nil {
		return nil, err
	}
	e.eng = eng
	return eng, nil
}

// locked opens the engine and takes the owner lock for a command that
// changes the trees named (refused while an unfinished update holds one of
// them; with none named, while it holds any), runs fn, and lets go of the
// lock.
func (e *env) locked(trees []string, fn func(eng *migrate.Engine) error) error {
	eng, err := e.engine()
	if err != nil {
		return err
	}
	unlock, err := eng.LockTrees(trees...)
	if err != nil {
		return err
	}
	defer unlock()
	return fn(eng)
}

// reading opens the engine for a command that only reads, warning about an
// unfinished update rather than refusing to run.
func (e *env) reading() (*migrate.Engine, error) {
	eng, err := e.engine()
	if err != nil {
		return nil, err
	}
	if w := eng.Warning(); w != "" {
		e.log.emit("warning", w)
	}
	return eng, nil
}

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
	if errors.As(err, &pe) && pe.Context != nil && isMissingCommand(pe) && missingCommand(pe.Context) {
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
	e := &env{Globals: &c.Globals, stdin: os.Stdin, stdout: stdout, log: log}
	if err := ctx.Run(e); err != nil {
		log.fatal(err)
		return classify(err)
	}
	return ExitOK
}

// missingCommand reports whether parsing stopped at a command group that
// needs a subcommand.
// isMissingCommand recognises kong's complaint that a command group was
// given no subcommand: "expected one of ..." when there are several,
// `expected "crash"` when there is one.
func isMissingCommand(pe *kong.ParseError) bool {
	msg := pe.Error()
	return strings.HasPrefix(msg, "expected one of ") || strings.HasPrefix(msg, `expected "`)
}

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
	var ue *migrate.UsageError
	var pe *kong.ParseError
	if errors.As(err, &ue) || errors.As(err, &pe) {
		return ExitUsage
	}
	return ExitSystem
}

// logger prints 66-style messages at or below its verbosity, and is the
// engine's Reporter. In a dry run every line it prints starts with "dry run
// do: ".
type logger struct {
	w     io.Writer
	level int
	color bool
	dry   bool
	// progress: per-tree progress lines, for a person watching a long
	// transition on a terminal.
	progress bool
}

var levelNames = map[int]string{1: "fatal", 2: "info", 3: "tracing", 4: "debug"}

// Action prints a step: always in a dry run (that is what it is for), at
// -v 3 otherwise.
func (l *logger) Action(line string) {
	if l.dry {
		for _, s := range strings.Split(line, "\n") {
			fmt.Fprintf(l.w, "dry run do: %s\n", s)
		}
		return
	}
	l.printf(3, "%s", line)
}

// Warn prints a warning from -v 2.
func (l *logger) Warn(msg string) {
	if l.level >= 2 {
		l.emit("warning", msg)
	}
}

// Note prints a message at its level.
func (l *logger) Note(level int, format string, args ...any) { l.printf(level, format, args...) }

// Waiting says at once, at -v 2, that another process holds the lock.
func (l *logger) Waiting(lock string, h tree.Holder, wait time.Duration) {
	l.printf(2, "waiting up to %s for the owner lock %s, held by %s", wait, lock, h)
}

// Progress shows which tree a long transition has switched, on a terminal.
func (l *logger) Progress(i, n int, tree string, from, to int) {
	if l.progress && n > 3 {
		l.emit("info", fmt.Sprintf("[%d/%d] tree %s: format %s to %s", i, n, tree, format.Name(from), format.Name(to)))
	}
}

func (l *logger) printf(level int, format string, args ...any) {
	if level > l.level {
		return
	}
	l.emit(levelNames[level], fmt.Sprintf(format, args...))
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
