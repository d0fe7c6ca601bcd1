package cli

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"jsn.dev/jsn/cmd/jsn/cmdutil"
	"jsn.dev/jsn/drivers/network"
)

type forwardOptions struct {
	f      *cmdutil.Factory
	Local  string // listen address, host:port
	Driver string // driver path; "" = the only network driver
}

func newForwardCmd(f *cmdutil.Factory) *cobra.Command {
	opts := &forwardOptions{f: f}
	cmd := &cobra.Command{
		Use:   "forward [LOCAL] [DRIVER]",
		Short: "Forward a local TCP port to a network driver",
		Long: `Listen on a local TCP address and tunnel every connection to a network driver of the
attached exporter, until Ctrl-C.

LOCAL is host:port, or a bare PORT meaning 127.0.0.1:PORT; it defaults to 127.0.0.1:0 (a
free port, printed on stderr). DRIVER is the path of a network driver; it may be left out
when the exporter has only one.`,
		Example: `  # reach the board's ssh port on localhost:8022
  $ jsn forward 8022 network
  forwarding 127.0.0.1:8022 -> network
  $ ssh -p 8022 root@127.0.0.1

  # any free port, the only network driver
  $ jsn forward`,
		Args: cmdutil.RangeArgs(0, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			local, drv, err := forwardArgs(args)
			if err != nil {
				return err
			}
			opts.Local, opts.Driver = local, drv
			return runForward(cmd.Context(), opts)
		},
	}
	return cmd
}

// forwardArgs sorts out [LOCAL] [DRIVER]: with one argument, a port or host:port is LOCAL and
// anything else a driver path.
func forwardArgs(args []string) (local, drv string, err error) {
	local = "127.0.0.1:0"
	switch len(args) {
	case 1:
		if looksLikeAddr(args[0]) {
			local = args[0]
		} else {
			drv = args[0]
		}
	case 2:
		local, drv = args[0], args[1]
	}
	local, err = listenAddr(local)
	return local, drv, err
}

func looksLikeAddr(s string) bool {
	if strings.Contains(s, ":") {
		return true
	}
	_, err := strconv.ParseUint(s, 10, 16)
	return err == nil
}

// listenAddr turns "8022" into "127.0.0.1:8022" and checks host:port forms.
func listenAddr(s string) (string, error) {
	if p, err := strconv.ParseUint(s, 10, 16); err == nil {
		return net.JoinHostPort("127.0.0.1", strconv.FormatUint(p, 10)), nil
	}
	if _, port, err := net.SplitHostPort(s); err != nil || port == "" {
		return "", &cmdutil.UsageError{Err: fmt.Errorf("invalid local address %q: want PORT or HOST:PORT", s), ShowHelp: true}
	}
	return s, nil
}

func runForward(ctx context.Context, opts *forwardOptions) error {
	ctx, stop := cmdutil.Interruptible(ctx)
	defer stop()
	ex, err := opts.f.Exporter(ctx)
	if err != nil {
		return err
	}
	defer ex.Close()
	node, err := cmdutil.SelectDriver(ctx, ex, network.Interface, opts.Driver)
	if err != nil {
		return err
	}
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", opts.Local)
	if err != nil {
		return fmt.Errorf("listen %s: %w", opts.Local, err)
	}
	defer ln.Close()
	fmt.Fprintf(opts.f.ErrOut, "forwarding %s -> %s\n", ln.Addr(), node.Path)
	err = network.NewClient(ex.Driver(node.Path)).Forward(ctx, ln)
	if ctx.Err() != nil {
		return nil // stopped by Ctrl-C: whatever Forward returned is a consequence
	}
	return err
}
