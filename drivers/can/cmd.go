package can

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"jsn.dev/jsn/cmd/jsn/cmdutil"
)

func init() {
	cmdutil.AddGroup(newCmd)
	cmdutil.AddGroup(newIsoTPCmd)
}

// newCmd builds `jsn can send|dump`.
func newCmd(f *cmdutil.Factory) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "can <command>",
		Short: "Send and watch CAN frames (" + Interface + ")",
		Long: `Send frames on an exporter's CAN bus and print the frames on it, in can-utils' syntax.

The exporter's only CAN driver is used; when it has several, choose one with -d PATH.`,
		Example: `  $ jsn can send 123#1122
  $ jsn can send 12345678#DEADBEEF 7DF#0201 123#R
  $ jsn can dump -n 2
    vcan0  123   [2]  11 22
    vcan0  12345678   [4]  DE AD BE EF
  $ jsn can dump --filter 7E8:7FF -o json`,
	}
	g := cmdutil.NewDriverGroup(f, Interface, cmd)
	cmd.AddCommand(
		&cobra.Command{
			Use:   "send FRAME...",
			Short: "Send frames: ID#DATA, ID#R, ID##FLAGSDATA (cansend's syntax)",
			Long: `Send frames in cansend's syntax, in order:

  123#11223344        11-bit id (3 hex digits), up to 8 data bytes
  12345678#DEADBEEF   29-bit id (8 hex digits)
  123#R  123#R3       remote request (with a length)
  123##1112233        CAN FD (the bus needs fd: true): a flags digit (1 BRS, 2 ESI), then up to 64 bytes
  123#11.22.33        dots between bytes are allowed`,
			Example: "  $ jsn can send 7DF#02010C\n  $ jsn can send -d body 123#R",
			Args:    cmdutil.MinimumNArgs(1),
			RunE: func(cmd *cobra.Command, args []string) error {
				var frames []Frame
				for _, a := range args {
					f, err := ParseFrame(a)
					if err != nil {
						return cmdutil.Usagef("%v", err)
					}
					frames = append(frames, f)
				}
				return cmdutil.WithClient(cmd.Context(), g, NewClient, func(ctx context.Context, c *Client) error {
					for _, f := range frames {
						if err := c.Send(ctx, f); err != nil {
							return err
						}
					}
					return nil
				})
			},
		},
		newDumpCmd(g),
	)
	return cmd
}

type dumpOptions struct {
	filters []string
	count   int64
	format  string
}

func newDumpCmd(g *cmdutil.DriverGroup) *cobra.Command {
	o := &dumpOptions{}
	cmd := &cobra.Command{
		Use:   "dump",
		Short: "Print the frames on the bus like candump, until Ctrl-C",
		Long: `Print the frames on the bus like candump does ("  vcan0  123   [2]  11 22"), the ones
this client sends included. --filter takes candump's filters: ID:MASK passes frames whose id
matches ID under MASK, ID~MASK the others; 8 hex digits for 29-bit ids. With -o json, one JSON
object per frame: {"id", "ext", "rtr", "fd", "data" (hex), "time"}.`,
		Example: `  $ jsn can dump
  $ jsn can dump --filter 7E8:7FF --filter 7E0:7FF -n 10
  $ jsn can dump -o json`,
		Args: cmdutil.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			filters := strings.Join(o.filters, ",")
			if _, err := ParseFilters(filters); err != nil {
				return cmdutil.Usagef("--filter: %v", err)
			}
			if o.count < 0 {
				return cmdutil.Usagef("--count must not be negative, got %d", o.count)
			}
			ctx, stop := cmdutil.Interruptible(cmd.Context())
			defer stop()
			return cmdutil.WithClient(ctx, g, NewClient, func(ctx context.Context, c *Client) error {
				ch, err := c.Channel(ctx)
				if err != nil {
					return err
				}
				return c.Dump(ctx, filters, o.count, func(f Frame) error { return printFrame(g.Out, o.format, ch, f) })
			})
		},
	}
	cmd.Flags().StringArrayVar(&o.filters, "filter", nil, "candump filter ID:MASK or ID~MASK (repeatable)")
	cmd.Flags().Int64VarP(&o.count, "count", "n", 0, "stop after N frames (default: until Ctrl-C)")
	cmdutil.AddFormatFlag(cmd, &o.format, "text", cmdutil.FormatJSON)
	return cmd
}

func printFrame(w io.Writer, format, ch string, f Frame) error {
	if format == cmdutil.FormatJSON {
		b, err := json.Marshal(struct {
			ID   uint32    `json:"id"`
			Ext  bool      `json:"ext,omitempty"`
			RTR  bool      `json:"rtr,omitempty"`
			FD   bool      `json:"fd,omitempty"`
			Len  uint8     `json:"len"`
			Data string    `json:"data"`
			Time time.Time `json:"time"`
		}{f.ID, f.Extended, f.RTR, f.FD, f.Len, hex.EncodeToString(f.Data), f.Time})
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(w, "%s\n", b)
		return err
	}
	_, err := fmt.Fprintln(w, f.Dump(ch))
	return err
}

// newIsoTPCmd builds `jsn isotp send|recv`.
func newIsoTPCmd(f *cmdutil.Factory) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "isotp <command>",
		Short: "Send and receive ISO-TP messages (" + IsoTPInterface + ")",
		Long: `Send and receive whole ISO-TP (ISO 15765-2) messages through an exporter's ISO-TP driver.
Messages are written and printed as hex.`,
		Example: "  $ jsn isotp send 0322F190\n  $ jsn isotp recv --timeout 2s\n  62f1904a534e",
	}
	g := cmdutil.NewDriverGroup(f, IsoTPInterface, cmd)
	var timeout time.Duration
	recv := &cobra.Command{
		Use: "recv", Short: "Print the next message as hex", Args: cmdutil.NoArgs,
		Example: "  $ jsn isotp recv --timeout 2s",
		RunE: func(cmd *cobra.Command, args []string) error {
			if timeout < 0 {
				return cmdutil.Usagef("--timeout must not be negative, got %s", timeout)
			}
			return cmdutil.WithClient(cmd.Context(), g, NewIsoTPClient, func(ctx context.Context, c *IsoTPClient) error {
				b, err := c.Recv(ctx, timeout)
				if err != nil {
					return err
				}
				_, err = fmt.Fprintln(g.Out, hex.EncodeToString(b))
				return err
			})
		},
	}
	recv.Flags().DurationVar(&timeout, "timeout", 0, "give up after this long (default: wait)")
	cmd.AddCommand(
		&cobra.Command{
			Use: "send HEX", Short: "Send one message given as hex (dots and spaces allowed)", Args: cmdutil.ExactArgs(1),
			Example: "  $ jsn isotp send 0322F190",
			RunE: func(cmd *cobra.Command, args []string) error {
				b, err := hex.DecodeString(strings.NewReplacer(".", "", " ", "").Replace(args[0]))
				if err != nil || len(b) == 0 {
					return cmdutil.Usagef("send: %q is not a hex message", args[0])
				}
				return cmdutil.WithClient(cmd.Context(), g, NewIsoTPClient, func(ctx context.Context, c *IsoTPClient) error {
					return c.Send(ctx, b)
				})
			},
		},
		recv,
	)
	return cmd
}
