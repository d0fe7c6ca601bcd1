package cli

import (
	"fmt"
	"os/exec"
	"strings"

	"github.com/spf13/cobra"

	"jsn.dev/jsn/client"
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

With a lease (--lease ID, or $JSN_LEASE as in a 'jsn shell -l' session) of yours or shared
with you, the page may also type into the consoles of that lease's exporter; that login ends
with the lease (log in again after 'jsn lease extend'). Without one the consoles are read-only.

The controller must serve the page and a NATS WebSocket:
  jsn controller run --http ADDR --websocket ADDR   (see docs/operations.md, "The dashboard")`,
		Example: `  $ jsn dashboard
  http://lab.example:8080/#token=Zm9v…
  $ jsn dashboard --open        # opens it with xdg-open
  $ jsn dashboard --lease 3f2a9c0d1e7b6a55   # may type into that lease's consoles`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctl, err := connectController(cmd.Context(), f)
			if err != nil {
				return err
			}
			defer ctl.Close()
			lease := firstNonEmpty(f.Lease, f.Env(client.EnvLease))
			if strings.HasPrefix(lease, "local-") {
				// A local session's lease: its own page is jsn shell --web.
				return fmt.Errorf("lease %s is a local session's: its page is served by jsn shell -c FILE --web 127.0.0.1:PORT", lease)
			}
			tok, err := ctl.DashboardTokenFor(cmd.Context(), lease)
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
