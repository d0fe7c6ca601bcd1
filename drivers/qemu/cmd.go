package qemu

import (
	"context"
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"jsn.dev/jsn/client/remote"
	"jsn.dev/jsn/cmd/jsn/cmdutil"
)

func init() { cmdutil.AddGroup(newVideoCmd) }

// videoOptions are the options of `jsn video`.
type videoOptions struct {
	f      *cmdutil.Factory
	Driver string // -d PATH; "" = the only video driver
}

// newVideoCmd builds `jsn video snapshot`.
func newVideoCmd(f *cmdutil.Factory) *cobra.Command {
	opts := &videoOptions{f: f}
	cmd := &cobra.Command{
		Use:   "video <command>",
		Short: "Look at a board's screen (" + VideoInterface + ")",
		Long: `Take pictures of a board's screen.

The exporter's only video driver is used; when it has several, choose one with -d PATH.`,
		Example: `  $ jsn video snapshot screen.png`,
		Args:    cmdutil.NoArgs,
	}
	cmdutil.AddDriverFlag(cmd, &opts.Driver, "video")
	cmd.AddCommand(&cobra.Command{
		Use:   "snapshot FILE",
		Short: "Save a PNG of the screen to FILE (- for stdout)",
		Example: `  $ jsn video snapshot screen.png
  $ jsn video snapshot - > screen.png`,
		Args: cmdutil.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runSnapshot(cmd.Context(), opts, args[0])
		},
	})
	return cmd
}

func runSnapshot(ctx context.Context, opts *videoOptions, file string) error {
	if file == "-" && opts.f.IsTerminal() {
		return cmdutil.Usagef("snapshot: refusing to write a PNG to a terminal: give a file name or redirect stdout")
	}
	var b []byte
	err := cmdutil.WithDriver(ctx, opts.f, VideoInterface, opts.Driver, func(ctx context.Context, d remote.Driver) error {
		var err error
		b, err = NewVideoClient(d).Snapshot(ctx)
		return err
	})
	if err != nil {
		return err
	}
	if file == "-" {
		_, err = opts.f.Out.Write(b)
		return err
	}
	if err := os.WriteFile(file, b, 0o644); err != nil {
		return fmt.Errorf("snapshot: %w", err)
	}
	return nil
}
