package gpio

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"jsn.dev/jsn/cmd/jsn/cmdutil"
)

func init() { cmdutil.AddGroup(newCmd) }

// newCmd builds `jsn gpio get|set|pulse|watch`.
func newCmd(f *cmdutil.Factory) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "gpio <command>",
		Short: "Read, drive and watch GPIO lines (" + Interface + ")",
		Long: `Read, drive and watch one GPIO line of the exporter's GPIO chip.

Values are logical: 1 means active, which is low on an active_low line. The exporter's only GPIO
driver is used; when it has several, choose one with -d PATH. A GPIO wired as a power switch is
a power driver: use jsn power on|off on it.`,
		Example: `  $ jsn gpio get -d button
  0
  $ jsn gpio set 1 -d reset_line
  $ jsn gpio pulse --width 200ms -d reset_line
  $ jsn gpio watch -d button --edge falling -n 1
  1034.201223456 falling 0`,
	}
	g := cmdutil.NewDriverGroup(f, Interface, cmd)
	cmd.AddCommand(
		&cobra.Command{
			Use: "get", Short: "Print the line's value: 1 (active) or 0", Args: cmdutil.NoArgs,
			Example: "  $ jsn gpio get\n  1",
			RunE: func(cmd *cobra.Command, args []string) error {
				return cmdutil.WithClient(cmd.Context(), g, NewClient, func(ctx context.Context, c *Client) error {
					v, err := c.Get(ctx)
					if err != nil {
						return err
					}
					_, err = fmt.Fprintln(g.Out, bit(v))
					return err
				})
			},
		},
		&cobra.Command{
			Use: "set VALUE", Short: "Drive an output line: 1/active/on or 0/inactive/off", Args: cmdutil.ExactArgs(1),
			Example: "  $ jsn gpio set 1\n  $ jsn gpio set inactive -d reset_line",
			RunE: func(cmd *cobra.Command, args []string) error {
				v, err := ParseValue(args[0])
				if err != nil {
					return cmdutil.Usagef("set: %v", err)
				}
				return cmdutil.WithClient(cmd.Context(), g, NewClient, func(ctx context.Context, c *Client) error {
					return c.Set(ctx, v)
				})
			},
		},
		newPulseCmd(g),
		newWatchCmd(g),
	)
	return cmd
}

func bit(v bool) int {
	if v {
		return 1
	}
	return 0
}

func newPulseCmd(g *cmdutil.DriverGroup) *cobra.Command {
	var width time.Duration
	cmd := &cobra.Command{
		Use: "pulse", Short: "Drive an output line active, wait, then inactive", Args: cmdutil.NoArgs,
		Example: "  # the driver's pulse_width (default 100ms)\n  $ jsn gpio pulse\n  $ jsn gpio pulse --width 2s -d reset_line",
		RunE: func(cmd *cobra.Command, args []string) error {
			if width < 0 || width > MaxPulse {
				return cmdutil.Usagef("--width must be in (0, %s], got %s", MaxPulse, width)
			}
			return cmdutil.WithClient(cmd.Context(), g, NewClient, func(ctx context.Context, c *Client) error {
				return c.Pulse(ctx, width)
			})
		},
	}
	cmd.Flags().DurationVarP(&width, "width", "w", 0, "how long to stay active (default: the driver's pulse_width)")
	return cmd
}

type watchOptions struct {
	edge   string
	count  int
	format string
}

// errEnough stops a watch after --count events.
var errEnough = errors.New("enough events")

func newWatchCmd(g *cmdutil.DriverGroup) *cobra.Command {
	opts := &watchOptions{}
	cmd := &cobra.Command{
		Use:   "watch",
		Short: "Print an input line's edges as they happen, until Ctrl-C",
		Long: `Print an input line's edges as they happen: the kernel's timestamp (seconds since boot),
the edge and the value after it. JSON lines with -o json.`,
		Example: `  $ jsn gpio watch -d button
  1034.201223456 falling 0
  1034.412009871 rising 1
  $ jsn gpio watch --edge rising -n 1 -o json
  {"edge":"rising","active":true,"time_ns":1034412009871,"seqno":2}`,
		Args: cmdutil.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			edge, err := ParseEdge(opts.edge)
			if err != nil {
				return cmdutil.Usagef("--%v", err)
			}
			if opts.count < 0 {
				return cmdutil.Usagef("--count must not be negative, got %d", opts.count)
			}
			ctx, stop := cmdutil.Interruptible(cmd.Context())
			defer stop()
			n := 0
			err = cmdutil.WithClient(ctx, g, NewClient, func(ctx context.Context, c *Client) error {
				return c.Watch(ctx, edge, func(e Event) error {
					if err := printEvent(g, opts.format, e); err != nil {
						return err
					}
					if n++; opts.count > 0 && n >= opts.count {
						return errEnough
					}
					return nil
				})
			})
			if errors.Is(err, errEnough) {
				return nil
			}
			return err
		},
	}
	cmd.Flags().StringVar(&opts.edge, "edge", "both", "rising, falling or both")
	cmd.Flags().IntVarP(&opts.count, "count", "n", 0, "stop after N edges (default: until Ctrl-C)")
	cmdutil.AddFormatFlag(cmd, &opts.format, "text", cmdutil.FormatJSON)
	return cmd
}

func printEvent(g *cmdutil.DriverGroup, format string, e Event) error {
	if format == cmdutil.FormatJSON {
		b, err := json.Marshal(struct {
			Edge   Edge   `json:"edge"`
			Active bool   `json:"active"`
			TimeNs int64  `json:"time_ns"`
			Seqno  uint32 `json:"seqno"`
		}{e.Edge, e.Active, int64(e.Time), e.Seqno})
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(g.Out, "%s\n", b)
		return err
	}
	_, err := fmt.Fprintf(g.Out, "%d.%09d %s %d\n", e.Time/time.Second, e.Time%time.Second, e.Edge, bit(e.Active))
	return err
}
