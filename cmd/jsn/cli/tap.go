package cli

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"

	"jsn.dev/jsn/client"
	"jsn.dev/jsn/cmd/jsn/cmdutil"
	"jsn.dev/jsn/controller/api"
)

type tapOptions struct {
	f         *cmdutil.Factory
	Exporter  string
	Path      string
	Selector  string
	NoHistory bool
}

// newTapCmd builds `jsn tap [EXPORTER/]DRIVER`, which works for any driver that taps.
func newTapCmd(f *cmdutil.Factory) *cobra.Command {
	opts := &tapOptions{f: f}
	cmd := &cobra.Command{
		Use:   "tap [EXPORTER/]DRIVER | tap -l SELECTOR DRIVER",
		Short: "Watch a driver's output without a lease",
		Long: `Print the output a driver broadcasts on its tap (a serial console's bytes, for example) until
Ctrl-C. Watching never interferes with the lease holder: it is read-only. A serial console's
recent output (its ring buffer, since the current lease began) is printed first, then the live
bytes, with nothing lost or repeated in between; --no-history prints live bytes only.

In a session (jsn shell), DRIVER alone means a driver of the session's exporter ($JSN_EXPORTER or
--exporter) and EXPORTER/DRIVER another exporter on the same bus (in a 'jsn shell -l' session the
lease credential may watch its own exporter only).

Outside a session, with a client config (--config, $JSN_CLIENT_CONFIG or the current one),
EXPORTER/DRIVER is watched with the identity's own watch rights (a viewer, or a client created
with 'jsn admin create client NAME --watch EXPORTER'), else with the credential of the client's
lease on that exporter. -l SELECTOR follows the driver on every exporter the selector matches
(labels, as in 'jsn get exporters -l'), each line prefixed with its exporter's name; exporters that appear later (or come to match) are
followed from then on (the selector is checked again every 5 s).`,
		Example: `  $ jsn tap console
  $ jsn tap lab-rpi4/harness.uart | tee uart.log
  $ jsn tap -l site=lab1 console        # with a viewer's or --watch client's config`,
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
			if opts.Selector != "" && opts.Exporter != "" {
				return &cmdutil.UsageError{Err: fmt.Errorf("tap: -l %s selects the exporters: give DRIVER alone, not %q", opts.Selector, args[0])}
			}
			ctx, stop := cmdutil.Interruptible(cmd.Context())
			defer stop()
			if opts.Selector == "" && (f.Host != "" || f.Env(client.EnvHost) != "") {
				return runTap(ctx, opts)
			}
			return runRemoteTap(ctx, opts)
		},
	}
	cmd.Flags().StringVarP(&opts.Selector, "selector", "l", "", "follow DRIVER on every exporter matching this label selector (needs a client config)")
	cmd.Flags().BoolVar(&opts.NoHistory, "no-history", false, "print live output only, not the recent output first")
	cmd.Flags().StringVar(&f.ClientConfig, "config", "", "client config outside a session (default $"+client.EnvClientConfig+", else the current one)")
	return cmd
}

// syncWriter serialises writes of several watchers and stops them all at the first error.
type syncWriter struct {
	mu     sync.Mutex
	w      io.Writer
	err    error
	cancel context.CancelFunc
}

func (s *syncWriter) write(b []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err != nil {
		return
	}
	if _, s.err = s.w.Write(b); s.err != nil {
		s.cancel()
	}
}

func (s *syncWriter) result() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err != nil {
		return fmt.Errorf("tap: %w", s.err)
	}
	return nil
}

// runTap watches in a session: the session's bus and credential.
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
	c, err := client.ConnectWith(ctx, o)
	if err != nil {
		return fmt.Errorf("connect to %s: %w", o.Host, err)
	}
	defer c.Close()
	desc, err := c.Exporter(o.Exporter, o.Lease).Describe(ctx)
	if err != nil && opts.Exporter != "" {
		// A lease credential describes only its own exporter; the tap itself says whether
		// watching is allowed.
		desc = nil
	} else if err != nil {
		return err
	}
	if desc != nil && desc.Find(opts.Path) == nil {
		return cmdutil.NotFoundf("no driver %q on exporter %s; drivers: %s", opts.Path, o.Exporter, strings.Join(cmdutil.AllPaths(desc), ", "))
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	out := &syncWriter{w: opts.f.Out, cancel: cancel}
	if err := c.Watch(ctx, o.Exporter, opts.Path, client.TapOptions{History: !opts.NoHistory}, out.write); err != nil {
		return err
	}
	return out.result()
}

// tapRescan is how often 'jsn tap -l' looks for exporters that came to match its selector.
var tapRescan = 5 * time.Second

// runRemoteTap watches with a client config: the identity's own watch rights, else the
// credential of its lease on the exporter. With a selector it follows every matching exporter,
// including those that appear (or come to match) while it runs.
func runRemoteTap(ctx context.Context, opts *tapOptions) error {
	ctl, err := connectController(ctx, opts.f)
	if err != nil {
		return err
	}
	defer ctl.Close()
	if opts.Selector == "" && opts.Exporter == "" {
		return &cmdutil.UsageError{Err: fmt.Errorf("tap %s: outside a session, name the exporter (EXPORTER/%s) or select exporters with -l", opts.Path, opts.Path)}
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	out := &syncWriter{w: opts.f.Out, cancel: cancel}
	var (
		wg      sync.WaitGroup
		emu     sync.Mutex
		errs    []error
		running int
		seen    = map[string]bool{} // exporters followed or found without the driver
	)
	// follow starts watching name unless it is already followed; it reports whether it did.
	follow := func(name string) (bool, error) {
		if seen[name] {
			return false, nil
		}
		desc, err := ctl.DescribeExporter(ctx, name)
		if err != nil {
			return false, err
		}
		seen[name] = true
		if desc.Find(opts.Path) == nil {
			if opts.Selector == "" {
				return false, cmdutil.NotFoundf("no driver %q on exporter %s; drivers: %s", opts.Path, name, strings.Join(cmdutil.AllPaths(desc), ", "))
			}
			fmt.Fprintf(opts.f.ErrOut, "jsn: tap: %s has no driver %s; not followed\n", name, opts.Path)
			return false, nil
		}
		fn := out.write
		if opts.Selector != "" {
			fn = prefixLines(name+": ", out.write)
		}
		emu.Lock()
		running++
		emu.Unlock()
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := watchRemote(ctx, ctl, name, opts, fn)
			emu.Lock()
			defer emu.Unlock()
			running--
			if err != nil {
				errs = append(errs, err)
				if running == 0 {
					cancel() // nothing left to follow
				}
			}
		}()
		return true, nil
	}
	if opts.Selector == "" {
		if _, err := follow(opts.Exporter); err != nil {
			return err
		}
	} else {
		exps, err := ctl.ListExporters(ctx, opts.Selector)
		if err != nil {
			return err
		}
		if len(exps) == 0 {
			return cmdutil.NotFoundf("tap: no exporter matches %q", opts.Selector)
		}
		n := 0
		for _, e := range exps {
			ok, err := follow(e.Name)
			if err != nil {
				fmt.Fprintf(opts.f.ErrOut, "jsn: tap: %s: %v (tried again every %s)\n", e.Name, err, tapRescan)
				continue
			}
			if ok {
				n++
			}
		}
		if n == 0 && len(seen) == len(exps) {
			return cmdutil.NotFoundf("tap: no exporter matching %q has a driver %s", opts.Selector, opts.Path)
		}
		// Exporters that appear later, or come to match, are followed from then on.
		wg.Add(1)
		go func() {
			defer wg.Done()
			t := time.NewTicker(tapRescan)
			defer t.Stop()
			for {
				select {
				case <-ctx.Done():
					return
				case <-t.C:
				}
				exps, err := ctl.ListExporters(ctx, opts.Selector)
				if err != nil {
					continue // the controller may be restarting: try again at the next tick
				}
				for _, e := range exps {
					if ok, err := follow(e.Name); err == nil && ok {
						fmt.Fprintf(opts.f.ErrOut, "jsn: tap: following %s (it matches %s now)\n", e.Name, opts.Selector)
					}
				}
			}
		}()
	}
	wg.Wait()
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	return out.result()
}

// watchRemote follows exporter's driver with the identity's watch rights, else with the
// credential of the client's own lease on it.
func watchRemote(ctx context.Context, ctl *client.Controller, exporter string, opts *tapOptions, fn func([]byte)) error {
	to := client.TapOptions{History: !opts.NoHistory}
	err := ctl.Watch(ctx, exporter, opts.Path, to, fn)
	if !errors.Is(err, client.ErrPermissionDenied) || ctl.Role() == client.RoleViewer {
		return err
	}
	leases, lerr := ctl.ListLeases(ctx, false)
	if lerr != nil {
		return lerr
	}
	for _, l := range leases {
		if l.Exporter != exporter || l.Status != api.StatusActive || l.ID == "" {
			continue
		}
		rep, err := ctl.GetLease(ctx, l.ID)
		if err != nil {
			return err
		}
		o, err := ctl.LeaseOptions(rep)
		if err != nil {
			return err
		}
		c, err := client.ConnectWith(ctx, o)
		if err != nil {
			return fmt.Errorf("connect to %s: %w", o.Host, err)
		}
		defer c.Close()
		return c.Watch(ctx, exporter, opts.Path, to, fn)
	}
	return fmt.Errorf("tap %s/%s: %s may not watch %s: it has no watch right on it (jsn admin create client %s --watch %s) and no lease on it: %w",
		exporter, opts.Path, ctl.Name(), exporter, ctl.Name(), exporter, err)
}

// prefixLines returns a writer function that writes whole lines, each prefixed with prefix; a
// partial line waits for its end (or is written once it grows past 4 KiB).
func prefixLines(prefix string, write func([]byte)) func([]byte) {
	var buf []byte
	return func(b []byte) {
		buf = append(buf, b...)
		var out bytes.Buffer
		for {
			i := bytes.IndexByte(buf, '\n')
			if i < 0 {
				if len(buf) > 4096 {
					out.WriteString(prefix)
					out.Write(buf)
					out.WriteByte('\n')
					buf = buf[:0]
				}
				break
			}
			out.WriteString(prefix)
			out.Write(buf[:i+1])
			buf = buf[i+1:]
		}
		buf = append([]byte(nil), buf...)
		if out.Len() > 0 {
			write(out.Bytes())
		}
	}
}
