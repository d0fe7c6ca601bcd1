package cli

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"jsn.dev/jsn/client"
	"jsn.dev/jsn/cmd/jsn/cmdutil"
	"jsn.dev/jsn/controller/api"
)

type leaseRequestOptions struct {
	f         *cmdutil.Factory
	Selectors []string // -l, repeatable: several make a multi-exporter lease
	Count     int      // --count: exporters per selector
	Names     []string // -n: exporters by name (a multi-exporter lease)
	Duration  time.Duration
	Priority  int
	Wait      time.Duration
	Keepalive bool
	Begin     string

	durationSet bool
}

func newLeaseCmd(f *cmdutil.Factory) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "lease",
		Short: "Request, list, extend and release leases on lab exporters",
		Example: `  $ jsn lease request -l board=rpi4 --duration 30m
  3f2a9c0d1e7b6a55
  $ jsn call --lease 3f2a9c0d1e7b6a55 power.on
  $ jsn lease release 3f2a9c0d1e7b6a55`,
		Args: cmdutil.NoArgs,
	}
	cmd.PersistentFlags().StringVar(&f.ClientConfig, "config", "", "client config file (default $JSN_CLIENT_CONFIG or the current one)")
	cmd.AddCommand(newLeaseRequestCmd(f), newLeaseListCmd(f), newLeaseExtendCmd(f), newLeaseReleaseCmd(f),
		newLeaseShareCmd(f), newLeaseUnshareCmd(f), newLeaseTransferCmd(f))
	return cmd
}

func newLeaseRequestCmd(f *cmdutil.Factory) *cobra.Command {
	opts := &leaseRequestOptions{f: f}
	cmd := &cobra.Command{
		Use:   "request -l SELECTOR... [--count N] | --exporter NAME | -n NAME... [--duration 30m] [--priority N] [--wait 10m] [--keepalive] [--begin TIME]",
		Short: "Request a lease and print its id (queued if every matching exporter is busy)",
		Long: `Request a lease and print its id. If no matching exporter is free the request is queued;
the reply says why, when the earliest matching exporter is expected free and the longest
lease available now ("earliest free at 14:05:00; longest lease available now: 45m").

--keepalive makes a lease that lives while this command runs: it prints the id, then keeps
renewing the lease until it is interrupted (Ctrl-C or SIGTERM release the lease) or killed
(the lease ends a few seconds later, 5 s by default). --duration is then its hard limit
(default: the longest the controller and your policies allow).

--begin TIME schedules the lease: it stays queued until TIME (RFC 3339, or HH:MM today) and
is granted then. A scheduled lease naming an exporter (--exporter) reserves it: leases
granted before TIME on it must end by TIME.

Several exporters at once (a multi-exporter lease, a "group"): repeat -l (one exporter per
selector), add --count N (N distinct exporters for each -l), or name exporters with -n NAME
(repeatable; -n and -l mix). The exporters are granted together or not at all: while they
cannot all be granted the request waits as one (holding nothing). It prints the group's id;
jsn lease extend/release GROUP act on every part, and when one part ends (expired, released,
ended by an admin) the others end too. jsn lease list shows the parts with their GROUP.`,
		Example: `  $ jsn lease request -l board=rpi4 --duration 30m
  3f2a9c0d1e7b6a55
  $ jsn lease request --exporter rack1-rpi4 --wait 10m
  waiting: waiting for 1 matching exporter(s); leased: rack1-rpi4 by bob until 14:05:00; earliest free at 14:05:00
  9b1c44e0a2d35f17
  # held while the CI job runs, never more than 2h
  $ jsn lease request -l board=rpi4 --keepalive --duration 2h > lease-id &
  # tomorrow morning, for the demo
  $ jsn lease request --exporter rack1-rpi4 --begin 2026-12-04T09:00:00+01:00 --duration 1h
  # a board and a host to test it from, granted together
  $ jsn lease request -l board=rpi4 -l role=host
  lease 5d0c2e9a71b34f08: rack1-rpi4 (part 0b7e…), host-3 (part 9a1c…)
  5d0c2e9a71b34f08
  # two boards of a kind, and one named exporter
  $ jsn lease request -l board=rpi4 --count 2 -n can-sniffer`,
		Args: cmdutil.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.durationSet = cmd.Flags().Changed("duration")
			return runLeaseRequest(cmd.Context(), opts)
		},
	}
	cmd.Flags().StringArrayVarP(&opts.Selectors, "selector", "l", nil, "label selector (k=v, k!=v, k in (a,b), k notin (a,b), k, !k); repeat for several exporters")
	cmd.Flags().IntVar(&opts.Count, "count", 1, "how many distinct exporters to lease for each -l selector (together, or none)")
	cmd.Flags().StringArrayVarP(&opts.Names, "name", "n", nil, "lease this exporter by name, with the others of the request (repeatable)")
	cmd.Flags().DurationVar(&opts.Duration, "duration", 30*time.Minute, "how long the lease lasts once granted")
	cmd.Flags().IntVar(&opts.Priority, "priority", 0, "queue priority: higher is served first")
	cmd.Flags().DurationVar(&opts.Wait, "wait", 0, "if queued, wait this long to be granted (0: return at once; with --keepalive: as long as it takes)")
	cmd.Flags().BoolVar(&opts.Keepalive, "keepalive", false, "hold the lease while this command runs (--duration is then the hard limit)")
	cmd.Flags().StringVar(&opts.Begin, "begin", "", "schedule the lease to begin at TIME (RFC 3339 or HH:MM)")
	return cmd
}

// parseBegin parses a --begin time: RFC 3339, or HH:MM[:SS] today (local time).
func parseBegin(s string, now time.Time) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	for _, layout := range []string{"15:04", "15:04:05"} {
		if t, err := time.ParseInLocation(layout, s, now.Location()); err == nil {
			t = time.Date(now.Year(), now.Month(), now.Day(), t.Hour(), t.Minute(), t.Second(), 0, now.Location())
			if t.Before(now) {
				return time.Time{}, fmt.Errorf("--begin %s: that time has passed today; give a date (2006-01-02T15:04:05Z07:00)", s)
			}
			return t, nil
		}
	}
	return time.Time{}, fmt.Errorf("--begin %q: want RFC 3339 (2026-12-04T09:00:00+01:00) or HH:MM", s)
}

func runLeaseRequest(ctx context.Context, opts *leaseRequestOptions) error {
	req, err := leaseTargets(opts.Selectors, opts.Count, opts.Names, opts.f.ExporterName)
	if err != nil {
		return err
	}
	req.Duration, req.Priority, req.Keepalive = opts.Duration, opts.Priority, opts.Keepalive
	if opts.Keepalive && !opts.durationSet {
		req.Duration = 0 // the longest allowed
	}
	if opts.Begin != "" {
		if opts.Keepalive {
			return cmdutil.Usagef("--begin and --keepalive: a keepalive lease is held by a running command; schedule a fixed one")
		}
		if req.Begin, err = parseBegin(opts.Begin, time.Now()); err != nil {
			return cmdutil.Usagef("%v", err)
		}
	}
	ctx, stop := cmdutil.Interruptible(ctx)
	defer stop()
	ctl, err := connectController(ctx, opts.f)
	if err != nil {
		return err
	}
	defer ctl.Close()
	rep, err := acquireLease(ctx, ctl, req, opts.Wait, opts.Wait > 0 || opts.Keepalive, opts.f)
	if err != nil {
		return err
	}
	if rep.Lease.Group != "" {
		fmt.Fprintln(opts.f.ErrOut, groupLine(rep))
	}
	fmt.Fprintln(opts.f.Out, rep.Lease.ID)
	if !opts.Keepalive {
		return nil
	}
	if f, ok := opts.f.Out.(interface{ Sync() error }); ok {
		_ = f.Sync()
	}
	on := rep.Lease.Exporter
	if rep.Lease.Group != "" {
		on = strings.Join(client.PartExporters(rep), ", ")
	}
	fmt.Fprintf(opts.f.ErrOut, "jsn: holding lease %s on %s while this runs (at most until %s); Ctrl-C releases it\n",
		rep.Lease.ID, on, formatTime(rep.Lease.Until))
	kerr := ctl.KeepAlive(ctx, rep.Lease)
	if kerr != nil {
		return &cmdutil.ExitError{Code: exitLeaseEnded, Message: kerr.Error()}
	}
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if err := ctl.Release(rctx, rep.Lease.ID); err != nil && !client.IsNotFoundOrEnded(err) {
		return fmt.Errorf("release %s: %w", rep.Lease.ID, err)
	}
	fmt.Fprintf(opts.f.ErrOut, "jsn: lease %s released\n", rep.Lease.ID)
	return nil
}

// acquireLease requests a lease and, if it is queued and wait, waits up to maxWait (0: no
// bound) printing a progress line on stderr whenever the reason changes. A queued request that
// times out or is interrupted is withdrawn.
func acquireLease(ctx context.Context, ctl *client.Controller, req api.LeaseRequest, maxWait time.Duration, wait bool, f *cmdutil.Factory) (*api.LeaseReply, error) {
	rep, err := ctl.RequestLease(ctx, req)
	if err != nil {
		return nil, err
	}
	if rep.Lease.Status == api.StatusActive {
		return rep, nil
	}
	last := ""
	progress := func(l api.Lease) {
		if l.Status == api.StatusQueued && l.Reason != last {
			last = l.Reason
			fmt.Fprintf(f.ErrOut, "waiting: %s\n", l.Reason)
		}
	}
	progress(*rep.Lease)
	if !wait {
		if req.Begin.IsZero() {
			fmt.Fprintf(f.ErrOut, "lease %s is queued; jsn lease list shows when it is granted\n", rep.Lease.ID)
		} else {
			fmt.Fprintf(f.ErrOut, "lease %s is scheduled for %s; jsn lease list shows it\n", rep.Lease.ID, formatTime(rep.Lease.NotBefore))
		}
		return rep, nil
	}
	wctx, cancel := ctx, context.CancelFunc(func() {})
	if maxWait > 0 {
		wctx, cancel = context.WithTimeoutCause(ctx, maxWait, fmt.Errorf("not granted within %v", maxWait))
	}
	defer cancel()
	got, err := ctl.WaitLease(wctx, rep.Lease.ID, progress)
	if err != nil {
		rctx, rcancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer rcancel()
		_ = ctl.Release(rctx, rep.Lease.ID)
		if wctx.Err() != nil && ctx.Err() == nil {
			return nil, &cmdutil.ExitError{Code: exitError, Message: fmt.Sprintf("lease %s: %v; request withdrawn", rep.Lease.ID, context.Cause(wctx))}
		}
		return nil, err
	}
	return got, nil
}

func newLeaseListCmd(f *cmdutil.Factory) *cobra.Command {
	var all bool
	var format string
	cmd := &cobra.Command{
		Use:   "list [--all]",
		Short: "List your leases (everybody's with --all), active and queued, with why they wait",
		Example: `  $ jsn lease list
  ID                EXPORTER    CLIENT  STATUS  UNTIL     GROUP  REASON
  3f2a9c0d1e7b6a55  rack1-rpi4  alice   active  14:05:00  -      -`,
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

func newLeaseExtendCmd(f *cmdutil.Factory) *cobra.Command {
	var set bool
	cmd := &cobra.Command{
		Use:   "extend [--set] ID DURATION",
		Short: "Make a lease end DURATION from now (never earlier than it does; --set allows that)",
		Long: `Make a lease end DURATION from now, with a renewed credential. An extension never makes the
lease end earlier than it already does: that is refused, and --set says you mean it.`,
		Example: "  $ jsn lease extend 3f2a9c0d1e7b6a55 15m\n  lease 3f2a9c0d1e7b6a55 now ends at 14:20:00\n" +
			"  # end it in 5 minutes, earlier than planned\n  $ jsn lease extend --set 3f2a9c0d1e7b6a55 5m",
		Args: cmdutil.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			d, err := time.ParseDuration(args[1])
			if err != nil || d <= 0 {
				return cmdutil.Usagef("duration %q: want a positive duration like 15m", args[1])
			}
			ctl, err := connectController(cmd.Context(), f)
			if err != nil {
				return err
			}
			defer ctl.Close()
			extend := ctl.Extend
			if set {
				extend = ctl.SetEnd
			}
			rep, err := extend(cmd.Context(), args[0], d)
			if err != nil {
				return err
			}
			end := time.Now().Add(d)
			if rep.Lease != nil && !rep.Lease.End.IsZero() {
				end = rep.Lease.End
			}
			fmt.Fprintf(f.Out, "lease %s now ends at %s\n", args[0], formatTime(end))
			return nil
		},
	}
	cmd.Flags().BoolVar(&set, "set", false, "set the end even if that is earlier than now planned")
	return cmd
}

func newLeaseReleaseCmd(f *cmdutil.Factory) *cobra.Command {
	return &cobra.Command{
		Use:     "release ID...",
		Short:   "End leases (or withdraw queued requests); their credentials are revoked",
		Example: `  $ jsn lease release 3f2a9c0d1e7b6a55`,
		Args:    cmdutil.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctl, err := connectController(cmd.Context(), f)
			if err != nil {
				return err
			}
			defer ctl.Close()
			var errs []error
			for _, id := range args {
				if err := ctl.Release(cmd.Context(), id); err != nil {
					errs = append(errs, fmt.Errorf("release %s: %w", id, err))
				}
			}
			return errors.Join(errs...)
		},
	}
}

// hookLine formats hook output for the terminal.
func hookLine(h api.HookOutput) string {
	if h.Done {
		code := 0
		if h.ExitCode != nil {
			code = *h.ExitCode
		}
		return fmt.Sprintf("jsn: %s hook exited %d\n", h.Hook, code)
	}
	s := string(h.Data)
	if !strings.HasSuffix(s, "\n") {
		s += "\n"
	}
	return fmt.Sprintf("%s: %s", h.Hook, s)
}

func newLeaseShareCmd(f *cmdutil.Factory) *cobra.Command {
	var with string
	cmd := &cobra.Command{
		Use:   "share ID --with CLIENT",
		Short: "Let another client use your lease, within its own allow list",
		Long: `Share an active lease with another client: it gets a credential of its own for the lease,
which lets it call and stream on the leased exporter within its own allow list, until you
unshare it, transfer the lease, or the lease ends. It uses the lease id like its holder: jsn
call --lease ID …, or JSN_LEASE=ID. Each of you has an inbox and streams of your own (neither
reads the other's replies or console), and jsn audit --lease ID names who made each call.
Refused if the exporter is outside the other client's policies.`,
		Example: `  $ jsn lease share 3f2a9c0d1e7b6a55 --with bob
  # bob:
  $ jsn call --lease 3f2a9c0d1e7b6a55 power.on
  $ jsn lease unshare 3f2a9c0d1e7b6a55 --with bob`,
		Args: cmdutil.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if with == "" {
				return cmdutil.Usagef("give --with CLIENT")
			}
			ctl, err := connectController(cmd.Context(), f)
			if err != nil {
				return err
			}
			defer ctl.Close()
			l, err := ctl.Share(cmd.Context(), args[0], with)
			if err != nil {
				return err
			}
			fmt.Fprintf(f.Out, "lease %s shared with %s\n", args[0], strings.Join(l.SharedWith, ", "))
			return nil
		},
	}
	cmd.Flags().StringVar(&with, "with", "", "the client to share the lease with")
	return cmd
}

func newLeaseUnshareCmd(f *cmdutil.Factory) *cobra.Command {
	var with string
	cmd := &cobra.Command{
		Use:     "unshare ID --with CLIENT",
		Short:   "Withdraw a shared lease from a client (its credential is revoked at once)",
		Example: `  $ jsn lease unshare 3f2a9c0d1e7b6a55 --with bob`,
		Args:    cmdutil.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if with == "" {
				return cmdutil.Usagef("give --with CLIENT")
			}
			ctl, err := connectController(cmd.Context(), f)
			if err != nil {
				return err
			}
			defer ctl.Close()
			_, err = ctl.Unshare(cmd.Context(), args[0], with)
			return err
		},
	}
	cmd.Flags().StringVar(&with, "with", "", "the client to withdraw the lease from")
	return cmd
}

func newLeaseTransferCmd(f *cmdutil.Factory) *cobra.Command {
	var to string
	cmd := &cobra.Command{
		Use:   "transfer ID --to CLIENT",
		Short: "Hand your lease over to another client (your credentials for it are revoked)",
		Long: `Transfer an active lease: it becomes the other client's (who may then extend, share and
release it; its allow list applies from now on), and every credential you had for it is
revoked at once (and the streams you opened on it end). Clients it was shared with keep their
access. Refused, naming the policy, if the lease is outside the other client's policies or
caps (its exporter, priority or time left): shorten it first with jsn lease extend --set.`,
		Example: `  $ jsn lease transfer 3f2a9c0d1e7b6a55 --to bob`,
		Args:    cmdutil.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if to == "" {
				return cmdutil.Usagef("give --to CLIENT")
			}
			ctl, err := connectController(cmd.Context(), f)
			if err != nil {
				return err
			}
			defer ctl.Close()
			l, err := ctl.Transfer(cmd.Context(), args[0], to)
			if err != nil {
				return err
			}
			fmt.Fprintf(f.Out, "lease %s is now %s's\n", args[0], l.Client)
			return nil
		},
	}
	cmd.Flags().StringVar(&to, "to", "", "the client to hand the lease to")
	return cmd
}
