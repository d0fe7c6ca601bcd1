package fileserver

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"jsn.dev/jsn/cmd/jsn/cmdutil"
)

func init() { cmdutil.AddGroup(newCmd) }

// newCmd builds `jsn fileserver put|get|ls|rm|url`.
func newCmd(f *cmdutil.Factory) *cobra.Command {
	cmd := &cobra.Command{
		Use:     "fileserver <command>",
		Aliases: []string{"files"},
		Short:   "Files the exporter serves to the device over TFTP or HTTP (" + Interface + ")",
		Long: `Upload, list and delete the files an exporter's TFTP or HTTP server gives the device
(U-Boot's tftpboot, wget, a PXE loader).

The exporter's only file server is used; when it has several (a tftp and an http one), choose
with -d PATH. Files uploaded during a lease are removed when it ends, unless the server's config
says remove_created_on_close: false.`,
		Example: `  $ jsn fileserver put Image                 # served as "Image"
  $ jsn fileserver put build/zImage boot/zImage -d tftp
  $ jsn fileserver ls
  $ jsn fileserver url boot/zImage           # tftp://192.168.1.10:69/boot/zImage
  $ jsn fileserver get boot/zImage copy.img
  $ jsn fileserver rm boot/zImage`,
	}
	g := cmdutil.NewDriverGroup(f, Interface, cmd)
	cmd.AddCommand(&cobra.Command{
		Use:   "put FILE [NAME]",
		Short: "Upload FILE (- for stdin), served as NAME (default: FILE's base name)",
		Example: `  $ jsn fileserver put vmlinuz
  $ xz -dc rootfs.img.xz | jsn fileserver put - rootfs.img`,
		Args: cmdutil.RangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			file, name := args[0], ""
			if len(args) == 2 {
				name = args[1]
			} else if file == "-" {
				return cmdutil.Usagef("put: give a NAME when reading stdin")
			} else {
				name = filepath.Base(file)
			}
			if _, err := CleanName(name); err != nil {
				return cmdutil.Usagef("put: %v", err)
			}
			in := g.In
			if file != "-" {
				fh, err := os.Open(file)
				if err != nil {
					return fmt.Errorf("put: %w", err)
				}
				defer fh.Close()
				in = fh
			}
			return cmdutil.WithClient(cmd.Context(), g, NewClient, func(ctx context.Context, c *Client) error {
				fi, err := c.Put(ctx, name, in)
				if err != nil {
					return err
				}
				fmt.Fprintf(g.Out, "%s\t%d bytes\n", fi.Name, fi.Size)
				return nil
			})
		},
	})
	cmd.AddCommand(&cobra.Command{
		Use:   "get NAME [FILE]",
		Short: "Download a served file to FILE (default: NAME's base name; - for stdout)",
		Example: `  $ jsn fileserver get boot/Image
  $ jsn fileserver get boot/Image - | sha256sum`,
		Args: cmdutil.RangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			out := filepath.Base(args[0])
			if len(args) == 2 {
				out = args[1]
			}
			if out == "-" && g.IsTerminal() {
				return cmdutil.Usagef("get: refusing to write a file to a terminal: give a FILE or redirect stdout")
			}
			return cmdutil.WithClient(cmd.Context(), g, NewClient, func(ctx context.Context, c *Client) error {
				w := g.Out
				if out != "-" {
					fh, err := os.Create(out)
					if err != nil {
						return fmt.Errorf("get: %w", err)
					}
					defer fh.Close()
					w = fh
				}
				_, err := c.Get(ctx, args[0], w)
				return err
			})
		},
	})
	var format string
	ls := &cobra.Command{
		Use:     "ls",
		Aliases: []string{"list"},
		Short:   "List the served files (name, size, modified)",
		Example: `  $ jsn fileserver ls
  $ jsn fileserver ls -o json -d http`,
		Args: cmdutil.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return cmdutil.WithClient(cmd.Context(), g, NewClient, func(ctx context.Context, c *Client) error {
				fs, err := c.List(ctx)
				if err != nil {
					return err
				}
				if format == "json" {
					var items []any
					for _, f := range fs {
						items = append(items, f.Map())
					}
					return cmdutil.PrintValue(g.Out, format, items)
				}
				tw := tabwriter.NewWriter(g.Out, 0, 4, 2, ' ', 0)
				for _, f := range fs {
					fmt.Fprintf(tw, "%s\t%d\t%s\n", cmdutil.Printable(f.Name), f.Size, f.Modified.Local().Format(time.DateTime))
				}
				return tw.Flush()
			})
		},
	}
	cmdutil.AddFormatFlag(ls, &format, "text", "json")
	cmd.AddCommand(ls)
	cmd.AddCommand(&cobra.Command{
		Use:     "rm NAME...",
		Aliases: []string{"delete"},
		Short:   "Delete served files",
		Example: `  $ jsn fileserver rm boot/Image boot/board.dtb`,
		Args:    cmdutil.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return cmdutil.WithClient(cmd.Context(), g, NewClient, func(ctx context.Context, c *Client) error {
				for _, n := range args {
					if err := c.Delete(ctx, n); err != nil {
						return err
					}
				}
				return nil
			})
		},
	})
	cmd.AddCommand(&cobra.Command{
		Use:   "url NAME",
		Short: "Print the URL the device fetches NAME from",
		Example: `  $ jsn fileserver url boot/Image
  tftp://192.168.10.1:69/boot/Image`,
		Args: cmdutil.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return cmdutil.WithClient(cmd.Context(), g, NewClient, func(ctx context.Context, c *Client) error {
				u, err := c.URL(ctx, args[0])
				if err != nil {
					return err
				}
				fmt.Fprintln(g.Out, u)
				return nil
			})
		},
	})
	return cmd
}
