package cli

import (
	"context"
	"fmt"
	"strings"
	"sync"

	"github.com/spf13/cobra"

	"jsn.dev/jsn/client"
	"jsn.dev/jsn/cmd/jsn/cmdutil"
)

type tapOptions struct {
	f        *cmdutil.Factory
	Exporter string
	Path     string
}

// newTapCmd builds `jsn tap [EXPORTER/]DRIVER`, which works for any driver that taps.
func newTapCmd(f *cmdutil.Factory) *cobra.Command {
	opts := &tapOptions{f: f}
	return &cobra.Command{
		Use:   "tap [EXPORTER/]DRIVER",
		Short: "Watch a driver's output without a lease",
		Long: `Print the output a driver broadcasts on its tap (a serial console's bytes, for example) until
Ctrl-C. Watching needs no lease and never interferes with the lease holder: it is read-only.

DRIVER alone means a driver of the session's exporter ($JSN_EXPORTER or --exporter);
EXPORTER/DRIVER names another exporter on the same bus.`,
		Example: `  $ jsn tap console
  $ jsn tap lab-rpi4/harness.uart | tee uart.log`,
		Args: cmdutil.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if ex, path, ok := strings.Cut(args[0], "/"); ok {
				opts.Exporter, opts.Path = ex, path
			} else {
				opts.Path = args[0]
			}
			if opts.Path == "" || (opts.Exporter == "" && strings.Contains(args[0], "/")) {
				return &cmdutil.UsageError{Err: fmt.Errorf("tap: want DRIVER or EXPORTER/DRIVER, got %q", args[0]), ShowHelp: true}
			}
			ctx, stop := cmdutil.Interruptible(cmd.Context())
			defer stop()
			return runTap(ctx, opts)
		},
	}
}

func runTap(ctx context.Context, opts *tapOptions) error {
	o, err := options(opts.f)
	if opts.Exporter != "" {
		o.Exporter = opts.Exporter
		if o.Host != "" {
			err = nil // the session's exporter is not needed
		}
	}
	if err != nil {
		return err
	}
	c, err := client.Connect(ctx, o.Host, "tap")
	if err != nil {
		return fmt.Errorf("connect to %s: %w", o.Host, err)
	}
	defer c.Close()
	desc, err := c.Exporter(o.Exporter, "").Describe(ctx)
	if err != nil {
		return err
	}
	if desc.Find(opts.Path) == nil {
		return cmdutil.NotFoundf("no driver %q on exporter %s; drivers: %s", opts.Path, o.Exporter, strings.Join(cmdutil.AllPaths(desc), ", "))
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		mu   sync.Mutex
		werr error // guarded by mu
	)
	err = c.Tap(ctx, o.Exporter, opts.Path, func(b []byte) {
		mu.Lock()
		defer mu.Unlock()
		if werr != nil {
			return
		}
		if _, werr = opts.f.Out.Write(b); werr != nil {
			cancel()
		}
	})
	if err != nil {
		return err
	}
	mu.Lock()
	defer mu.Unlock()
	if werr != nil {
		return fmt.Errorf("tap: %w", werr)
	}
	return nil
}
