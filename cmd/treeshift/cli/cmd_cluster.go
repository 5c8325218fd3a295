package cli

import (
	"fmt"

	"github.com/alecthomas/kong"
	"path/filepath"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/treeshift/treeshift/cluster"
	"github.com/treeshift/treeshift/internal/suggest"
	"github.com/treeshift/treeshift/migrate"
)

// ClusterCmd groups the rolling-upgrade stages.
type ClusterCmd struct {
	Store string `needed:"" help:"The cluster state store: a directory shared by the members (needed by every subcommand)." placeholder:"DIR"`

	Init        ClusterInitCmd   `cmd:"" help:"Create the cluster record."`
	Check       ClusterCheckCmd  `cmd:"" help:"Check that a stage can run, changing nothing (check setup LEAD)."`
	Setup       ClusterSetupCmd  `cmd:"" help:"Record the target version and lead member; make tagged copies."`
	Preinstall  ClusterStageCmd  `cmd:"" help:"Verify the lead member's tagged copies."`
	Install     ClusterStageCmd  `cmd:"" help:"Transition the lead member to the new format."`
	Postinstall ClusterStageCmd  `cmd:"" help:"Verify the lead member is at the new format and healthy."`
	Roll        ClusterRollCmd   `cmd:"" help:"Roll members to the new format, keeping quorum."`
	Switch      ClusterStageCmd  `cmd:"" help:"Move the cluster's active version to the new one."`
	Clean       ClusterStageCmd  `cmd:"" help:"Remove the tagged copies: the upgrade is complete."`
	Status      ClusterStatusCmd `cmd:"" help:"Show the stage, versions and members."`
	Undo        ClusterUndoCmd   `cmd:"" help:"Undo the most recent stage (not after switch)."`
}

// cluster opens the cluster the subcommands act on. --store is checked
// here rather than by the parser, so that `treeshift cluster` alone lists
// the subcommands instead of asking for it.
func (c *ClusterCmd) cluster(e *env) (*cluster.Cluster, error) {
	if c.Store == "" {
		return nil, &migrate.UsageError{Err: fmt.Errorf("cluster: give the cluster state store: --store DIR")}
	}
	store := c.Store
	if abs, err := filepath.Abs(store); err == nil {
		store = abs
	}
	return &cluster.Cluster{
		Store:  cluster.DirStore{Dir: store},
		Live:   e.Live,
		Wait:   e.Wait,
		Report: e.log,
		Say:    func(f string, a ...any) { fmt.Fprintf(e.stdout, f+"\n", a...) },
		Suggest: func(args ...string) string {
			return suggest.Prefix{}.Cmd(append([]string{"cluster", "--store", store}, args...)...)
		},
	}, nil
}

// ClusterInitCmd is `cluster init`.
type ClusterInitCmd struct {
	Member     []string `required:"" help:"A member: ID=ROOT[:VOTES] (votes default 1); repeat for each." placeholder:"ID=ROOT[:VOTES]"`
	QuorumVote bool     `help:"Add a quorum vote (a tie-breaker that is not a member)."`
	Active     int      `help:"The members' current format (default: found on their trees)." placeholder:"VERSION"`
}

func (c *ClusterInitCmd) Run(e *env, cc *ClusterCmd) error {
	var members []cluster.Member
	for _, arg := range c.Member {
		id, rest, ok := strings.Cut(arg, "=")
		if !ok || id == "" || rest == "" {
			return &migrate.UsageError{Err: fmt.Errorf("--member %q: expected ID=ROOT[:VOTES]", arg)}
		}
		votes := 1
		if i := strings.LastIndexByte(rest, ':'); i > 0 {
			n, err := strconv.Atoi(rest[i+1:])
			if err != nil || n < 0 {
				return &migrate.UsageError{Err: fmt.Errorf("--member %q: votes %q are not a number", arg, rest[i+1:])}
			}
			votes, rest = n, rest[:i]
		}
		root, err := filepath.Abs(rest)
		if err != nil {
			return err
		}
		members = append(members, cluster.Member{ID: id, Root: root, Votes: votes})
	}
	cl, err := cc.cluster(e)
	if err != nil {
		return err
	}
	return cl.Init(cluster.InitOptions{Members: members, QuorumVote: c.QuorumVote, Active: c.Active})
}

// ClusterCheckCmd is `cluster check setup LEAD`.
type ClusterCheckCmd struct {
	Stage string `arg:"" enum:"setup" help:"The stage to check: setup."`
	Lead  string `arg:"" help:"The lead member."`
	To    int    `default:"${newest}" help:"Target format version (default: newest)." placeholder:"VERSION"`
}

func (c *ClusterCheckCmd) Run(e *env, cc *ClusterCmd) error {
	cl, err := cc.cluster(e)
	if err != nil {
		return err
	}
	problems, err := cl.CheckSetup(c.Lead, c.To)
	if err != nil {
		return err
	}
	if len(problems) > 0 {
		for _, p := range problems {
			fmt.Fprintln(e.stdout, "problem: "+p)
		}
		return &cluster.RefusedError{Msg: fmt.Sprintf("setup with lead %s to format %d cannot run: %d problem(s)", c.Lead, c.To, len(problems))}
	}
	fmt.Fprintf(e.stdout, "setup with lead %s to format %d can run\n", c.Lead, c.To)
	return nil
}

// ClusterSetupCmd is `cluster setup LEAD`.
type ClusterSetupCmd struct {
	Lead string `arg:"" help:"The lead member, upgraded first."`
	To   int    `default:"${newest}" help:"Target format version (default: newest)." placeholder:"VERSION"`
}

func (c *ClusterSetupCmd) Run(e *env, cc *ClusterCmd) error {
	cl, err := cc.cluster(e)
	if err != nil {
		return err
	}
	if err := cl.SetupStage(c.Lead, c.To); err != nil {
		return err
	}
	fmt.Fprintln(e.stdout, "next stage: preinstall")
	return nil
}

// ClusterStageCmd is a stage without arguments.
type ClusterStageCmd struct{}

func (c *ClusterStageCmd) Run(e *env, cc *ClusterCmd, ctx *kong.Context) error {
	cl, err := cc.cluster(e)
	if err != nil {
		return err
	}
	stage := ctx.Selected().Name
	switch stage {
	case cluster.Preinstall:
		err = cl.PreinstallStage()
	case cluster.Install:
		err = cl.InstallStage()
	case cluster.Postinstall:
		err = cl.PostinstallStage()
	case cluster.Switch:
		err = cl.SwitchStage()
	case cluster.Clean:
		err = cl.CleanStage()
	}
	if err != nil {
		return err
	}
	if st, err := cl.Status(); err == nil && st.Stage != "idle" {
		fmt.Fprintln(e.stdout, "next stage: "+st.Next)
	}
	return nil
}

// ClusterRollCmd is `cluster roll`.
type ClusterRollCmd struct {
	Parallel bool     `help:"Roll the members given together (quorum must hold with all of them down)."`
	Members  []string `arg:"" optional:"" help:"Members to roll (default: the next one)."`
}

func (c *ClusterRollCmd) Run(e *env, cc *ClusterCmd) error {
	cl, err := cc.cluster(e)
	if err != nil {
		return err
	}
	return cl.RollStage(c.Members, c.Parallel)
}

// ClusterUndoCmd is `cluster undo STAGE [MEMBER]`.
type ClusterUndoCmd struct {
	Stage  string `arg:"" enum:"setup,preinstall,install,postinstall,roll,switch,clean" help:"The stage to undo: the most recent one."`
	Member string `arg:"" optional:"" help:"With roll: the member whose roll to undo."`
}

func (c *ClusterUndoCmd) Run(e *env, cc *ClusterCmd) error {
	cl, err := cc.cluster(e)
	if err != nil {
		return err
	}
	return cl.Undo(c.Stage, c.Member)
}

// ClusterStatusCmd is `cluster status`.
type ClusterStatusCmd struct {
	JSON bool `name:"json" help:"Print a JSON document (docs/JSON.md)."`
}

func (c *ClusterStatusCmd) Run(e *env, cc *ClusterCmd) error {
	cl, err := cc.cluster(e)
	if err != nil {
		return err
	}
	st, err := cl.Status()
	if err != nil {
		return err
	}
	if c.JSON {
		return printJSON(e, st)
	}
	w := e.stdout
	newv := "-"
	if st.New != 0 {
		newv = strconv.Itoa(st.New)
	}
	fmt.Fprintf(w, "stage: %s (next: %s)\nactive format: %d\nnew format: %s\nlead: %s\nquorum vote: %s\n",
		st.Stage, st.Next, st.Active, newv, dash(st.Lead), yes(st.QuorumVote))
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "MEMBER\tVOTES\tROLLED\tON TAGGED\tLAST")
	for _, m := range st.Members {
		last := "-"
		if m.Last != nil {
			last = fmt.Sprintf("%s %s %d->%d by %s", m.Last.Stage, m.Last.Event, m.Last.From, m.Last.To, m.Last.By)
		}
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\n", m.ID, m.Votes, yes(m.Rolled), yes(m.OnTagged), last)
	}
	tw.Flush()
	for _, i := range st.Interrupted {
		fmt.Fprintln(w, "interrupted: "+i)
	}
	return nil
}
