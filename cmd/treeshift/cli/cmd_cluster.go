package cli

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/alecthomas/kong"

	"github.com/treeshift/treeshift/cluster"
	"github.com/treeshift/treeshift/internal/suggest"
	"github.com/treeshift/treeshift/migrate"
)

// ClusterCmd groups the rolling-upgrade stages.
type ClusterCmd struct {
	Store string `needed:"" help:"The cluster state store: a directory on this host (members are roots on it), or etcd://HOST:PORT[,HOST:PORT...][/PREFIX] (members run agents); needed by every subcommand." placeholder:"STORE"`

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
	Member      ClusterMemberCmd `cmd:"" help:"Add or delete a member, also during an upgrade."`
	Configure   ClusterConfigCmd `cmd:"" help:"Store a configuration (reverse --json) that members apply when they roll."`
	Agent       ClusterAgentCmd  `cmd:"" help:"Run a member's agent (etcd store): report the member's trees, carry out its tasks, coordinate stages when elected."`
}

// cluster opens the cluster the subcommands act on, the context they
// run in (SIGINT and SIGTERM end it) and what closes both. --store is checked here rather than
// by the parser, so that `treeshift cluster` alone lists the subcommands
// instead of asking for it.
func (c *ClusterCmd) cluster(e *env) (*cluster.Cluster, context.Context, func(), error) {
	if c.Store == "" {
		return nil, nil, nil, &migrate.UsageError{Err: fmt.Errorf("cluster: give the cluster state store: --store DIR or --store etcd://HOST:PORT")}
	}
	store, err := cluster.Open(c.Store)
	if err != nil {
		return nil, nil, nil, err
	}
	cl := &cluster.Cluster{
		Store:  store,
		Live:   e.Live,
		Wait:   e.Wait,
		Report: e.log,
		Say:    func(f string, a ...any) { fmt.Fprintf(e.stdout, f+"\n", a...) },
		Suggest: func(args ...string) string {
			return suggest.Prefix{}.Cmd(append([]string{"cluster", "--store", store.String()}, args...)...)
		},
	}
	if d, ok := store.(*cluster.DirStore); ok {
		cl.Shared = filepath.Join(d.Dir, "shared")
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	return cl, ctx, func() { stop(); store.Close() }, nil
}

// ClusterInitCmd is `cluster init`.
type ClusterInitCmd struct {
	Member     []string `required:"" help:"A member: ID=ROOT[:VOTES] with a directory store, ID[:VOTES] with etcd (votes default 1); repeat for each." placeholder:"ID[=ROOT][:VOTES]"`
	QuorumVote bool     `help:"Add a quorum vote (a tie-breaker that is not a member)."`
	Active     int      `help:"The members' current format (default: found on their trees)." placeholder:"VERSION"`
}

func (c *ClusterInitCmd) Run(e *env, cc *ClusterCmd) error {
	var members []cluster.Member
	for _, arg := range c.Member {
		m, err := parseMember(arg)
		if err != nil {
			return err
		}
		members = append(members, m)
	}
	cl, ctx, done, err := cc.cluster(e)
	if err != nil {
		return err
	}
	defer done()
	return cl.Init(ctx, cluster.InitOptions{Members: members, QuorumVote: c.QuorumVote, Active: c.Active})
}

// parseMember reads ID=ROOT[:VOTES] or ID[:VOTES].
func parseMember(arg string) (cluster.Member, error) {
	bad := func(why string) error {
		return &migrate.UsageError{Err: fmt.Errorf("--member %q: %s", arg, why)}
	}
	id, rest, hasRoot := strings.Cut(arg, "=")
	if !hasRoot {
		id, rest = "", arg
	}
	votes := 1
	if i := strings.LastIndexByte(rest, ':'); i >= 0 && (hasRoot || i > 0) {
		n, err := strconv.Atoi(rest[i+1:])
		if err != nil || n < 0 {
			return cluster.Member{}, bad(fmt.Sprintf("votes %q are not a number", rest[i+1:]))
		}
		votes, rest = n, rest[:i]
	}
	if !hasRoot {
		id, rest = rest, ""
	}
	if id == "" || (hasRoot && rest == "") || (!hasRoot && strings.ContainsAny(id, "/")) {
		return cluster.Member{}, bad("expected ID=ROOT[:VOTES] or ID[:VOTES]")
	}
	m := cluster.Member{ID: id, Votes: votes}
	if hasRoot {
		root, err := filepath.Abs(rest)
		if err != nil {
			return cluster.Member{}, err
		}
		m.Root = root
	}
	return m, nil
}

// ClusterCheckCmd is `cluster check setup LEAD`.
type ClusterCheckCmd struct {
	Stage string `arg:"" enum:"setup" help:"The stage to check: setup."`
	Lead  string `arg:"" help:"The lead member."`
	To    int    `default:"${newest}" help:"Target format version (default: newest)." placeholder:"VERSION"`
}

func (c *ClusterCheckCmd) Run(e *env, cc *ClusterCmd) error {
	cl, ctx, done, err := cc.cluster(e)
	if err != nil {
		return err
	}
	defer done()
	problems, err := cl.CheckSetup(ctx, c.Lead, c.To)
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
	cl, ctx, done, err := cc.cluster(e)
	if err != nil {
		return err
	}
	defer done()
	if err := cl.Do(ctx, &cluster.Op{Stage: cluster.Setup, Lead: c.Lead, To: c.To}); err != nil {
		return err
	}
	fmt.Fprintln(e.stdout, "next stage: preinstall")
	return nil
}

// ClusterStageCmd is a stage without arguments.
type ClusterStageCmd struct{}

func (c *ClusterStageCmd) Run(e *env, cc *ClusterCmd, kctx *kong.Context) error {
	cl, ctx, done, err := cc.cluster(e)
	if err != nil {
		return err
	}
	defer done()
	if err := cl.Do(ctx, &cluster.Op{Stage: kctx.Selected().Name}); err != nil {
		return err
	}
	if st, _, err := cl.Store.Load(ctx); err == nil && st.Stage != cluster.Idle {
		fmt.Fprintln(e.stdout, "next stage: "+st.Next())
	}
	return nil
}

// ClusterRollCmd is `cluster roll`.
type ClusterRollCmd struct {
	Parallel bool     `help:"Roll the members given together (quorum must hold with all of them down)."`
	Members  []string `arg:"" optional:"" help:"Members to roll (default: the next one)."`
}

func (c *ClusterRollCmd) Run(e *env, cc *ClusterCmd) error {
	cl, ctx, done, err := cc.cluster(e)
	if err != nil {
		return err
	}
	defer done()
	return cl.Do(ctx, &cluster.Op{Stage: cluster.Roll, Members: c.Members, Parallel: c.Parallel})
}

// ClusterUndoCmd is `cluster undo STAGE [MEMBER]`.
type ClusterUndoCmd struct {
	Stage   string `arg:"" enum:"setup,preinstall,install,postinstall,roll,switch,clean" help:"The stage to undo: the most recent one."`
	Member  string `arg:"" optional:"" help:"With roll: the member whose roll to undo."`
	Discard bool   `help:"Undo a roll or the install even though the member changed since (services enabled, trees made...): drop those changes, stopping through the supervisor what runs of them."`
}

func (c *ClusterUndoCmd) Run(e *env, cc *ClusterCmd) error {
	cl, ctx, done, err := cc.cluster(e)
	if err != nil {
		return err
	}
	defer done()
	return cl.Do(ctx, &cluster.Op{Stage: cluster.OpUndo, Undo: c.Stage, Member: c.Member, Discard: c.Discard})
}

// ClusterMemberCmd is `cluster member add|delete`.
type ClusterMemberCmd struct {
	Add    ClusterMemberAddCmd    `cmd:"" help:"Add a member; during an upgrade it is set up and rolled as the others were."`
	Delete ClusterMemberDeleteCmd `cmd:"" help:"Delete a member that is down (its unfinished task is abandoned)."`
}

// ClusterMemberAddCmd is `cluster member add ID[=ROOT][:VOTES]`.
type ClusterMemberAddCmd struct {
	Member string `arg:"" help:"The member: ID=ROOT[:VOTES] with a directory store, ID[:VOTES] with etcd (its agent must be running); votes default 1." placeholder:"ID[=ROOT][:VOTES]"`
}

func (c *ClusterMemberAddCmd) Run(e *env, cc *ClusterCmd) error {
	m, err := parseMember(c.Member)
	if err != nil {
		return err
	}
	if err := cluster.CheckMember(m); err != nil {
		return err
	}
	cl, ctx, done, err := cc.cluster(e)
	if err != nil {
		return err
	}
	defer done()
	return cl.Do(ctx, &cluster.Op{Stage: cluster.OpMemberAdd, Member: m.ID, Root: m.Root, Votes: m.Votes})
}

// ClusterMemberDeleteCmd is `cluster member delete ID`.
type ClusterMemberDeleteCmd struct {
	ID string `arg:"" help:"The member to delete." placeholder:"ID"`
}

func (c *ClusterMemberDeleteCmd) Run(e *env, cc *ClusterCmd) error {
	cl, ctx, done, err := cc.cluster(e)
	if err != nil {
		return err
	}
	defer done()
	return cl.DeleteMember(ctx, c.ID)
}

// ClusterConfigCmd is `cluster configure FILE`.
type ClusterConfigCmd struct {
	File string `arg:"" help:"Configuration document, as reverse --json prints it; - reads standard input."`
}

func (c *ClusterConfigCmd) Run(e *env, cc *ClusterCmd) error {
	cfg, err := readConfig(e, c.File)
	if err != nil {
		return err
	}
	cl, ctx, done, err := cc.cluster(e)
	if err != nil {
		return err
	}
	defer done()
	_, err = cl.Configure(ctx, cfg, configName(c.File))
	return err
}

// ClusterStatusCmd is `cluster status`.
type ClusterStatusCmd struct {
	JSON bool `name:"json" help:"Print a JSON document (docs/JSON.md)."`
}

func (c *ClusterStatusCmd) Run(e *env, cc *ClusterCmd) error {
	cl, ctx, done, err := cc.cluster(e)
	if err != nil {
		return err
	}
	defer done()
	st, err := cl.Status(ctx)
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
	if st.Config != nil {
		fmt.Fprintf(w, "configuration: %s (stored %s by %s on %s from %s)\n", st.Config.ID, st.Config.Time.Local().Format(time.DateTime), st.Config.By, st.Config.Host, st.Config.File)
	} else {
		fmt.Fprintln(w, "configuration: -")
	}
	if _, etcd := cl.Store.(*cluster.EtcdStore); etcd {
		if c := st.Coordinator; c != nil {
			fmt.Fprintf(w, "coordinator: %s (treeshift %s) since %s\n", c, c.Version, c.Since.Local().Format(time.DateTime))
		} else {
			fmt.Fprintln(w, "coordinator: none: no agent is up to coordinate")
		}
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "MEMBER\tVOTES\tROLLED\tON TAGGED\tCONFIG\tLAST")
	for _, m := range st.Members {
		last := "-"
		if m.Last != nil {
			last = fmt.Sprintf("%s %s %d->%d by %s", m.Last.Stage, m.Last.Event, m.Last.From, m.Last.To, m.Last.By)
		}
		conf := "-"
		if m.Config != nil {
			conf = m.Config.ID
		}
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\t%s\n", m.ID, m.Votes, yes(m.Rolled), yes(m.OnTagged), conf, last)
	}
	tw.Flush()
	fmt.Fprintln(w, "\nreports:")
	tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "MEMBER\tUP\tREPORTED\tHOST\tTREESHIFT\tFORMATS\tSTAMP\tTAGGED\tHEALTHY\tTASK")
	for _, m := range st.Members {
		up := "up"
		if !m.Up {
			up = "DOWN"
		}
		reported, host, ver, formats, stamp, tagged, healthy := "never", "-", "-", "-", "-", "-", "-"
		if r := m.Report; r != nil {
			reported = fmt.Sprintf("%.0fs ago", m.Reported)
			host, ver, stamp, healthy = r.Host, r.Version, strconv.Itoa(r.Stamp), yes(r.Healthy)
			formats = formatsOf(r)
			var tags []string
			for _, t := range r.Tagged {
				tags = append(tags, "v"+strconv.Itoa(t.Version))
			}
			tagged = dash(strings.Join(tags, ","))
		}
		task := "-"
		if t := m.Task; t != nil {
			task = fmt.Sprintf("%d %s %d %s", t.Seq, t.Action, t.Version, t.State)
			if m.Rolling {
				task += " (rolling)"
			}
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", m.ID, up, reported, host, ver, formats, stamp, tagged, healthy, task)
	}
	tw.Flush()
	for _, m := range st.Members {
		if !m.Up {
			fmt.Fprintln(w, m.Down)
		}
	}
	if len(st.History) > 0 {
		fmt.Fprintln(w, "\nhistory:")
		tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "STAGE\tMEMBER\tSTART\tDURATION\tOUTCOME\tBY\tHOST")
		for _, h := range st.History {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", h.Stage, dash(h.Member), h.Start.Local().Format(time.DateTime),
				(time.Duration(h.Seconds * float64(time.Second))).Round(time.Millisecond), h.Outcome, h.By, h.Host)
		}
		tw.Flush()
	}
	if len(st.Operations) > 0 {
		fmt.Fprintln(w, "\noperations:")
		for _, op := range st.Operations {
			by := "-"
			if op.Coordinator != nil {
				by = op.Coordinator.String()
			}
			fmt.Fprintf(w, "%s %s %s, asked by %s on %s at %s, coordinated by %s\n", op.ID, op.Stage, op.State, op.Requested.By, op.Requested.Host,
				op.Requested.Time.Local().Format(time.DateTime), by)
		}
	}
	if len(st.Handovers) > 0 {
		fmt.Fprintln(w, "\nhandovers:")
		for _, h := range st.Handovers {
			fmt.Fprintf(w, "%s %s: %s (treeshift %s) took over from %s (treeshift %s)\n", h.Time.Local().Format(time.DateTime), h.Stage,
				h.To, h.To.Version, h.From, h.From.Version)
		}
	}
	if len(st.Membership) > 0 {
		fmt.Fprintln(w, "\nmembership:")
		for _, m := range st.Membership {
			fmt.Fprintf(w, "%s %s %s (%d vote(s)) by %s on %s\n", m.Time.Local().Format(time.DateTime), m.Event, m.Member, m.Votes, m.By, m.Host)
			for _, c := range m.Changes {
				fmt.Fprintf(w, "  %s\n", c)
			}
		}
	}
	if len(st.Undos) > 0 {
		fmt.Fprintln(w, "\nundone:")
		for _, u := range st.Undos {
			fmt.Fprintf(w, "%s %s %s by %s on %s\n", u.Time.Local().Format(time.DateTime), u.Stage, dash(u.Member), u.By, u.Host)
			for _, d := range u.Dropped {
				fmt.Fprintf(w, "  dropped: %s\n", d)
			}
		}
	}
	for _, i := range st.Interrupted {
		fmt.Fprintln(w, "interrupted: "+i)
	}
	return nil
}

// formatsOf lists the formats a member's trees are in.
func formatsOf(r *cluster.Report) string {
	seen := map[int]bool{}
	var out []string
	for _, t := range r.Trees {
		if !seen[t.Format] {
			seen[t.Format] = true
			out = append(out, strconv.Itoa(t.Format))
		}
	}
	return dash(strings.Join(out, ","))
}

// ClusterAgentCmd is `cluster agent`.
type ClusterAgentCmd struct {
	Member string        `required:"" help:"The member this agent runs for." placeholder:"ID"`
	TTL    time.Duration `name:"ttl" default:"10s" help:"The agent's lease: the member is down once the agent has not renewed it for this long." placeholder:"DURATION"`
	Shared string        `help:"The root of cluster-shared trees this member holds (moved at switch)." placeholder:"DIR"`
}

func (c *ClusterAgentCmd) Run(e *env, cc *ClusterCmd) error {
	if c.TTL < time.Second || c.TTL%time.Second != 0 {
		return &migrate.UsageError{Err: fmt.Errorf("--ttl %s: whole seconds, at least 1s (etcd leases count whole seconds)", c.TTL)}
	}
	// The id names the agent's keys in the store: the rules of every
	// name given on a command line.
	if err := cluster.CheckMember(cluster.Member{ID: c.Member}); err != nil {
		return err
	}
	cl, ctx, done, err := cc.cluster(e)
	if err != nil {
		return err
	}
	defer done()
	root, err := filepath.Abs(e.Root)
	if err != nil {
		return err
	}
	shared := c.Shared
	if shared != "" {
		if shared, err = filepath.Abs(shared); err != nil {
			return err
		}
	}
	a := &cluster.Agent{Member: c.Member, Root: root, Shared: shared, TTL: c.TTL, Live: e.Live, Wait: e.Wait, Report: e.log,
		Say: cl.Say}
	return a.Run(ctx, cl.Store)
}
