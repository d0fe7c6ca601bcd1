package video

import (
	"context"
	"fmt"
	"io"
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
		Example: `  $ jsn video snapshot screen.png
  $ jsn video stream screen.mjpeg --frames 50`,
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
	var frames int
	var fps float64
	st := &cobra.Command{
		Use:   "stream FILE [--frames N] [--fps F]",
		Short: "Save the screen's MJPEG stream to FILE (- for stdout) until interrupted or N frames",
		Long: `Save the screen as MJPEG: the JPEG frames one after the other, which ffmpeg and ffplay
read with -f mjpeg (ffplay -f mjpeg screen.mjpeg). Drivers with a stream of their own
(ustreamer, an HTTP camera) keep its rate; the others are snapshotted --fps times a second.`,
		Example: `  $ jsn video stream screen.mjpeg --frames 100
  $ jsn video stream - | ffplay -f mjpeg -`,
		Args: cmdutil.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if frames < 0 {
				return cmdutil.Usagef("stream: --frames must not be negative, got %d", frames)
			}
			if fps < 0 || fps > MaxFPS {
				return cmdutil.Usagef("stream: --fps must be 0 (the driver's default) .. %d, got %v", MaxFPS, fps)
			}
			return runStream(cmd.Context(), g, args[0], frames, fps)
		},
	}
	st.Flags().IntVarP(&frames, "frames", "n", 0, "stop after N frames (0: until interrupted)")
	st.Flags().Float64Var(&fps, "fps", 0, "frames a second for drivers that are snapshotted (default 5)")
	cmd.AddCommand(st)
	return cmd
}

func runStream(ctx context.Context, g *cmdutil.DriverGroup, file string, frames int, fps float64) error {
	if file == "-" && g.IsTerminal() {
		return cmdutil.Usagef("stream: refusing to write video to a terminal: give a file name or redirect stdout")
	}
	var out io.Writer = g.Out
	if file != "-" {
		f, err := os.Create(file)
		if err != nil {
			return fmt.Errorf("stream: %w", err)
		}
		defer f.Close()
		out = f
	}
	ctx, stop := cmdutil.Interruptible(ctx)
	defer stop()
	n := 0
	return cmdutil.WithClient(ctx, g, NewClient, func(ctx context.Context, c *Client) error {
		return c.Stream(ctx, fps, func(jpeg []byte) error {
			if _, err := out.Write(jpeg); err != nil {
				return fmt.Errorf("stream: %w", err)
			}
			if n++; frames > 0 && n >= frames {
				return ErrStop
			}
			return nil
		})
	})
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
