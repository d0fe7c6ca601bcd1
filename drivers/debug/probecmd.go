package debug

import (
	"context"
	"fmt"
	"io"
	"os"
	"strconv"

	"github.com/spf13/cobra"

	"jsn.dev/jsn/client/remote"
	"jsn.dev/jsn/cmd/jsn/cmdutil"
)

func init() { cmdutil.AddGroup(newProbeCmd) }

// ProbeClient is the typed client of a jsn.probe.v1 driver.
type ProbeClient struct{ d remote.Driver }

// NewProbeClient returns a client calling the driver d.
func NewProbeClient(d remote.Driver) *ProbeClient { return &ProbeClient{d: d} }

func (c *ProbeClient) text(ctx context.Context, method string, args ...any) (string, error) {
	var s string
	err := c.d.CallInto(ctx, method, &s, args...)
	return s, err
}

// Info, Reset and Erase run the probe tool's subcommand and return its output.
func (c *ProbeClient) Info(ctx context.Context) (string, error)  { return c.text(ctx, "info") }
func (c *ProbeClient) Reset(ctx context.Context) (string, error) { return c.text(ctx, "reset") }
func (c *ProbeClient) Erase(ctx context.Context) (string, error) { return c.text(ctx, "erase") }

// Read reads words 32-bit words at address.
func (c *ProbeClient) Read(ctx context.Context, address, words int64) (string, error) {
	return c.text(ctx, "read", address, words)
}

// Download uploads the firmware read from r and flashes it; format "" is ELF. It returns the
// tool's output.
func (c *ProbeClient) Download(ctx context.Context, r io.Reader, format string) (string, error) {
	var args []any
	if format != "" {
		args = append(args, format)
	}
	s, err := c.d.Open(ctx, "download", args...)
	if err != nil {
		return "", err
	}
	defer s.Close()
	if _, err := io.Copy(s, r); err != nil {
		return "", fmt.Errorf("download: upload: %w", err)
	}
	if err := s.CloseWrite(); err != nil {
		return "", err
	}
	out, err := io.ReadAll(s)
	return string(out), err
}

// newProbeCmd builds `jsn probe info|reset|erase|read|download`.
func newProbeCmd(f *cmdutil.Factory) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "probe <command>",
		Short: "Flash and debug a microcontroller through the exporter's debug probe (" + ProbeInterface + ")",
		Long: `Run the exporter's probe tool (probe-rs for debug.ProbeRS, openocd for debug.OpenOCD)
against its probe and chip: flash firmware uploaded from here, erase, reset, read memory.

The exporter's only probe driver is used; when it has several, choose one with -d PATH.`,
		Example: `  $ jsn probe download firmware.elf
  $ jsn probe read 0x20000000 4`,
	}
	g := cmdutil.NewDriverGroup(f, ProbeInterface, cmd)
	show := func(name, short string, fn func(c *ProbeClient, ctx context.Context) (string, error)) *cobra.Command {
		return &cobra.Command{Use: name, Short: short, Args: cmdutil.NoArgs, Example: "  $ jsn probe " + name + "\n  $ jsn probe " + name + " -d mcu.probe",
			RunE: func(cmd *cobra.Command, args []string) error {
				return cmdutil.WithClient(cmd.Context(), g, NewProbeClient, func(ctx context.Context, c *ProbeClient) error {
					out, err := fn(c, ctx)
					fmt.Fprint(g.Out, out)
					return err
				})
			}}
	}
	read := &cobra.Command{Use: "read ADDRESS WORDS", Short: "Read 32-bit words of target memory (ADDRESS in hex or decimal)",
		Example: "  $ jsn probe read 0x20000000 4",
		Args:    cmdutil.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			addr, err := strconv.ParseInt(args[0], 0, 64)
			if err != nil {
				return cmdutil.Usagef("read: ADDRESS %q: want a number such as 0x20000000", args[0])
			}
			n, err := strconv.ParseInt(args[1], 0, 64)
			if err != nil {
				return cmdutil.Usagef("read: WORDS %q: want a number", args[1])
			}
			return cmdutil.WithClient(cmd.Context(), g, NewProbeClient, func(ctx context.Context, c *ProbeClient) error {
				out, err := c.Read(ctx, addr, n)
				fmt.Fprint(g.Out, out)
				return err
			})
		}}
	var format string
	download := &cobra.Command{Use: "download FILE [--format elf|bin|hex|uf2]", Short: "Flash FILE (- for stdin) to the target",
		Example: "  $ jsn probe download firmware.elf\n  $ jsn probe download app.bin --format bin",
		Args:    cmdutil.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var r io.Reader = g.In
			if args[0] != "-" {
				file, err := os.Open(args[0])
				if err != nil {
					return cmdutil.Usagef("download: %v", err)
				}
				defer file.Close()
				r = file
			}
			return cmdutil.WithClient(cmd.Context(), g, NewProbeClient, func(ctx context.Context, c *ProbeClient) error {
				out, err := c.Download(ctx, r, format)
				fmt.Fprint(g.Out, out)
				return err
			})
		}}
	download.Flags().StringVar(&format, "format", "", "firmware format: elf (default), bin, hex, uf2 (probe-rs only)")
	cmd.AddCommand(
		show("info", "Show what the probe sees of the target", (*ProbeClient).Info),
		show("reset", "Reset the target", (*ProbeClient).Reset),
		show("erase", "Erase the target's flash (slow)", (*ProbeClient).Erase),
		read, download)
	return cmd
}
