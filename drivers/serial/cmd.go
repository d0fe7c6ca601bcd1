package serial

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"

	"jsn.dev/jsn/bus/wire"
	"jsn.dev/jsn/client/remote"
	"jsn.dev/jsn/cmd/jsn/cmdutil"
)

func init() { cmdutil.AddGroup(newCmd) }

// newCmd builds `jsn serial console|pipe|expect|log`.
func newCmd(f *cmdutil.Factory) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "serial <command>",
		Short: "Use serial consoles (" + Interface + ")",
		Long: `Talk to a device's serial console: interactively, from scripts, or by reading what it printed.

The exporter keeps the console open and records its output even while nobody is connected.
The exporter's only serial driver is used; when it has several, choose one with -d PATH.`,
		Example: `  $ jsn serial console
  Connected to console (Ctrl-] q to quit)

  $ jsn serial expect 'login:' --send '\r' --timeout 2m
  $ echo uname | jsn serial pipe --linger 1s
  $ jsn serial log --since 10m`,
	}
	g := cmdutil.NewDriverGroup(f, Interface, cmd)
	cmd.AddCommand(newConsoleCmd(g), newPipeCmd(g), newExpectCmd(g), newLogCmd(g))
	return cmd
}

// withClient connects, selects the serial driver and runs fn with its client and path.
func withClient(ctx context.Context, g *cmdutil.DriverGroup, fn func(ctx context.Context, c *Client, path string) error) error {
	return g.WithDriver(ctx, func(ctx context.Context, d remote.Driver) error {
		return fn(ctx, NewClient(d), d.Path())
	})
}

type logOptions struct {
	*cmdutil.DriverGroup
	Since time.Duration
}

func newLogCmd(g *cmdutil.DriverGroup) *cobra.Command {
	opts := &logOptions{DriverGroup: g}
	cmd := &cobra.Command{
		Use:   "log",
		Short: "Print what the console recorded",
		Long: `Print the console output the exporter recorded in its ring buffer (1 MiB by default), or only
that of the last --since. At most the newest 896 KiB are printed.`,
		Example: `  $ jsn serial log
  $ jsn serial log --since 10m > boot.log`,
		Args: cmdutil.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if opts.Since < 0 {
				return &cmdutil.UsageError{Err: fmt.Errorf("--since must not be negative, got %s", opts.Since), ShowHelp: true}
			}
			return withClient(cmd.Context(), g, func(ctx context.Context, c *Client, _ string) error {
				return runLog(ctx, opts, c)
			})
		},
	}
	cmd.Flags().DurationVar(&opts.Since, "since", 0, "only output of this last period (default: all recorded)")
	return cmd
}

func runLog(ctx context.Context, opts *logOptions, c *Client) error {
	b, err := c.Log(ctx, opts.Since)
	if err != nil {
		return err
	}
	_, err = opts.Out.Write(b)
	return err
}

type expectOptions struct {
	*cmdutil.DriverGroup
	Regex   string
	Send    string
	Timeout time.Duration
	Since   time.Duration
	Verbose bool
}

func newExpectCmd(g *cmdutil.DriverGroup) *cobra.Command {
	opts := &expectOptions{DriverGroup: g}
	cmd := &cobra.Command{
		Use:   "expect REGEX",
		Short: "Wait until the console prints something matching REGEX",
		Long: `Send --send (if given), then read the console until its output matches REGEX (Go regexp
syntax; (?m) makes ^ and $ match at line ends). Print the match, or with -v all the output up to
the end of the match, and exit 0.

Only output printed after the command starts is matched; --since D also matches the output
recorded during the last D (from the log), for a prompt the device may already have printed.
--send understands the escapes \r, \n, \t, \\ and \xHH.

When nothing matches within --timeout, exit 1 and print the last 20 lines of output.`,
		Example: `  $ jsn serial expect 'login:' --send '\r'
  login:
  $ jsn serial expect '(?m)^# $' --send 'root\r' --timeout 10s
  $ jsn serial expect 'Hit any key' --since 1m --timeout 2m`,
		Args: cmdutil.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Regex = args[0]
			re, err := regexp.Compile(opts.Regex)
			if err != nil {
				return cmdutil.Usagef("expect: bad REGEX: %v", err)
			}
			send, err := Unescape(opts.Send)
			if err != nil {
				return cmdutil.Usagef("expect: --send: %v", err)
			}
			if opts.Timeout <= 0 || opts.Since < 0 {
				return &cmdutil.UsageError{Err: errors.New("--timeout must be positive and --since not negative"), ShowHelp: true}
			}
			ctx, stop := cmdutil.Interruptible(cmd.Context())
			defer stop()
			return withClient(ctx, g, func(ctx context.Context, c *Client, _ string) error {
				return runExpect(ctx, opts, c, re, send)
			})
		},
	}
	fl := cmd.Flags()
	fl.StringVarP(&opts.Send, "send", "s", "", `text to send first; \r, \n, \t, \\ and \xHH are interpreted`)
	fl.DurationVarP(&opts.Timeout, "timeout", "t", 30*time.Second, "give up after this long")
	fl.DurationVar(&opts.Since, "since", 0, "also match output recorded during this last period")
	fl.BoolVarP(&opts.Verbose, "verbose", "v", false, "print all the output up to the end of the match")
	return cmd
}

func runExpect(ctx context.Context, opts *expectOptions, c *Client, re *regexp.Regexp, send []byte) error {
	s, err := c.Connect(ctx)
	if err != nil {
		return err
	}
	defer s.Close()
	var rw io.ReadWriter = s
	if opts.Since > 0 {
		// After Connect, so that nothing falls between the history and the stream.
		hist, err := c.Log(ctx, opts.Since)
		if err != nil {
			return err
		}
		rw = &prefixed{r: io.MultiReader(bytes.NewReader(hist), s), w: s, c: s}
	}
	ectx, cancel := context.WithTimeout(ctx, opts.Timeout)
	defer cancel()
	match, tail, err := c.Expect(ectx, rw, re, send)
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil {
			return cmdutil.Errorf(wire.ErrDeadlineExceeded, "expect %q: no match within %s; last output:\n%s", opts.Regex, opts.Timeout, lastLines(tail, 20))
		}
		if ctx.Err() != nil {
			return fmt.Errorf("expect %q: interrupted", opts.Regex)
		}
		return fmt.Errorf("%w; last output:\n%s", err, lastLines(tail, 20))
	}
	out := match
	if opts.Verbose {
		out = tail
	}
	if len(out) == 0 || out[len(out)-1] != '\n' {
		out = append(out[:len(out):len(out)], '\n')
	}
	_, err = opts.Out.Write(out)
	return err
}

// prefixed reads r (history, then the stream) and writes to w.
type prefixed struct {
	r io.Reader
	w io.Writer
	c io.Closer
}

func (p *prefixed) Read(b []byte) (int, error)  { return p.r.Read(b) }
func (p *prefixed) Write(b []byte) (int, error) { return p.w.Write(b) }
func (p *prefixed) Close() error                { return p.c.Close() }

// lastLines returns the last n lines of b as text, with carriage returns dropped.
func lastLines(b []byte, n int) string {
	s := strings.ReplaceAll(string(b), "\r", "")
	s = strings.TrimRight(s, "\n")
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return "  | " + strings.Join(lines, "\n  | ")
}

// Unescape interprets \r, \n, \t, \\, \e and \xHH in s; other backslashes are an error.
func Unescape(s string) ([]byte, error) {
	var out []byte
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c != '\\' {
			out = append(out, c)
			continue
		}
		if i+1 >= len(s) {
			return nil, errors.New(`trailing backslash (write \\ for one)`)
		}
		i++
		switch s[i] {
		case 'r':
			out = append(out, '\r')
		case 'n':
			out = append(out, '\n')
		case 't':
			out = append(out, '\t')
		case 'e':
			out = append(out, 0x1b)
		case '\\':
			out = append(out, '\\')
		case 'x':
			if i+2 >= len(s) {
				return nil, fmt.Errorf(`\x at offset %d needs two hex digits`, i-1)
			}
			v, err := strconv.ParseUint(s[i+1:i+3], 16, 8)
			if err != nil {
				return nil, fmt.Errorf(`\x at offset %d needs two hex digits, got %q`, i-1, s[i+1:i+3])
			}
			out = append(out, byte(v))
			i += 2
		default:
			return nil, fmt.Errorf(`unknown escape \%c (known: \r \n \t \e \\ \xHH)`, s[i])
		}
	}
	return out, nil
}

type pipeOptions struct {
	*cmdutil.DriverGroup
	Linger time.Duration
}

func newPipeCmd(g *cmdutil.DriverGroup) *cobra.Command {
	opts := &pipeOptions{DriverGroup: g}
	cmd := &cobra.Command{
		Use:   "pipe",
		Short: "Copy stdin to the console and the console to stdout",
		Long: `Copy standard input to the console and the console's output to standard output, for scripts.

At the end of standard input, jsn stops sending but keeps printing output: until the stream ends
(the device is unplugged, the lease ends) or Ctrl-C, or for --linger D after the end of input.`,
		Example: `  $ printf 'uname\r' | jsn serial pipe --linger 2s
  uname
  Linux`,
		Args: cmdutil.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if opts.Linger < 0 {
				return &cmdutil.UsageError{Err: fmt.Errorf("--linger must not be negative, got %s", opts.Linger), ShowHelp: true}
			}
			ctx, stop := cmdutil.Interruptible(cmd.Context())
			defer stop()
			return withClient(ctx, g, func(ctx context.Context, c *Client, _ string) error {
				return runPipe(ctx, opts.In, opts.Out, opts.Linger, c)
			})
		},
	}
	cmd.Flags().DurationVar(&opts.Linger, "linger", 0, "after the end of input, keep printing output this long (default: until the stream ends or Ctrl-C)")
	return cmd
}

// runPipe copies in to the console and the console to out. It returns nil when ctx ends.
func runPipe(ctx context.Context, in io.Reader, out io.Writer, linger time.Duration, c *Client) error {
	s, err := c.Connect(ctx)
	if err != nil {
		return err
	}
	outer := ctx // ends on Ctrl-C; the connection is closed right after, which may error first
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var once sync.Once
	closeStream := func() { once.Do(func() { s.Close() }) }
	stop := context.AfterFunc(ctx, closeStream)
	defer stop()
	defer closeStream()

	// Input: stdin is not ours to close, so this goroutine may stay blocked in Read until the
	// process exits; it touches nothing after ctx ends.
	go func() {
		_, err := io.Copy(s, in)
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			cancel()
			return
		}
		s.CloseWrite()
		if linger > 0 {
			t := time.NewTimer(linger)
			defer t.Stop()
			select {
			case <-t.C:
				cancel()
			case <-ctx.Done():
			}
		}
	}()
	_, err = io.Copy(out, s)
	if ctx.Err() != nil || outer.Err() != nil {
		return nil
	}
	return err
}
