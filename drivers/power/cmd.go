package power

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"jsn.dev/jsn/cmd/jsn/cmdutil"
)

func init() { cmdutil.AddGroup(newCmd) }

// newCmd builds `jsn power on|off|cycle|status|read`.
func newCmd(f *cmdutil.Factory) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "power <command>",
		Short: "Switch and measure power (" + Interface + ")",
		Long: `Switch a power driver on and off and read its voltage and current.

The exporter's only power driver is used; when it has several, choose one with -d PATH.`,
		Example: `  $ jsn power on
  $ jsn power status
  on
  $ jsn power cycle --wait 3s
  $ jsn power read --count 2
  5.02 V  2.01 A
  4.99 V  1.98 A

  # a board with two supplies
  $ jsn power on -d harness.power`,
	}
	g := cmdutil.NewDriverGroup(f, Interface, cmd)

	simple := func(use, short, example string, run func(ctx context.Context, c *Client) error) *cobra.Command {
		return &cobra.Command{
			Use: use, Short: short, Example: example, Args: cmdutil.NoArgs,
			RunE: func(cmd *cobra.Command, args []string) error {
				return cmdutil.WithClient(cmd.Context(), g, NewClient, run)
			},
		}
	}
	cmd.AddCommand(
		simple("on", "Switch the power on", "  $ jsn power on", runOn),
		simple("off", "Switch the power off", "  $ jsn power off", runOff),
		newCycleCmd(g),
		simple("status", "Print the power state: on or off", "  $ jsn power status\n  off",
			func(ctx context.Context, c *Client) error { return runStatus(ctx, g, c) }),
		newReadCmd(g),
	)
	return cmd
}

func runOn(ctx context.Context, c *Client) error  { return c.On(ctx) }
func runOff(ctx context.Context, c *Client) error { return c.Off(ctx) }

func runStatus(ctx context.Context, g *cmdutil.DriverGroup, c *Client) error {
	s, err := c.Status(ctx)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintln(g.Out, s)
	return err
}

type cycleOptions struct {
	*cmdutil.DriverGroup
	Wait time.Duration // 0 = the driver's default
}

func newCycleCmd(g *cmdutil.DriverGroup) *cobra.Command {
	opts := &cycleOptions{DriverGroup: g}
	cmd := &cobra.Command{
		Use:   "cycle",
		Short: "Switch the power off, wait, and switch it on",
		Example: `  # the driver's default off time
  $ jsn power cycle
  # stay off for 5 seconds
  $ jsn power cycle --wait 5s`,
		Args: cmdutil.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if opts.Wait < 0 {
				return &cmdutil.UsageError{Err: fmt.Errorf("--wait must not be negative, got %s", opts.Wait), ShowHelp: true}
			}
			return cmdutil.WithClient(cmd.Context(), g, NewClient, func(ctx context.Context, c *Client) error {
				return runCycle(ctx, opts, c)
			})
		},
	}
	cmd.Flags().DurationVarP(&opts.Wait, "wait", "w", 0, "how long to stay off (default: the driver's)")
	return cmd
}

func runCycle(ctx context.Context, opts *cycleOptions, c *Client) error {
	return c.Cycle(ctx, opts.Wait)
}

type readOptions struct {
	*cmdutil.DriverGroup
	Count  int
	Format string // text or json
}

func newReadCmd(g *cmdutil.DriverGroup) *cobra.Command {
	opts := &readOptions{DriverGroup: g}
	cmd := &cobra.Command{
		Use:   "read",
		Short: "Print voltage and current readings until Ctrl-C",
		Example: `  $ jsn power read --count 2
  5.02 V  2.01 A
  4.99 V  1.98 A

  # JSON lines, SI units
  $ jsn power read -n 1 -o json
  {"voltage":5.02,"current":2.01}`,
		Args: cmdutil.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if opts.Count < 0 {
				return &cmdutil.UsageError{Err: fmt.Errorf("--count must not be negative, got %d", opts.Count), ShowHelp: true}
			}
			ctx, stop := cmdutil.Interruptible(cmd.Context())
			defer stop()
			return cmdutil.WithClient(ctx, g, NewClient, func(ctx context.Context, c *Client) error {
				return runRead(ctx, opts, c)
			})
		},
	}
	cmd.Flags().IntVarP(&opts.Count, "count", "n", 0, "stop after N readings (default: until Ctrl-C)")
	cmdutil.AddFormatFlag(cmd, &opts.Format, "text", cmdutil.FormatJSON)
	return cmd
}

func runRead(ctx context.Context, opts *readOptions, c *Client) error {
	err := c.Read(ctx, opts.Count, func(r Reading) error {
		if opts.Format == cmdutil.FormatJSON {
			b, err := json.Marshal(struct {
				Voltage float64 `json:"voltage"`
				Current float64 `json:"current"`
			}{float64(r.Voltage), float64(r.Current)})
			if err != nil {
				return err
			}
			_, err = fmt.Fprintf(opts.Out, "%s\n", b)
			return err
		}
		_, err := fmt.Fprintln(opts.Out, r)
		return err
	})
	if ctx.Err() != nil {
		return nil // stopped by Ctrl-C
	}
	return err
}
