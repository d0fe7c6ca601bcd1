package vnc

import (
	"context"
	"fmt"
	"net"

	"github.com/spf13/cobra"

	"jsn.dev/jsn/client/remote"
	"jsn.dev/jsn/cmd/jsn/cmdutil"
	"jsn.dev/jsn/drivers/network"
)

func init() { cmdutil.AddGroup(newCmd) }

// newCmd builds `jsn vnc`.
func newCmd(f *cmdutil.Factory) *cobra.Command {
	var listen string
	cmd := &cobra.Command{
		Use:   "vnc [--listen ADDR]",
		Short: "Forward the board's VNC server to a local port (" + Interface + ")",
		Long: `Listen on a local TCP address (--listen, default a free port on 127.0.0.1) whose
connections lead to the board's VNC server, through the exporter, and print it as
vnc://ADDR; point a VNC viewer at it. Ctrl-C ends the forward.

The exporter's only VNC driver is used; when it has several, choose one with -d PATH.`,
		Example: `  $ jsn vnc
  vnc://127.0.0.1:41733
  $ jsn vnc --listen 127.0.0.1:5901 -d board.vnc`,
		Args: cmdutil.NoArgs,
	}
	g := cmdutil.NewDriverGroup(f, Interface, cmd)
	cmd.Flags().StringVar(&listen, "listen", "127.0.0.1:0", "local TCP address to listen on")
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		ln, err := net.Listen("tcp", listen)
		if err != nil {
			return cmdutil.Usagef("vnc: --listen %s: %v", listen, err)
		}
		defer ln.Close()
		ctx, stop := cmdutil.Interruptible(cmd.Context())
		defer stop()
		return g.WithDriver(ctx, func(ctx context.Context, d remote.Driver) error {
			fmt.Fprintf(g.ErrOut, "vnc://%s\n", ln.Addr())
			return network.NewClient(d).Forward(ctx, ln)
		})
	}
	return cmd
}
