package cli

import (
	"fmt"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"jsn.dev/jsn/cmd/jsn/cmdutil"
	"jsn.dev/jsn/controller/api"
)

type getExportersOptions struct {
	f        *cmdutil.Factory
	Selector string
	Format   string
}

func newGetCmd(f *cmdutil.Factory) *cobra.Command {
	cmd := &cobra.Command{
		Use:     "get",
		Short:   "List things the lab controller knows",
		Example: `  $ jsn get exporters -l board=rpi4`,
		Args:    cmdutil.NoArgs,
	}
	cmd.PersistentFlags().StringVar(&f.ClientConfig, "config", "", "client config file (default $JSN_CLIENT_CONFIG or the current one)")
	opts := &getExportersOptions{f: f}
	ex := &cobra.Command{
		Use:     "exporters [-l SELECTOR]",
		Aliases: []string{"exporter"},
		Short:   "List registered exporters: labels, online or offline, who leases them until when",
		Example: `  $ jsn get exporters
  NAME        LABELS                  STATUS   LEASED BY  UNTIL     HEALTH
  rack1-rpi4  board=rpi4,site=lab1    online   alice      14:05:00  ok
  rack1-imx8  board=imx8,site=lab1    online   -          -         maintenance (admin: new SD mux)
  $ jsn get exporters -l 'board in (rpi4,rpi5),!broken' -o json`,
		Args: cmdutil.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return runGetExporters(cmd, opts)
		},
	}
	ex.Flags().StringVarP(&opts.Selector, "selector", "l", "", "label selector (k=v, k!=v, k in (a,b), k notin (a,b), k, !k)")
	cmdutil.AddFormatFlag(ex, &opts.Format, "table", cmdutil.FormatJSON, cmdutil.FormatYAML)
	cmd.AddCommand(ex, newGetLeasesCmd(f))
	return cmd
}

func runGetExporters(cmd *cobra.Command, opts *getExportersOptions) error {
	ctl, err := connectController(cmd.Context(), opts.f)
	if err != nil {
		return err
	}
	defer ctl.Close()
	exs, err := ctl.ListExporters(cmd.Context(), opts.Selector)
	if err != nil {
		return err
	}
	if opts.Format != "table" {
		if exs == nil {
			exs = []api.ExporterInfo{}
		}
		return cmdutil.PrintValue(opts.f.Out, opts.Format, exs)
	}
	tw := tabwriter.NewWriter(opts.f.Out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tLABELS\tSTATUS\tLEASED BY\tUNTIL\tHEALTH")
	for _, e := range exs {
		status := "offline"
		if e.Online {
			status = "online"
		}
		by, until := "-", "-"
		if e.Lease != nil {
			by, until = e.Lease.Client, formatTime(e.Lease.End)
		}
		health := "ok"
		switch {
		case e.Maintenance != nil:
			health = fmt.Sprintf("maintenance (%s: %s)", e.Maintenance.By, e.Maintenance.Reason)
		case e.HookFailures > 0:
			health = fmt.Sprintf("afterLease hook failed %d time(s) in a row", e.HookFailures)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", cmdutil.Printable(e.Name), cmdutil.Printable(formatLabels(e.Labels)), status,
			cmdutil.Printable(by), until, cmdutil.Printable(health))
	}
	return tw.Flush()
}

func formatLabels(l map[string]string) string {
	if len(l) == 0 {
		return "-"
	}
	keys := make([]string, 0, len(l))
	for k := range l {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for i, k := range keys {
		keys[i] = k + "=" + l[k]
	}
	return strings.Join(keys, ",")
}

// formatTime prints a time of today as HH:MM:SS, others with their date.
func formatTime(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	t = t.Local()
	if y, m, d := t.Date(); y == time.Now().Year() && m == time.Now().Month() && d == time.Now().Day() {
		return t.Format(time.TimeOnly)
	}
	return t.Format(time.DateTime)
}
