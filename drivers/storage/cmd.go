package storage

import (
	"context"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"jsn.dev/jsn/client/remote"
	"jsn.dev/jsn/cmd/jsn/cmdutil"
)

func init() { cmdutil.AddGroup(newCmd) }

// newCmd builds `jsn storage flash|dump|state|host|dut|off|status`.
func newCmd(f *cmdutil.Factory) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "storage <command>",
		Short: "Flash and read disk images, switch storage muxes (" + Interface + ", " + MuxInterface + ")",
		Long: `Write disk images to a storage driver (a disk image file, a block device, an SD card behind
a mux), read them back, and switch muxes between the exporter (host) and the device under test.

Images may be raw or compressed with gzip, xz, zstd or bzip2: the exporter recognises them by their
first bytes and decompresses as it writes. The exporter's only storage driver is used; when it has
several, choose one with -d PATH.`,
		Example: `  $ jsn storage host
  $ jsn storage flash disk.img.xz
  flashed 1.0 GiB to sdwire (sha256 9f86d0…) in 5.1s
  $ jsn storage dut

  # let the exporter download the image itself (and cache it by sha256)
  $ jsn storage flash https://example.com/os.img.zst --sha256 9f86d081884c7d65…
  $ jsn storage dump backup.img`,
	}
	g := cmdutil.NewDriverGroup(f, Interface, cmd)

	sw := func(use, short string, run func(ctx context.Context, c *Client) error) *cobra.Command {
		return &cobra.Command{
			Use: use, Short: short, Example: "  $ jsn storage " + use, Args: cmdutil.NoArgs,
			RunE: func(cmd *cobra.Command, args []string) error {
				return withMux(cmd.Context(), g, run)
			},
		}
	}
	cmd.AddCommand(
		newFlashCmd(g),
		newDumpCmd(g),
		&cobra.Command{
			Use:   "state",
			Short: "Say whether the storage holds a whole image, or what an interrupted flash left",
			Example: `  $ jsn storage state
  incomplete: the content was left by a flash started 2026-12-02 19:30:01: 86 MiB written, from an upload of 200 MiB, it did not finish (the exporter stopped during it?)`,
			Args: cmdutil.NoArgs,
			RunE: func(cmd *cobra.Command, args []string) error {
				return withStorage(cmd.Context(), g, func(ctx context.Context, path string, c *Client) error {
					st, err := c.State(ctx)
					if err != nil {
						return err
					}
					_, err = fmt.Fprintln(g.Out, st)
					return err
				})
			},
		},
		sw("host", "Connect the mux's storage to the exporter", func(ctx context.Context, c *Client) error { return c.Host(ctx) }),
		sw("dut", "Connect the mux's storage to the device under test", func(ctx context.Context, c *Client) error { return c.DUT(ctx) }),
		sw("off", "Disconnect the mux's storage from the device under test", func(ctx context.Context, c *Client) error { return c.Off(ctx) }),
		sw("status", "Print where the mux's storage is: host, dut or off", func(ctx context.Context, c *Client) error {
			s, err := c.Status(ctx)
			if err != nil {
				return err
			}
			_, err = fmt.Fprintln(g.Out, s)
			return err
		}),
	)
	return cmd
}

// withStorage connects and runs fn with the client of the selected storage or mux driver.
func withStorage(ctx context.Context, g *cmdutil.DriverGroup, fn func(ctx context.Context, path string, c *Client) error) error {
	ex, err := g.Exporter(ctx)
	if err != nil {
		return err
	}
	defer ex.Close()
	desc, err := ex.Describe(ctx)
	if err != nil {
		return err
	}
	// Muxes offer every storage method: pick among both interfaces.
	path := g.Driver
	if path == "" {
		var found []string
		for _, iface := range []string{Interface, MuxInterface} {
			for _, n := range desc.WithInterface(iface) {
				if n.Ref == "" {
					found = append(found, n.Path)
				}
			}
		}
		switch len(found) {
		case 0:
			return cmdutil.NotFoundf("no storage driver on exporter %q", desc.Exporter)
		case 1:
			path = found[0]
		default:
			return cmdutil.InvalidArgf("several storage drivers: %s; choose one with -d PATH", strings.Join(found, ", "))
		}
	} else if n := desc.Find(path); n == nil {
		return cmdutil.NotFoundf("no driver %q", path)
	} else if n.Interface != Interface && n.Interface != MuxInterface {
		return cmdutil.InvalidArgf("driver %q is not a storage driver (it has %s)", path, n.Interface)
	}
	return fn(ctx, path, NewClient(ex.Driver(path)))
}

// withMux connects and runs fn with the client of the selected mux driver.
func withMux(ctx context.Context, g *cmdutil.DriverGroup, fn func(ctx context.Context, c *Client) error) error {
	return cmdutil.WithDriver(ctx, g.Factory, MuxInterface, g.Driver, func(ctx context.Context, d remote.Driver) error {
		return fn(ctx, NewClient(d))
	})
}

type flashCmdOptions struct {
	*cmdutil.DriverGroup
	SHA256 string
	Cache  bool
}

func newFlashCmd(g *cmdutil.DriverGroup) *cobra.Command {
	opts := &flashCmdOptions{DriverGroup: g}
	cmd := &cobra.Command{
		Use:   "flash IMAGE|URL",
		Short: "Write a disk image (raw, .gz, .xz, .zst, .bz2) to the storage",
		Long: `Write a local image file or an http(s) URL to the storage.

A local file is hashed first (SHA-256); if the exporter's image cache already holds it, nothing is
uploaded. A URL is downloaded by the exporter itself, and with --sha256 taken from its cache when
there. Success is reported only once the exporter has verified and synced the image; Ctrl-C aborts
the flash and the exporter discards it (a disk image file is left as it was).`,
		Example: `  $ jsn storage flash disk.img.zst
  flashed 1.0 GiB to storage (sha256 5891b5b5…) in 4.2s
  $ jsn storage flash --cache disk.img.xz       # keep the upload in the exporter's cache
  $ jsn storage flash https://example.com/os.img.xz --sha256 5891b5b522d5df08…`,
		Args: cmdutil.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx, stop := cmdutil.Interruptible(cmd.Context())
			defer stop()
			err := withStorage(ctx, g, func(ctx context.Context, path string, c *Client) error {
				return runFlash(ctx, opts, path, c, args[0])
			})
			if err != nil && ctx.Err() != nil && cmd.Context().Err() == nil {
				return fmt.Errorf("flash interrupted: %w", err)
			}
			return err
		},
	}
	cmd.Flags().StringVar(&opts.SHA256, "sha256", "", "expected SHA-256 of the image file (skips hashing a local file)")
	cmd.Flags().BoolVar(&opts.Cache, "cache", false, "keep an uploaded image in the exporter's cache")
	return cmd
}

func isURL(s string) bool {
	u, err := url.Parse(s)
	return err == nil && (u.Scheme == "http" || u.Scheme == "https") && u.Host != ""
}

func runFlash(ctx context.Context, opts *flashCmdOptions, path string, c *Client, image string) error {
	errOut := opts.ErrOut
	tty := cmdutil.IsTerminal(errOut)
	start := time.Now()
	var res Result
	var err error
	if isURL(image) {
		var p *progress
		res, err = c.WriteURL(ctx, image, opts.SHA256, func(done, total int64) {
			if p == nil {
				p = newProgress(errOut, tty, "flash", total)
			}
			p.set(done)
		})
		if p != nil {
			if err != nil {
				p.abort()
			} else {
				p.done(res.Uploaded)
			}
		}
	} else {
		if _, serr := os.Stat(image); serr != nil {
			return cmdutil.Usagef("flash: %v", serr)
		}
		var p *progress
		var phase Phase
		res, err = c.FlashFile(ctx, image, FlashOptions{SHA256: opts.SHA256, Cache: opts.Cache,
			Progress: func(ph Phase, done, total int64) {
				if ph != phase {
					if p != nil {
						p.done(p.lastN)
					}
					verb := map[Phase]string{PhaseHash: "hash", PhaseUpload: "flash", PhaseCached: "flash (cached)"}[ph]
					p, phase = newProgress(errOut, tty, verb, total), ph
				}
				p.set(done)
				p.lastN = done
			}})
		if p != nil {
			if err != nil {
				p.abort()
			} else {
				p.done(p.lastN)
			}
		}
	}
	if err != nil {
		return err
	}
	sha := res.SHA256
	how := ""
	if res.Format != Raw && res.Format != "" {
		how = " from " + string(res.Format)
	}
	_, err = fmt.Fprintf(opts.Out, "flashed %s%s to %s (sha256 %s) in %s\n", Bytes(res.Written), how, path, sha,
		time.Since(start).Round(100*time.Millisecond))
	if err == nil && res.Note != "" {
		_, err = fmt.Fprintf(opts.ErrOut, "jsn: %s\n", res.Note)
	}
	return err
}

func newDumpCmd(g *cmdutil.DriverGroup) *cobra.Command {
	opts := g
	cmd := &cobra.Command{
		Use:   "dump FILE",
		Short: "Read the whole storage into FILE (- for stdout)",
		Example: `  $ jsn storage dump backup.img
  dumped 1.0 GiB from storage to backup.img in 3.0s
  $ jsn storage dump - | xz > backup.img.xz`,
		Args: cmdutil.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx, stop := cmdutil.Interruptible(cmd.Context())
			defer stop()
			err := withStorage(ctx, opts, func(ctx context.Context, path string, c *Client) error {
				return runDump(ctx, opts, path, c, args[0])
			})
			if err != nil && ctx.Err() != nil && cmd.Context().Err() == nil {
				return fmt.Errorf("dump interrupted: %w", err)
			}
			return err
		},
	}
	return cmd
}

func runDump(ctx context.Context, opts *cmdutil.DriverGroup, path string, c *Client, file string) (err error) {
	start := time.Now()
	size, err := c.Size(ctx)
	if err != nil {
		return err
	}
	var w io.Writer
	var f *os.File
	if file == "-" {
		w = opts.Out
	} else {
		// Write next to the destination and rename, so an interrupted dump leaves no partial file.
		f, err = os.CreateTemp(filepath.Dir(file), "."+filepath.Base(file)+".jsn-*")
		if err != nil {
			return fmt.Errorf("dump: %w", err)
		}
		defer func() {
			if err != nil {
				f.Close()
				os.Remove(f.Name())
			}
		}()
		w = f
	}
	p := newProgress(opts.ErrOut, cmdutil.IsTerminal(opts.ErrOut), "dump", size)
	n, err := c.Read(ctx, w, p.set)
	if err != nil {
		p.abort()
		return err
	}
	p.done(n)
	if f != nil {
		_ = f.Chmod(0o644)
		if err = f.Close(); err != nil {
			return fmt.Errorf("dump: %w", err)
		}
		if err = os.Rename(f.Name(), file); err != nil {
			return fmt.Errorf("dump: %w", err)
		}
		_, err = fmt.Fprintf(opts.Out, "dumped %s from %s to %s in %s\n", Bytes(n), path, file,
			time.Since(start).Round(100*time.Millisecond))
	}
	return err
}
