package flasher

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"jsn.dev/jsn/cmd/jsn/cmdutil"
	"jsn.dev/jsn/drivers/fileserver"
)

func init() { cmdutil.AddGroup(newCmd) }

// newCmd builds `jsn flasher flash`.
func newCmd(f *cmdutil.Factory) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "flasher <command>",
		Short: "Write images to a board's storage through its bootloader (" + Interface + ")",
		Long: `Flash an image through U-Boot: the exporter puts it on its TFTP (or HTTP) server, stops the
board in U-Boot, has U-Boot load it into RAM, checks its CRC-32 and writes it to the target
(mmc, usb, virtio, scsi, sata, nvme). Progress goes to stderr; a failure names the U-Boot
command that failed.

The image must fit in the board's RAM at load_addr. The exporter's only flasher is used; when it
has several, choose with -d PATH.`,
		Example: `  $ jsn flasher flash rootfs.img                   # to the default_target
  $ jsn flasher flash rootfs.img --target "mmc 1"
  $ jsn flasher flash rootfs.img --no-reboot       # the board already runs U-Boot`,
	}
	g := cmdutil.NewDriverGroup(f, Interface, cmd)
	var target, name string
	var noReboot, reboot bool
	flash := &cobra.Command{
		Use:   "flash IMAGE",
		Short: "Upload IMAGE and write it through U-Boot",
		Example: `  $ jsn flasher flash rootfs.img
  $ jsn flasher flash rootfs.img --target "usb 0" --name images/rootfs.img
  $ jsn flasher flash rootfs.img --no-reboot -d board.flasher`,
		Args: cmdutil.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if noReboot && reboot {
				return cmdutil.Usagef("flash: --reboot and --no-reboot exclude each other")
			}
			n := name
			if n == "" {
				n = filepath.Base(args[0])
			}
			if _, err := fileserver.CleanName(n); err != nil {
				return cmdutil.Usagef("flash: --name: %v", err)
			}
			fh, err := os.Open(args[0])
			if err != nil {
				return fmt.Errorf("flash: %w", err)
			}
			defer fh.Close()
			var rb *bool
			if noReboot || reboot {
				v := reboot
				rb = &v
			}
			return cmdutil.WithClient(cmd.Context(), g, NewClient, func(ctx context.Context, c *Client) error {
				fi, err := c.Upload(ctx, n, fh)
				if err != nil {
					return err
				}
				fmt.Fprintf(g.ErrOut, "uploaded %s (%d bytes)\n", fi.Name, fi.Size)
				last := ""
				return c.Flash(ctx, n, target, rb, func(p Progress) {
					switch {
					case p.Phase == "load" && p.Total > 0:
						fmt.Fprintf(g.ErrOut, "\rload: %d/%d bytes (%d%%)", p.Bytes, p.Total, p.Bytes*100/p.Total)
						if p.Bytes == p.Total {
							fmt.Fprintln(g.ErrOut)
						}
					case p.Command != "":
						fmt.Fprintf(g.ErrOut, "%s: %s\n", p.Phase, cmdutil.Printable(p.Command))
					case p.Phase != last:
						fmt.Fprintf(g.ErrOut, "%s\n", p.Phase)
					}
					last = p.Phase
				})
			})
		},
	}
	flash.Flags().StringVar(&target, "target", "", `"mmc 0", "usb 0", "virtio 0", … or a name of the driver's targets (default: default_target)`)
	flash.Flags().StringVar(&name, "name", "", "file name on the exporter's server (default: IMAGE's base name)")
	flash.Flags().BoolVar(&noReboot, "no-reboot", false, "do not power-cycle: interrupt what the board runs")
	flash.Flags().BoolVar(&reboot, "reboot", false, "power-cycle into U-Boot first (the default when the flasher has power)")
	cmd.AddCommand(flash)
	return cmd
}
