package serial

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sync"
	"syscall"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"jsn.dev/jsn/cmd/jsn/cmdutil"
)

// escapeByte is Ctrl-]: followed by q (or .), it ends `jsn serial console`.
const escapeByte = 0x1d

func newConsoleCmd(g *cmdutil.DriverGroup) *cobra.Command {
	return &cobra.Command{
		Use:   "console",
		Short: "Open an interactive console (Ctrl-] q quits)",
		Long: `Connect the terminal to the serial console. The terminal is put in raw mode, so every key,
Ctrl-C included, goes to the device. Type Ctrl-] then q to quit; Ctrl-] Ctrl-] sends one Ctrl-].
The terminal is restored however the console ends (quit, unplugged device, lease end, SIGTERM or
SIGHUP).

When standard input is not a terminal, console behaves like 'jsn serial pipe'.`,
		Example: `  $ jsn serial console
  Connected to console (Ctrl-] q to quit)
  login:

  $ jsn serial console -d harness.uart`,
		Args: cmdutil.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			f := g.Factory
			in, ok := f.In.(*os.File)
			if !ok || !term.IsTerminal(int(in.Fd())) {
				ctx, stop := cmdutil.Interruptible(cmd.Context())
				defer stop()
				return withClient(ctx, g, func(ctx context.Context, c *Client, _ string) error {
					return runPipe(ctx, f.In, f.Out, 0, c)
				})
			}
			return withClient(cmd.Context(), g, func(ctx context.Context, c *Client, path string) error {
				return runConsole(ctx, in, f.Out, f.ErrOut, path, c)
			})
		},
	}
}

// runConsole connects the terminal in to the console until Ctrl-] q, the end of the stream, or
// SIGINT/SIGTERM/SIGHUP; the terminal mode is restored in every case.
func runConsole(ctx context.Context, in *os.File, out, errOut io.Writer, path string, c *Client) error {
	s, err := c.Connect(ctx)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var once sync.Once
	closeStream := func() { once.Do(func() { s.Close() }) }
	defer closeStream()

	fd := int(in.Fd())
	old, err := term.MakeRaw(fd)
	if err != nil {
		return fmt.Errorf("console: raw terminal: %w", err)
	}
	var restoreOnce sync.Once
	restore := func() { restoreOnce.Do(func() { term.Restore(fd, old) }) }
	defer restore()

	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	defer signal.Stop(sigs)
	go func() {
		select {
		case sig := <-sigs:
			restore()
			cancel(fmt.Errorf("console: %v", sig))
			closeStream()
		case <-ctx.Done():
		}
	}()

	fmt.Fprintf(errOut, "Connected to %s (Ctrl-] q to quit)\r\n", path)

	// Keyboard: stdin is not ours to close, so this goroutine may stay blocked in Read until the
	// process exits; it touches nothing after the console ends.
	go func() {
		buf := make([]byte, 1024)
		esc := false
		for {
			n, err := in.Read(buf)
			if err != nil || ctx.Err() != nil {
				cancel(nil)
				closeStream()
				return
			}
			send, quit := filterEscape(buf[:n], &esc)
			if len(send) > 0 {
				if _, err := s.Write(send); err != nil {
					cancel(err)
					closeStream()
					return
				}
			}
			if quit {
				cancel(nil)
				closeStream()
				return
			}
		}
	}()

	_, err = io.Copy(out, s)
	restore()
	if ctx.Err() != nil {
		if cause := context.Cause(ctx); cause != context.Canceled {
			return cause
		}
		fmt.Fprintln(errOut, "\nDisconnected.")
		return nil
	}
	if err != nil {
		return fmt.Errorf("console: %w", err)
	}
	return nil
}

// filterEscape handles the Ctrl-] escape in keyboard input b: it returns the bytes to send and
// whether the user asked to quit. esc carries an escape pending at the end of the previous
// input.
func filterEscape(b []byte, esc *bool) (send []byte, quit bool) {
	for _, c := range b {
		if *esc {
			*esc = false
			switch c {
			case 'q', 'Q', '.':
				return send, true
			case escapeByte:
				send = append(send, escapeByte)
			default:
				send = append(send, escapeByte, c)
			}
			continue
		}
		if c == escapeByte {
			*esc = true
			continue
		}
		send = append(send, c)
	}
	return send, false
}
