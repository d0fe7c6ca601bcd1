package cli

import (
	"log/slog"

	"github.com/spf13/cobra"

	"jsn.dev/jsn/cmd/jsn/cmdutil"
	"jsn.dev/jsn/exporter"
)

type exporterRunOptions struct {
	f       *cmdutil.Factory
	Config  string
	Verbose bool
}

func newExporterCmd(f *cmdutil.Factory) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "exporter",
		Short: "Run an exporter against a lab controller (distributed mode)",
		Example: `  $ jsn admin create exporter rack1-rpi4 -l board=rpi4 --out rack1-rpi4.yaml
  $ jsn exporter run -c rack1-rpi4.yaml`,
		Args: cmdutil.NoArgs,
	}
	cmd.AddCommand(newExporterRunCmd(f))
	return cmd
}

func newExporterRunCmd(f *cmdutil.Factory) *cobra.Command {
	opts := &exporterRunOptions{f: f}
	cmd := &cobra.Command{
		Use:   "run -c FILE",
		Short: "Register with the controller and serve leases until stopped",
		Long: `Open the drivers of an exporter config, connect to its endpoint with its credentials
(retrying and reconnecting forever), register with the controller, heartbeat, and serve
whatever lease the controller grants. Around each lease the config's hooks run:

  hooks:
    beforeLease: {script: "jsn power off", timeout: 60s, onFailure: endLease}
    afterLease:  {script: "jsn power off"}

Hooks get JSN_HOST (a private bus to this exporter), JSN_EXPORTER, JSN_LEASE and
JSN_CLIENT, so jsn commands in them drive this exporter. SIGINT or SIGTERM closes the
session and the drivers; the lease goes on, and a restarted exporter resumes it.`,
		Example: `  $ jsn exporter run -c rack1-rpi4.yaml
  $ jsn exporter run -c rack1-rpi4.yaml -v   # info logs too`,
		Args: cmdutil.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := exporter.LoadConfig(opts.Config)
			if err != nil {
				return &cmdutil.UsageError{Err: err}
			}
			level := slog.LevelWarn
			if opts.Verbose {
				level = slog.LevelInfo
			}
			log := slog.New(slog.NewTextHandler(f.ErrOut, &slog.HandlerOptions{Level: level}))
			ctx, stop := cmdutil.Interruptible(cmd.Context())
			defer stop()
			return exporter.RunRemote(ctx, cfg, log)
		},
	}
	cmd.Flags().StringVarP(&opts.Config, "config", "c", "", "exporter config file with endpoint and credentials (required)")
	cmd.Flags().BoolVarP(&opts.Verbose, "verbose", "v", false, "log informational messages too")
	_ = cmd.MarkFlagRequired("config")
	return cmd
}
