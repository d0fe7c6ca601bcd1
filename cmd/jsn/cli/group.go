package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"jsn.dev/jsn/client"
	"jsn.dev/jsn/cmd/jsn/cmdutil"
	"jsn.dev/jsn/controller/api"
)

// Multi-exporter leases ("groups") in the CLI: jsn lease request and jsn shell with several -l,
// --count N or -n NAME; jsn get leases.

// leaseTargets builds the target of a lease request from -l selectors (each asked count
// times), -n names and --exporter: one selector or one exporter is a lease of one exporter,
// anything more a multi-exporter lease (api.LeaseRequest.Parts).
func leaseTargets(selectors []string, count int, names []string, exporter string) (api.LeaseRequest, error) {
	if count < 1 {
		return api.LeaseRequest{}, cmdutil.Usagef("--count %d: want at least 1", count)
	}
	if exporter != "" {
		names = append([]string{exporter}, names...)
	}
	switch {
	case len(selectors) == 0 && len(names) == 0:
		return api.LeaseRequest{}, cmdutil.Usagef("give -l SELECTOR (repeatable, with --count N) or --exporter NAME / -n NAME")
	case count > 1 && len(selectors) == 0:
		return api.LeaseRequest{}, cmdutil.Usagef("--count %d: it counts the exporters of each -l SELECTOR; a named exporter (-n, --exporter) is one", count)
	case len(selectors) == 1 && count == 1 && len(names) == 0:
		return api.LeaseRequest{Selector: selectors[0]}, nil
	case len(selectors) == 0 && len(names) == 1:
		return api.LeaseRequest{Exporter: names[0]}, nil
	}
	for _, s := range selectors {
		if s == "" {
			return api.LeaseRequest{}, cmdutil.Usagef("-l: empty selector")
		}
	}
	return api.LeaseRequest{Parts: client.Selectors(selectors, count, names)}, nil
}

// groupLine describes a group's parts for stderr: "lease G: e1 (part ID1), e2 (part ID2)", or
// what it waits for.
func groupLine(r *api.LeaseReply) string {
	if len(r.Parts) == 0 {
		return fmt.Sprintf("lease %s: %d parts (%s), %s", r.Lease.ID, len(r.Lease.Parts), strings.Join(r.Lease.Parts, " + "), r.Lease.Status)
	}
	var ps []string
	for _, p := range r.Parts {
		ps = append(ps, fmt.Sprintf("%s (part %s)", p.Lease.Exporter, p.Lease.ID))
	}
	return fmt.Sprintf("lease %s: %s", r.Lease.ID, strings.Join(ps, ", "))
}

// printLeases prints leases as the table of jsn lease list and jsn get leases.
func printLeases(out io.Writer, leases []api.Lease) error {
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tEXPORTER\tCLIENT\tSTATUS\tUNTIL\tGROUP\tREASON")
	for _, l := range leases {
		exp := l.Exporter
		switch {
		case exp == "" && len(l.Parts) > 0:
			exp = "(" + strings.Join(l.Parts, " + ") + ")" // a queued group
		case exp == "":
			exp = "(" + l.Selector + ")"
		}
		reason := l.Reason
		if reason == "" {
			reason = "-"
		}
		id := l.ID
		if id == "" {
			id = "-" // another client's lease: only its holder and admins see its id
		}
		group := l.Group
		if group == "" {
			group = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", cmdutil.Printable(id), cmdutil.Printable(exp), cmdutil.Printable(l.Client),
			cmdutil.Printable(l.Status), formatTime(l.End), cmdutil.Printable(group), cmdutil.Printable(reason))
	}
	return tw.Flush()
}

// newGetLeasesCmd builds jsn get leases: jsn lease list under jsn get.
func newGetLeasesCmd(f *cmdutil.Factory) *cobra.Command {
	var all bool
	var format string
	cmd := &cobra.Command{
		Use:     "leases [--all]",
		Aliases: []string{"lease"},
		Short:   "List your leases (everybody's with --all): active, queued, and the group of each part",
		Long: `List leases like jsn lease list. A multi-exporter lease (jsn lease request -l A -l B) shows
as one queued row while it waits (EXPORTER lists what its parts ask for), then as one row per
part, each with the group's id in GROUP; -o json carries "group" and "parts".`,
		Example: `  $ jsn get leases
  ID                EXPORTER     CLIENT  STATUS  UNTIL     GROUP             REASON
  0b7e41c2d9a8f315  rack1-rpi4   alice   active  14:05:00  5d0c2e9a71b34f08  -
  9a1c7d3e5f20b846  host-3       alice   active  14:05:00  5d0c2e9a71b34f08  -
  $ jsn get leases --all -o json`,
		Args: cmdutil.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			ctl, err := connectController(cmd.Context(), f)
			if err != nil {
				return err
			}
			defer ctl.Close()
			leases, err := ctl.ListLeases(cmd.Context(), all)
			if err != nil {
				return err
			}
			if format != "table" {
				if leases == nil {
					leases = []api.Lease{}
				}
				return cmdutil.PrintValue(f.Out, format, leases)
			}
			return printLeases(f.Out, leases)
		},
	}
	cmd.Flags().BoolVar(&all, "all", false, "everybody's leases")
	cmdutil.AddFormatFlag(cmd, &format, "table", cmdutil.FormatJSON, cmdutil.FormatYAML)
	return cmd
}

// runGroupShell leases the exporters of req (a multi-exporter lease) and runs the shell on them:
// JSN_EXPORTERS lists them, and jsn commands inside name one with --exporter NAME.
func runGroupShell(ctx context.Context, opts *shellOptions, req api.LeaseRequest) error {
	f := opts.f
	req.Duration, req.Keepalive = opts.Duration, opts.Keepalive
	wctx, stop := cmdutil.Interruptible(ctx)
	defer stop()
	ctl, err := connectController(wctx, f)
	if err != nil {
		return err
	}
	defer ctl.Close()
	rep, err := acquireLease(wctx, ctl, req, opts.Wait, true, f)
	if err != nil {
		return err
	}
	group := rep.Lease
	if group.Keepalive > 0 {
		kctx, kcancel := context.WithCancel(context.WithoutCancel(ctx))
		kdone := make(chan struct{})
		go func() {
			defer close(kdone)
			_ = ctl.KeepAlive(kctx, group) // its end is noticed by watchGroup
		}()
		defer func() { kcancel(); <-kdone }()
	}
	defer func() {
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		if rerr := ctl.Release(rctx, group.ID); rerr != nil && !client.IsNotFoundOrEnded(rerr) {
			fmt.Fprintf(f.ErrOut, "jsn: release lease %s: %v\n", group.ID, rerr)
		}
	}()

	dir, err := os.MkdirTemp("", "jsn-") // 0700
	if err != nil {
		return fmt.Errorf("create session directory: %w", err)
	}
	defer os.RemoveAll(dir)
	credsDir := filepath.Join(dir, "creds")
	if err := os.Mkdir(credsDir, 0o700); err != nil {
		return fmt.Errorf("create session directory: %w", err)
	}
	caFile := ""
	if ca := ctl.CA(); ca != nil {
		caFile = filepath.Join(dir, "ca.pem")
		if err := os.WriteFile(caFile, ca, 0o600); err != nil {
			return fmt.Errorf("write the controller's CA: %w", err)
		}
	}
	parts, err := ctl.GroupOptions(rep)
	if err != nil {
		return err
	}
	names := client.PartExporters(rep)
	var leases []string
	jwts := map[string]string{}
	for _, p := range rep.Parts {
		e := p.Lease.Exporter
		if err := os.WriteFile(filepath.Join(credsDir, e+".creds"), p.Credential.Creds(), 0o600); err != nil {
			return fmt.Errorf("write lease credential: %w", err)
		}
		leases = append(leases, e+"="+p.Lease.ID)
		jwts[e] = p.Credential.JWT
	}
	// Each exporter serves its part once its beforeLease hook has run; its output is printed
	// with the exporter's name.
	var mu sync.Mutex
	host := ""
	for _, e := range names {
		o := parts[e]
		host = o.Host
		ex, err := client.DialWith(wctx, o, retryNotice(f))
		if err != nil {
			return endedError(ctx, ctl, group.ID, fmt.Errorf("connect to %s for %s: %w", o.Host, e, err))
		}
		defer ex.Close()
		err = ex.WaitReady(wctx, func(h api.HookOutput) {
			mu.Lock()
			defer mu.Unlock()
			fmt.Fprint(f.ErrOut, e+": "+hookLine(h))
		})
		if err != nil {
			return endedError(ctx, ctl, group.ID, err)
		}
	}
	path, err := sessionPath(dir)
	if err != nil {
		return err
	}
	env := sessionEnv(os.Environ(), map[string]string{
		client.EnvHost:      host,
		client.EnvExporter:  "", // several: commands name one with --exporter
		client.EnvLease:     group.ID,
		client.EnvCreds:     "",
		client.EnvCA:        caFile,
		client.EnvWSURL:     "",
		client.EnvWSToken:   "",
		client.EnvExporters: strings.Join(names, ","),
		client.EnvLeases:    strings.Join(leases, ","),
		client.EnvCredsDir:  credsDir,
		"PATH":              path,
	})
	argv := opts.Command
	if len(argv) == 0 {
		sh := os.Getenv("SHELL")
		if sh == "" {
			sh = "/bin/sh"
		}
		argv = []string{sh}
		fmt.Fprintf(f.ErrOut, "jsn: exporters %s leased (lease %s until %s); name one with --exporter NAME (jsn --exporter %s power on); exit to release\n",
			strings.Join(names, ", "), group.ID, formatTime(groupEnd(rep)), names[0])
	}
	hctx, hcancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer func() { hcancel(); wg.Wait() }()
	end := make(chan struct{})
	wg.Add(1)
	go func() {
		defer wg.Done()
		why, over := watchGroup(hctx, ctl, group.ID, groupEnd(rep), credsDir, jwts)
		if !over {
			return
		}
		fmt.Fprintf(f.ErrOut, "jsn: lease %s ended: %s\n", group.ID, why)
		close(end)
	}()
	stop() // from here on signals go to the child
	return runChild(f, argv, env, path, end)
}

// groupEnd is the earliest end of group r's parts.
func groupEnd(r *api.LeaseReply) time.Time {
	var t time.Time
	for _, p := range r.Parts {
		if t.IsZero() || p.Lease.End.Before(t) {
			t = p.Lease.End
		}
	}
	return t
}

// watchGroup follows group id like watchLease follows a lease: until ctx ends (false) or the
// group ends (why, true); renewed part credentials (an extension) replace the files in credsDir.
func watchGroup(ctx context.Context, ctl *client.Controller, id string, end time.Time, credsDir string, jwts map[string]string) (why string, over bool) {
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		t.Reset(min(max(time.Until(end), leaseCheckMin), leaseCheckMax))
		select {
		case <-ctx.Done():
			return "", false
		case <-t.C:
		}
		cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		r, err := ctl.GetLease(cctx, id)
		cancel()
		switch {
		case ctx.Err() != nil:
			return "", false
		case errors.Is(err, client.ErrNotFound):
			return "ended", true
		case err != nil:
			continue
		case r.Lease.Status == api.StatusEnded:
			if r.Lease.Reason == "" {
				return "ended", true
			}
			return r.Lease.Reason, true
		case len(r.Parts) < len(jwts):
			// A part ended: the controller ends the group within a scheduling round.
			end = time.Now().Add(leaseCheckMin)
			continue
		}
		if e := groupEnd(r); !e.IsZero() {
			end = e
		}
		for _, p := range r.Parts {
			e := p.Lease.Exporter
			if p.Credential != nil && p.Credential.JWT != "" && p.Credential.JWT != jwts[e] {
				if err := replaceFile(filepath.Join(credsDir, e+".creds"), p.Credential.Creds()); err == nil {
					jwts[e] = p.Credential.JWT
				}
			}
		}
	}
}
