package cli

import (
	"fmt"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"jsn.dev/jsn/client"
	"jsn.dev/jsn/cmd/jsn/cmdutil"
	"jsn.dev/jsn/controller/api"
)

// newAdminExporterCmd is `jsn admin exporter disable|enable`: maintenance states.
func newAdminExporterCmd(dial func(*cobra.Command) (*client.Controller, error)) *cobra.Command {
	cmd := &cobra.Command{Use: "exporter", Short: "Take exporters out of service (maintenance) and back",
		Example: `  $ jsn admin exporter disable rack1-rpi4 --reason "SD mux replaced, testing"
  $ jsn get exporters        # STATE shows maintenance and why
  $ jsn admin exporter enable rack1-rpi4`}
	var reason string
	var end bool
	disable := &cobra.Command{
		Use:   "disable NAME --reason TEXT [--end]",
		Short: "Grant no new lease on exporter NAME; its current lease may finish, or ends now with --end",
		Long: `Put an exporter in maintenance: the controller grants it no new lease (requests naming it are
refused with the reason; selector requests go to other exporters or wait) until
'jsn admin exporter enable NAME'. The current lease, if any, runs to its end unless --end
ends it now. An exporter whose afterLease hook fails several times in a row (3 by default,
controller --hook-failures) is put in maintenance by the controller itself.`,
		Example: `  $ jsn admin exporter disable rack1-rpi4 --reason "power supply flaky, ticket 42"
  $ jsn admin exporter disable rack1-rpi4 --reason "urgent repair" --end`,
		Args: cmdutil.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if strings.TrimSpace(reason) == "" {
				return cmdutil.Usagef("give --reason: users waiting for the exporter see it")
			}
			a, err := dial(cmd)
			if err != nil {
				return err
			}
			defer a.Close()
			return a.DisableExporter(cmd.Context(), args[0], reason, end)
		},
	}
	disable.Flags().StringVar(&reason, "reason", "", "why (shown to users)")
	disable.Flags().BoolVar(&end, "end", false, "also end the exporter's current lease now")
	enable := &cobra.Command{
		Use: "enable NAME", Short: "Put exporter NAME back in service (and forget its hook failures)",
		Example: `  $ jsn admin exporter enable rack1-rpi4`,
		Args:    cmdutil.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			a, err := dial(cmd)
			if err != nil {
				return err
			}
			defer a.Close()
			return a.EnableExporter(cmd.Context(), args[0])
		},
	}
	cmd.AddCommand(disable, enable)
	return cmd
}

// newAdminPolicyCmd is `jsn admin policy set|get|list|delete`.
func newAdminPolicyCmd(dial func(*cobra.Command) (*client.Controller, error)) *cobra.Command {
	cmd := &cobra.Command{Use: "policy", Short: "Set the lease policies of clients and groups",
		Long: `A policy limits the lease requests of the clients it names (--client) and of the clients in
the groups it names (--group; jsn admin create client --group): a priority ceiling, a
longest lease (keepalive leases included) and the exporters they may lease (a label
selector, added to every request's). Every policy that applies is enforced; refusals name
the policy. Admins are not bounded by policies.`,
		Example: `  $ jsn admin policy set students --group students --max-duration 1h --max-priority 0 -l 'pool=teaching'
  $ jsn admin policy list
  $ jsn admin policy delete students`}
	var p api.Policy
	var prio int
	set := &cobra.Command{
		Use:   "set NAME (--client C | --group G)... [--max-priority N] [--max-duration D] [-l SELECTOR]",
		Short: "Create or replace a policy",
		Example: `  $ jsn admin policy set ci --client ci-bot --max-duration 4h -l 'board in (rpi4,imx8)'
  $ jsn admin policy set interns --group interns --max-priority 0 --max-duration 30m`,
		Args: cmdutil.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			p.Name = args[0]
			if cmd.Flags().Changed("max-priority") {
				p.MaxPriority = &prio
			}
			a, err := dial(cmd)
			if err != nil {
				return err
			}
			defer a.Close()
			return a.SetPolicy(cmd.Context(), p)
		},
	}
	set.Flags().StringArrayVar(&p.Clients, "client", nil, "client the policy applies to (repeatable)")
	set.Flags().StringArrayVar(&p.Groups, "group", nil, "client group the policy applies to (repeatable)")
	set.Flags().IntVar(&prio, "max-priority", 0, "priority ceiling of their requests")
	set.Flags().DurationVar(&p.MaxDuration, "max-duration", 0, "longest lease they may hold (0: no limit)")
	set.Flags().StringVarP(&p.Selector, "selector", "l", "", "label selector of the exporters they may lease")
	var format string
	get := &cobra.Command{
		Use: "get NAME", Short: "Show a policy", Args: cmdutil.ExactArgs(1),
		Example: `  $ jsn admin policy get ci -o yaml`,
		RunE: func(cmd *cobra.Command, args []string) error {
			a, err := dial(cmd)
			if err != nil {
				return err
			}
			defer a.Close()
			got, err := a.GetPolicy(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			if format == "table" {
				return printPolicies(cmd, []api.Policy{*got})
			}
			return cmdutil.PrintValue(cmd.OutOrStdout(), format, got)
		},
	}
	cmdutil.AddFormatFlag(get, &format, "table", cmdutil.FormatJSON, cmdutil.FormatYAML)
	var lformat string
	list := &cobra.Command{
		Use: "list", Short: "List the policies", Args: cmdutil.NoArgs,
		Example: `  $ jsn admin policy list`,
		RunE: func(cmd *cobra.Command, args []string) error {
			a, err := dial(cmd)
			if err != nil {
				return err
			}
			defer a.Close()
			ps, err := a.ListPolicies(cmd.Context())
			if err != nil {
				return err
			}
			if lformat == "table" {
				return printPolicies(cmd, ps)
			}
			if ps == nil {
				ps = []api.Policy{}
			}
			return cmdutil.PrintValue(cmd.OutOrStdout(), lformat, ps)
		},
	}
	cmdutil.AddFormatFlag(list, &lformat, "table", cmdutil.FormatJSON, cmdutil.FormatYAML)
	del := &cobra.Command{
		Use: "delete NAME", Short: "Delete a policy", Args: cmdutil.ExactArgs(1),
		Example: `  $ jsn admin policy delete interns`,
		RunE: func(cmd *cobra.Command, args []string) error {
			a, err := dial(cmd)
			if err != nil {
				return err
			}
			defer a.Close()
			return a.DeletePolicy(cmd.Context(), args[0])
		},
	}
	cmd.AddCommand(set, get, list, del)
	return cmd
}

func printPolicies(cmd *cobra.Command, ps []api.Policy) error {
	tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tCLIENTS\tGROUPS\tMAX-PRIORITY\tMAX-DURATION\tSELECTOR")
	dash := func(s string) string {
		if s == "" {
			return "-"
		}
		return cmdutil.Printable(s)
	}
	for _, p := range ps {
		prio, dur := "-", "-"
		if p.MaxPriority != nil {
			prio = fmt.Sprint(*p.MaxPriority)
		}
		if p.MaxDuration > 0 {
			dur = p.MaxDuration.String()
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", cmdutil.Printable(p.Name), dash(strings.Join(p.Clients, ",")), dash(strings.Join(p.Groups, ",")),
			prio, dur, dash(p.Selector))
	}
	return tw.Flush()
}
