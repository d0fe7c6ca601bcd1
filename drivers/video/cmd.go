package video

import (
	"context"
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"jsn.dev/jsn/cmd/jsn/cmdutil"
)

func init() { cmdutil.AddGroup(newCmd) }

// newCmd builds `jsn video snapshot`.
func newCmd(f *cmdutil.Factory) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "video <command>",
		Short: "Look at a board's screen (" + Interface + ")",
		Long: `Take pictures of a board's screen.

The exporter's only video driver is used; when it has several, choose one with -d PATH.`,
		Example: `  $ jsn video snapshot screen.png`,
	}
	g := cmdutil.NewDriverGroup(f, Interface, cmd)
	cmd.AddCommand(&cobra.Command{
		Use:   "snapshot FILE",
		Short: "Save a PNG of the screen to FILE (- for stdout)",
		Example: `  $ jsn video snapshot screen.png
  $ jsn video snapshot - > screen.png`,
		Args: cmdutil.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runSnapshot(cmd.Context(), g, args[0])
		},
	})
	return cmd
}

func runSnapshot(ctx context.Context, g *cmdutil.DriverGroup, file string) error {
	if file == "-" && g.IsTerminal() {
		return cmdutil.Usagef("snapshot: refusing to write a PNG to a terminal: give a file name or redirect stdout")
	}
	var b []byte
	err := cmdutil.WithClient(ctx, g, NewClient, func(ctx context.Context, c *Client) error {
		var err error
		b, err = c.Snapshot(ctx)
		return err
	})
	if err != nil {
		return err
	}
	if file == "-" {
		_, err = g.Out.Write(b)
		return err
	}
	if err := os.WriteFile(file, b, 0o644); err != nil {
		return fmt.Errorf("snapshot: %w", err)
	}
	return nil
}
