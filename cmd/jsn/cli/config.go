package cli

import (
	"fmt"
	"os"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"jsn.dev/jsn/client"
	"jsn.dev/jsn/cmd/jsn/cmdutil"
)

func newConfigCmd(f *cmdutil.Factory) *cobra.Command {
	cmd := &cobra.Command{
		Use:     "config",
		Short:   "Manage client configs (identities on lab controllers)",
		Example: `  $ jsn config client import alice.yaml`,
		Args:    cmdutil.NoArgs,
	}
	cl := &cobra.Command{
		Use:   "client",
		Short: "Import, choose and list client configs",
		Long: `Client configs (from jsn admin create client) are stored under
$XDG_CONFIG_HOME/jsn/clients/NAME.yaml (0600); $XDG_CONFIG_HOME/jsn/config.yaml names the
current one. $JSN_CLIENT_CONFIG (a file) and $JSN_ENDPOINT override them.`,
		Example: `  $ jsn config client import alice.yaml
  $ jsn config client use alice
  $ jsn config client list`,
		Args: cmdutil.NoArgs,
	}
	var noUse bool
	imp := &cobra.Command{
		Use:     "import FILE",
		Short:   "Store a client config and make it current",
		Example: `  $ jsn config client import alice.yaml`,
		Args:    cmdutil.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			data, err := os.ReadFile(args[0])
			if err != nil {
				return &cmdutil.UsageError{Err: fmt.Errorf("import %s: %w", args[0], err)}
			}
			c, path, err := client.ImportConfig(args[0], data, !noUse)
			if err != nil {
				return &cmdutil.UsageError{Err: err}
			}
			fmt.Fprintf(f.Out, "imported client config %s (%s) as %s\n", c.Name(), c.Endpoint, path)
			return nil
		},
	}
	imp.Flags().BoolVar(&noUse, "no-use", false, "do not make it the current client config (unless none is)")
	use := &cobra.Command{
		Use:     "use NAME",
		Short:   "Make an imported client config the current one",
		Example: `  $ jsn config client use alice`,
		Args:    cmdutil.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return client.UseConfig(args[0])
		},
	}
	var format string
	list := &cobra.Command{
		Use:     "list",
		Short:   "List the imported client configs (* marks the current one)",
		Example: "  $ jsn config client list\n  CURRENT  NAME   ROLE    ENDPOINT\n  *        alice  client  nats://lab.example:4222",
		Args:    cmdutil.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			entries, err := client.ListConfigs()
			if err != nil {
				return err
			}
			if format != "table" {
				if entries == nil {
					entries = []client.ConfigEntry{}
				}
				return cmdutil.PrintValue(f.Out, format, entries)
			}
			tw := tabwriter.NewWriter(f.Out, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "CURRENT\tNAME\tROLE\tENDPOINT")
			for _, e := range entries {
				cur := ""
				if e.Current {
					cur = "*"
				}
				end := e.Endpoint
				if e.Err != "" {
					end = "(broken: " + e.Err + ")"
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", cur, e.Name, e.Role, end)
			}
			return tw.Flush()
		},
	}
	cmdutil.AddFormatFlag(list, &format, "table", cmdutil.FormatJSON, cmdutil.FormatYAML)
	cl.AddCommand(imp, use, list)
	cmd.AddCommand(cl)
	return cmd
}
