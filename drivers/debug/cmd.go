package debug

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os/exec"

	"github.com/spf13/cobra"

	"jsn.dev/jsn/client/remote"
	"jsn.dev/jsn/cmd/jsn/cmdutil"
	"jsn.dev/jsn/drivers/network"
)

func init() { cmdutil.AddGroup(newCmd) }

// newCmd builds `jsn debug gdb`.
func newCmd(f *cmdutil.Factory) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "debug <command>",
		Short: "Debug a board: attach gdb to its GDB remote (" + GDBInterface + ")",
		Long: `Reach a board's debug ports from this machine.

The exporter's only GDB remote is used; when it has several, choose one with -d PATH.`,
		Example: `  $ jsn debug gdb -- gdb-multiarch vmlinux
  $ jsn debug gdb --listen 127.0.0.1:3333`,
	}
	g := cmdutil.NewDriverGroup(f, GDBInterface, cmd)
	var listen string
	gdb := &cobra.Command{
		Use:   "gdb [--listen ADDR] [-- GDB [ARG...]]",
		Short: "Forward the board's gdbstub to a local port, or run gdb attached to it",
		Long: `Listen on a local TCP port (--listen, default a free port on 127.0.0.1) whose
connections lead to the board's gdbstub, through the exporter.

Without a command it prints "target remote ADDR" and forwards until interrupted: attach any
gdb with that line. With a command (gdb or gdb-multiarch and its arguments) it runs it with
-ex "target remote ADDR" first, and exits with its exit code when it ends.`,
		Example: `  $ jsn debug gdb
  target remote 127.0.0.1:40177
  $ jsn debug gdb -- gdb -batch -ex "info registers"`,
		RunE: func(cmd *cobra.Command, args []string) error {
			return runGDB(cmd.Context(), g, listen, args)
		},
	}
	gdb.Flags().StringVar(&listen, "listen", "127.0.0.1:0", "local TCP address to listen on")
	cmd.AddCommand(gdb)
	return cmd
}

func runGDB(ctx context.Context, g *cmdutil.DriverGroup, listen string, argv []string) error {
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return cmdutil.Usagef("debug gdb: --listen %s: %v", listen, err)
	}
	defer ln.Close()
	addr := ln.Addr().String()
	ctx, stop := cmdutil.Interruptible(ctx)
	defer stop()
	return g.WithDriver(ctx, func(ctx context.Context, d remote.Driver) error {
		ctx, cancel := context.WithCancel(ctx)
		defer cancel()
		fwd := make(chan error, 1)
		go func() { fwd <- network.NewClient(d).Forward(ctx, ln) }()
		if len(argv) == 0 {
			fmt.Fprintf(g.ErrOut, "target remote %s\n", addr)
			return <-fwd
		}
		c := exec.CommandContext(ctx, argv[0], append([]string{"-ex", "target remote " + addr}, argv[1:]...)...)
		c.Stdin, c.Stdout, c.Stderr = g.In, g.Out, g.ErrOut
		err := c.Run()
		cancel()
		<-fwd
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return &cmdutil.ExitError{Code: ee.ExitCode()}
		}
		if err != nil {
			return fmt.Errorf("debug gdb: %s: %w", argv[0], err)
		}
		return nil
	})
}
