package opendal

import (
	"context"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/spf13/cobra"

	"jsn.dev/jsn/cmd/jsn/cmdutil"
)

func init() { cmdutil.AddGroup(newCmd) }

// newCmd builds `jsn opendal ls|stat|cat|put|rm|mkdir|hash`.
func newCmd(f *cmdutil.Factory) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "opendal <command>",
		Short: "Read and write files in the exporter's storage (" + Interface + ")",
		Long: `Work with files in a storage attached to the exporter (opendal.Opendal). Paths are
relative to the storage's root; none leaves it.

The exporter's only such driver is used; when it has several, choose one with -d PATH.`,
		Example: `  $ jsn opendal put image.bin images/rpi4.bin
  $ jsn opendal ls images
  $ jsn opendal cat images/rpi4.bin > copy.bin`,
	}
	g := cmdutil.NewDriverGroup(f, Interface, cmd)
	with := func(fn func(ctx context.Context, c *Client) error) func(*cobra.Command, []string) error {
		return func(cmd *cobra.Command, _ []string) error {
			return cmdutil.WithClient(cmd.Context(), g, NewClient, fn)
		}
	}
	ls := &cobra.Command{Use: "ls [DIR]", Short: "List a directory (mode, size, time, path)", Args: cobra.MaximumNArgs(1),
		Example: "  $ jsn opendal ls\n  $ jsn opendal ls images"}
	ls.RunE = func(cmd *cobra.Command, args []string) error {
		dir := ""
		if len(args) == 1 {
			dir = args[0]
		}
		return with(func(ctx context.Context, c *Client) error {
			es, err := c.List(ctx, dir)
			if err != nil {
				return err
			}
			for _, e := range es {
				fmt.Fprintf(g.Out, "%-4s %10d %s %s\n", e.Mode, e.Size, time.Unix(e.MTime, 0).UTC().Format(time.RFC3339), e.Path)
			}
			return nil
		})(cmd, args)
	}
	stat := &cobra.Command{Use: "stat PATH", Short: "Show a file's or directory's mode, size and time", Args: cmdutil.ExactArgs(1),
		Example: "  $ jsn opendal stat images/rpi4.bin"}
	stat.RunE = func(cmd *cobra.Command, args []string) error {
		return with(func(ctx context.Context, c *Client) error {
			e, err := c.Stat(ctx, args[0])
			if err != nil {
				return err
			}
			fmt.Fprintf(g.Out, "%-4s %10d %s %s\n", e.Mode, e.Size, time.Unix(e.MTime, 0).UTC().Format(time.RFC3339), e.Path)
			return nil
		})(cmd, args)
	}
	cat := &cobra.Command{Use: "cat PATH", Short: "Write a file to stdout", Args: cmdutil.ExactArgs(1),
		Example: "  $ jsn opendal cat logs/boot.txt\n  $ jsn opendal cat images/rpi4.bin > copy.bin"}
	cat.RunE = func(cmd *cobra.Command, args []string) error {
		return with(func(ctx context.Context, c *Client) error {
			_, err := c.Read(ctx, args[0], g.Out)
			return err
		})(cmd, args)
	}
	put := &cobra.Command{Use: "put LOCAL PATH", Short: "Upload LOCAL (- for stdin) to PATH", Args: cmdutil.ExactArgs(2),
		Example: "  $ jsn opendal put image.bin images/rpi4.bin\n  $ echo hello | jsn opendal put - notes/hello.txt"}
	put.RunE = func(cmd *cobra.Command, args []string) error {
		var r io.Reader = g.In
		if args[0] != "-" {
			f, err := os.Open(args[0])
			if err != nil {
				return cmdutil.Usagef("put: %v", err)
			}
			defer f.Close()
			r = f
		}
		return with(func(ctx context.Context, c *Client) error {
			_, err := c.Write(ctx, args[1], r)
			return err
		})(cmd, args)
	}
	var recursive bool
	rm := &cobra.Command{Use: "rm [-r] PATH", Short: "Delete a file or empty directory (-r: a whole directory)", Args: cmdutil.ExactArgs(1),
		Example: "  $ jsn opendal rm notes/hello.txt\n  $ jsn opendal rm -r images"}
	rm.Flags().BoolVarP(&recursive, "recursive", "r", false, "delete a directory and everything in it")
	rm.RunE = func(cmd *cobra.Command, args []string) error {
		return with(func(ctx context.Context, c *Client) error {
			if recursive {
				return c.RemoveAll(ctx, args[0])
			}
			return c.Delete(ctx, args[0])
		})(cmd, args)
	}
	mkdir := &cobra.Command{Use: "mkdir PATH", Short: "Make a directory and its parents", Args: cmdutil.ExactArgs(1),
		Example: "  $ jsn opendal mkdir images/2026"}
	mkdir.RunE = func(cmd *cobra.Command, args []string) error {
		return with(func(ctx context.Context, c *Client) error { return c.CreateDir(ctx, args[0]) })(cmd, args)
	}
	var algo string
	hash := &cobra.Command{Use: "hash PATH [--algo sha256]", Short: "Print a file's digest (md5, sha1, sha256, sha512)", Args: cmdutil.ExactArgs(1),
		Example: "  $ jsn opendal hash images/rpi4.bin\n  $ jsn opendal hash images/rpi4.bin --algo md5"}
	hash.Flags().StringVar(&algo, "algo", "sha256", "md5, sha1, sha256 or sha512")
	hash.RunE = func(cmd *cobra.Command, args []string) error {
		return with(func(ctx context.Context, c *Client) error {
			h, err := c.Hash(ctx, args[0], algo)
			if err != nil {
				return err
			}
			fmt.Fprintln(g.Out, h)
			return nil
		})(cmd, args)
	}
	cmd.AddCommand(ls, stat, cat, put, rm, mkdir, hash)
	return cmd
}
