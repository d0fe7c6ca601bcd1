package cli

import (
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"jsn.dev/jsn/cmd/jsn/cmdutil"
	"jsn.dev/jsn/controller/api"
)

func newAuditCmd(f *cmdutil.Factory) *cobra.Command {
	var q api.AuditQuery
	var since, until, format string
	cmd := &cobra.Command{
		Use:   "audit [--exporter NAME] [--client NAME] [--lease ID] [--since TIME] [--until TIME]",
		Short: "Show the audit log: lease events and driver calls (who, lease, method, result, duration)",
		Long: `Show the controller's audit log (distributed mode): every lease event (request, queued,
grant, extend, release, expire, revoke, end, cancel) and every driver call an exporter served
(who, lease, driver path.method, result code, duration; never arguments or results), oldest
first. A client sees its own events; an admin sees everybody's.

--since and --until take an RFC 3339 time (2026-01-02T15:04:05Z), a date (2026-01-02) or a
duration back from now (1h, 30m). At most 2000 events are shown; ask again with a later --since
for more. A local session (jsn shell -c) keeps no audit log.`,
		Example: `  $ jsn audit --since 1h
  TIME                 KIND   EVENT  CLIENT  EXPORTER    LEASE             CALL      CODE  DURATION
  2026-01-02 14:01:00  lease  grant  alice   rack1-rpi4  3f2a9c0d1e7b6a55  -         -     -
  2026-01-02 14:01:03  call   call   alice   rack1-rpi4  3f2a9c0d1e7b6a55  power.on  OK    2ms
  $ jsn audit --exporter rack1-rpi4 --kind call -o json`,
		Args: cmdutil.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			now := time.Now()
			var err error
			if q.Since, err = parseWhen(since, now); err != nil {
				return cmdutil.Usagef("--since %q: %v", since, err)
			}
			if q.Until, err = parseWhen(until, now); err != nil {
				return cmdutil.Usagef("--until %q: %v", until, err)
			}
			if q.Limit < 0 || q.Limit > api.AuditMaxLimit {
				return cmdutil.Usagef("--limit %d: want 1 to %d", q.Limit, api.AuditMaxLimit)
			}
			ctl, err := connectController(cmd.Context(), f)
			if err != nil {
				return err
			}
			defer ctl.Close()
			r, err := ctl.Audit(cmd.Context(), q)
			if err != nil {
				return err
			}
			if format != "table" {
				return cmdutil.PrintValue(f.Out, format, r.Events)
			}
			tw := tabwriter.NewWriter(f.Out, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "TIME\tKIND\tEVENT\tCLIENT\tEXPORTER\tLEASE\tCALL\tCODE\tDURATION\tREASON")
			for _, e := range r.Events {
				dur := "-"
				if e.Kind == api.AuditKindCall {
					dur = e.Duration.Round(time.Microsecond).String()
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", e.Time.Local().Format("2006-01-02 15:04:05.000"),
					dash(e.Kind), dash(e.Event), dash(e.Client), dash(e.Exporter), dash(e.Lease), dash(e.Call), dash(e.Code), dur, dash(e.Reason))
			}
			if err := tw.Flush(); err != nil {
				return err
			}
			if r.More {
				last := r.Events[len(r.Events)-1].Time
				fmt.Fprintf(f.ErrOut, "more events: jsn audit --since %s …\n", last.Add(time.Nanosecond).Format(time.RFC3339Nano))
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&f.ClientConfig, "config", "", "client config file (default $JSN_CLIENT_CONFIG or the current one)")
	cmd.Flags().StringVar(&q.Exporter, "exporter", "", "only events of this exporter")
	cmd.Flags().StringVar(&q.Client, "client", "", "only events of this client (an admin's option: a client sees only its own)")
	cmd.Flags().StringVar(&q.Lease, "lease", "", "only events of this lease")
	cmd.Flags().StringVar(&q.Kind, "kind", "", "only lease events (lease) or driver calls (call)")
	cmd.Flags().StringVar(&since, "since", "", "from this time (RFC 3339, a date, or a duration back from now: 1h)")
	cmd.Flags().StringVar(&until, "until", "", "up to this time (same forms as --since)")
	cmd.Flags().IntVar(&q.Limit, "limit", 0, fmt.Sprintf("most events (default and maximum %d)", api.AuditMaxLimit))
	cmdutil.AddFormatFlag(cmd, &format, "table", cmdutil.FormatJSON, cmdutil.FormatYAML)
	return cmd
}

// dash prints s, or "-" for nothing.
func dash(s string) string {
	if s == "" {
		return "-"
	}
	return cmdutil.Printable(s)
}

// parseWhen reads a --since/--until value: "" (none), an RFC 3339 time, a date, or a duration
// back from now.
func parseWhen(s string, now time.Time) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	if d, err := time.ParseDuration(s); err == nil {
		if d < 0 {
			return time.Time{}, fmt.Errorf("a duration back from now must be positive")
		}
		return now.Add(-d), nil
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	if t, err := time.ParseInLocation(time.DateOnly, s, time.Local); err == nil {
		return t, nil
	}
	if t, err := time.ParseInLocation(time.DateTime, s, time.Local); err == nil {
		return t, nil
	}
	return time.Time{}, fmt.Errorf("want an RFC 3339 time (2026-01-02T15:04:05Z), a date (2026-01-02) or a duration like 1h")
}
