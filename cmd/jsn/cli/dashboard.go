package cli

import (
	"fmt"
	"os/exec"

	"github.com/spf13/cobra"

	"jsn.dev/jsn/cmd/jsn/cmdutil"
)

func newDashboardCmd(f *cmdutil.Factory) *cobra.Command {
	var open bool
	cmd := &cobra.Command{
		Use:   "dashboard",
		Short: "Print (or open) a one-time URL that logs a browser into the lab's dashboard",
		Long: `Ask the controller for a one-time login URL to its web dashboard (exporters, leases and live
consoles). The token in the URL works once, within a minute; the controller trades it for a
short-lived browser credential with your watch rights (an admin: every exporter; a client: the
exporters it holds a lease on). The browser never sees your client config's credential.

The controller must serve the page and a NATS WebSocket:
  jsn controller run --http ADDR --websocket ADDR   (see docs/operations.md, "The dashboard")`,
		Example: `  $ jsn dashboard
  http://lab.example:8080/#token=Zm9v…
  $ jsn dashboard --open        # opens it with xdg-open`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctl, err := connectController(cmd.Context(), f)
			if err != nil {
				return err
			}
			defer ctl.Close()
			tok, err := ctl.DashboardToken(cmd.Context())
			if err != nil {
				return err
			}
			if tok.URL == "" {
				return fmt.Errorf("the controller serves no dashboard: run it with --http ADDR --websocket ADDR")
			}
			fmt.Fprintln(f.Out, tok.URL)
			if open {
				if err := exec.Command("xdg-open", tok.URL).Start(); err != nil {
					return fmt.Errorf("open %s: %w (open it yourself)", "the URL", err)
				}
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&open, "open", false, "open the URL in the desktop's browser (xdg-open)")
	return cmd
}
