package uboot

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"jsn.dev/jsn/cmd/jsn/cmdutil"
)

func init() { cmdutil.AddGroup(newCmd) }

// newCmd builds `jsn uboot reboot|interrupt|run|env`.
func newCmd(f *cmdutil.Factory) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "uboot <command>",
		Short: "Drive a board's U-Boot console (" + Interface + ")",
		Long: `Stop a board in U-Boot, run U-Boot commands and read or set its environment, through the
exporter's uboot.Console driver (which talks on the board's serial console).

run prints what the command printed and exits with its status. The exporter's only U-Boot
console is used; when it has several, choose with -d PATH.`,
		Example: `  $ jsn uboot reboot                      # power-cycle and stop autoboot
  $ jsn uboot run 'dhcp; tftpboot ${loadaddr} Image' --timeout 5m
  $ jsn uboot env get bootcmd
  $ jsn uboot env set bootargs 'console=ttyS0,115200 root=/dev/mmcblk0p2'`,
	}
	g := cmdutil.NewDriverGroup(f, Interface, cmd)
	var timeout time.Duration
	reboot := &cobra.Command{
		Use:   "reboot",
		Short: "Power-cycle the board and stop it at the U-Boot prompt",
		Example: `  $ jsn uboot reboot
  $ jsn uboot reboot --timeout 5m`,
		Args: cmdutil.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return cmdutil.WithClient(cmd.Context(), g, NewClient, func(ctx context.Context, c *Client) error {
				return c.RebootToConsole(ctx, timeout)
			})
		},
	}
	reboot.Flags().DurationVar(&timeout, "timeout", 0, "how long to wait for U-Boot (default: the driver's boot_timeout)")
	cmd.AddCommand(reboot)
	var itimeout time.Duration
	interrupt := &cobra.Command{
		Use:     "interrupt",
		Short:   "Stop autoboot (or a running command) and wait for the prompt, without touching power",
		Example: `  $ jsn power cycle && jsn uboot interrupt`,
		Args:    cmdutil.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return cmdutil.WithClient(cmd.Context(), g, NewClient, func(ctx context.Context, c *Client) error {
				return c.Interrupt(ctx, itimeout)
			})
		},
	}
	interrupt.Flags().DurationVar(&itimeout, "timeout", 0, "how long to wait for the prompt (default: the driver's boot_timeout)")
	cmd.AddCommand(interrupt)
	var rtimeout time.Duration
	run := &cobra.Command{
		Use:   "run COMMAND...",
		Short: "Run a command line at the U-Boot prompt; print its output, exit with its status",
		Example: `  $ jsn uboot run version
  $ jsn uboot run 'mmc dev 0 && mmc part'`,
		Args: cmdutil.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			line := strings.Join(args, " ")
			return cmdutil.WithClient(cmd.Context(), g, NewClient, func(ctx context.Context, c *Client) error {
				r, err := c.RunStream(ctx, line, rtimeout, func(b []byte) { g.Out.Write(b) })
				if err != nil {
					return err
				}
				if r.Status > 0 {
					return &cmdutil.ExitError{Code: r.Status}
				}
				return nil
			})
		},
	}
	run.Flags().DurationVar(&rtimeout, "timeout", 0, "how long the command may take (default: the driver's command_timeout)")
	cmd.AddCommand(run)
	env := &cobra.Command{Use: "env <get|set>", Short: "Read or set U-Boot environment variables",
		Example: `  $ jsn uboot env get bootcmd
  $ jsn uboot env set serverip 192.168.10.1`}
	env.AddCommand(&cobra.Command{
		Use:     "get NAME",
		Short:   "Print a variable's value",
		Example: `  $ jsn uboot env get bootargs`,
		Args:    cmdutil.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return cmdutil.WithClient(cmd.Context(), g, NewClient, func(ctx context.Context, c *Client) error {
				v, err := c.GetEnv(ctx, args[0])
				if err != nil {
					return err
				}
				fmt.Fprintln(g.Out, cmdutil.Printable(v))
				return nil
			})
		},
	})
	env.AddCommand(&cobra.Command{
		Use:   "set NAME VALUE",
		Short: "Set a variable until reboot (\"\" deletes it; run saveenv to keep it)",
		Example: `  $ jsn uboot env set bootargs 'console=ttyS0,115200'
  $ jsn uboot env set bootargs ''            # delete it`,
		Args: cmdutil.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			return cmdutil.WithClient(cmd.Context(), g, NewClient, func(ctx context.Context, c *Client) error {
				return c.SetEnv(ctx, args[0], args[1])
			})
		},
	})
	cmd.AddCommand(env)
	return cmd
}
