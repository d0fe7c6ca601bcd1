package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/sys/unix"

	"jsn.dev/jsn/client"
	"jsn.dev/jsn/cmd/jsn/cmdutil"
	"jsn.dev/jsn/exporter"
	"jsn.dev/jsn/internal/yamlconf"
)

type shellOptions struct {
	f       *cmdutil.Factory
	Config  string   // exporter config file
	Verbose bool     // exporter info logs to stderr
	Command []string // command to run; empty = $SHELL, interactively
	Web     string   // --web: the local dashboard's loopback address

	// Remote sessions: a lease from the lab controller.
	Selectors []string      // -l: label selectors (several: a multi-exporter lease)
	Count     int           // --count: exporters per selector
	Names     []string      // -n: exporters by name, with the others
	Duration  time.Duration // --duration
	Wait      time.Duration // --wait: how long to wait in the queue (0: no bound)
	Keepalive bool          // --keepalive: the lease lives while jsn runs
}

func newShellCmd(f *cmdutil.Factory) *cobra.Command {
	opts := &shellOptions{f: f}
	cmd := &cobra.Command{
		Use:   "shell -c FILE | -l SELECTOR | --exporter NAME [-- COMMAND [ARG...]]",
		Short: "Run a lab session (local, or on a leased exporter) and a shell attached to it",
		Long: `Start a local lab session from an exporter config: the drivers, an embedded bus reachable
only through a Unix socket in a private directory, and a lease. Then run $SHELL (or
/bin/sh), or COMMAND, with JSN_HOST, JSN_EXPORTER and JSN_LEASE set and this jsn first
on PATH, so jsn commands inside it reach the session. The session ends, and every driver
is reset and closed, when the shell or COMMAND exits; jsn exits with its exit code
(128+signal if it was killed).

Exporter logs go to exporter.log in the session directory; warnings also go to stderr,
and with -v informational messages too.

With -l SELECTOR or --exporter NAME instead of -c, the session is remote: jsn leases a
matching exporter from the lab controller (the current client config, or
$JSN_CLIENT_CONFIG), waiting in the queue if needed, prints the exporter's beforeLease hook
output, and runs the shell with JSN_HOST (the controller's endpoint), JSN_EXPORTER,
JSN_LEASE and JSN_CREDS (a 0600 file holding the lease credential) set. Every jsn command
works there as in a local session. The lease is released when the shell exits, and when jsn
gets SIGTERM or SIGHUP (forwarded to the shell first). If the lease ends while the shell
runs (it expired, or was released elsewhere), jsn prints "jsn: lease L expired" (or why it
ended), sends the shell SIGHUP, then SIGTERM and SIGKILL 5 s apart, and exits 124.
` + "`jsn lease extend $JSN_LEASE 15m`" + ` from inside the shell moves the end; the session's
credential is renewed. With --keepalive the lease instead lives while jsn runs: jsn renews
it every few seconds, and if jsn is killed the lease ends within seconds; --duration is
then its hard limit.

With several -l (or --count N, or -n NAME besides), the session leases several exporters as
one multi-exporter lease, granted together or not at all; when one part ends, all end. The
shell then gets JSN_EXPORTERS (the exporters, comma-separated), JSN_LEASE (the group's id),
JSN_LEASES (EXPORTER=PART_LEASE,...) and JSN_CREDS_DIR (EXPORTER.creds for each), and no
JSN_EXPORTER: every jsn command there names its exporter with --exporter NAME, and fails
with the list of the session's exporters when it does not.`,
		Example: `  # an interactive session with the example lab (no hardware needed)
  $ jsn shell -c examples/local.yaml
  jsn: lab "demo" attached (power, network, shell); exit to release
  $ jsn power on

  # one command, non-interactively; its exit code is jsn's
  $ jsn shell -c examples/local.yaml -- jsn call power.status
  off
  $ jsn shell -c lab.yaml -- sh -c 'jsn power on && ./run-tests.sh'

  # the web dashboard of the session (driver tree, live consoles): open the URL it prints
  $ jsn shell -c lab.yaml --web 127.0.0.1:8080
  jsn: dashboard: http://127.0.0.1:8080/#token=…

  # a leased exporter from the lab controller
  $ jsn shell -l board=rpi4 --duration 30m
  $ jsn shell --exporter rack1-rpi4 -- jsn power on
  # held as long as the CI job runs, 4h at most; a cancelled job frees the board
  $ jsn shell -l board=rpi4 --keepalive --duration 4h -- ./ci-test.sh
  # a board and a host, leased together; commands inside name the exporter
  $ jsn shell -l board=rpi4 -l role=host -- sh -c 'jsn --exporter rack1-rpi4 power on && jsn --exporter host-3 call shell.run …'`,
		Args: cobra.ArbitraryArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Command = args
			return runShell(cmd.Context(), opts)
		},
	}
	cmd.Flags().SetInterspersed(false) // `jsn shell -c x.yaml ls -l` runs `ls -l`
	cmd.Flags().StringVarP(&opts.Config, "config", "c", "", "exporter config file (a local session)")
	cmd.Flags().BoolVarP(&opts.Verbose, "verbose", "v", false, "also print the exporter's info logs on stderr")
	cmd.Flags().StringVar(&opts.Web, "web", "", "local session: serve the web dashboard (live consoles) on this loopback address, e.g. 127.0.0.1:8080; the URL printed carries its token")
	cmd.Flags().StringArrayVarP(&opts.Selectors, "selector", "l", nil, "lease an exporter matching this label selector (a remote session); repeat for several exporters")
	cmd.Flags().IntVar(&opts.Count, "count", 1, "remote session: how many distinct exporters to lease for each -l selector")
	cmd.Flags().StringArrayVarP(&opts.Names, "name", "n", nil, "remote session: also lease this exporter by name (repeatable)")
	cmd.Flags().DurationVar(&opts.Duration, "duration", 30*time.Minute, "remote session: lease duration")
	cmd.Flags().DurationVar(&opts.Wait, "wait", 0, "remote session: longest wait in the queue (0: as long as it takes)")
	cmd.Flags().BoolVar(&opts.Keepalive, "keepalive", false, "remote session: the lease lives while jsn runs (renewed every few seconds, ended soon after jsn dies), --duration at most")
	_ = cmd.MarkFlagFilename("config", "yaml", "yml")
	return cmd
}

func runShell(ctx context.Context, opts *shellOptions) (err error) {
	remote := len(opts.Selectors) > 0 || len(opts.Names) > 0 || opts.f.ExporterName != ""
	switch {
	case opts.Config != "" && remote:
		return &cmdutil.UsageError{Err: errors.New("give -c FILE for a local session, or -l SELECTOR / --exporter NAME for a remote one, not both"), ShowHelp: true}
	case remote:
		return runRemoteShell(ctx, opts)
	case opts.Config == "":
		return &cmdutil.UsageError{Err: errors.New(`required flag(s) "config" not set: give -c FILE, or -l SELECTOR / --exporter NAME for a leased exporter`), ShowHelp: true}
	}
	cfg, err := exporter.LoadConfig(opts.Config)
	if err != nil {
		return &cmdutil.UsageError{Err: err}
	}
	dir, err := os.MkdirTemp("", "jsn-") // 0700
	if err != nil {
		return fmt.Errorf("create session directory: %w", err)
	}
	defer os.RemoveAll(dir)
	logFile, err := os.OpenFile(filepath.Join(dir, "exporter.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("create exporter log: %w", err)
	}
	defer logFile.Close()

	lo := exporter.LocalOptions{Log: sessionLogger(logFile, opts.f.ErrOut, opts.Verbose), Dir: dir}
	if opts.Web != "" {
		if err := checkWebAddr(opts.Web); err != nil {
			return &cmdutil.UsageError{Err: err}
		}
		host, _, _ := net.SplitHostPort(opts.Web)
		lo.WebSocket, lo.WebSocketToken = net.JoinHostPort(host, "0"), newWebToken()
	}
	l, err := exporter.StartLocal(ctx, cfg, lo)
	if err != nil {
		var ce yamlconf.Errors
		if errors.As(err, &ce) {
			return err // file:line:col lines, printed as they are
		}
		return fmt.Errorf("start session: %w", err)
	}
	defer func() {
		if cerr := l.Close(); cerr != nil {
			cerr = fmt.Errorf("close session: %w", cerr)
			var ee *cmdutil.ExitError
			if err == nil {
				err = cerr
			} else if errors.As(err, &ee) {
				fmt.Fprintf(opts.f.ErrOut, "jsn: %s\n", cerr) // keep the child's exit code
			}
		}
	}()

	if opts.Web != "" {
		w, err := startLocalWeb(opts.Web, l.Exporter, l.Lease, l, lo.WebSocketToken)
		if err != nil {
			return err
		}
		defer w.Close()
		fmt.Fprintf(opts.f.ErrOut, "jsn: dashboard: %s\n", w.URL)
	}

	path, err := sessionPath(dir)
	if err != nil {
		return err
	}
	env := sessionEnv(os.Environ(), map[string]string{
		client.EnvHost:      l.URL,
		client.EnvExporter:  l.Exporter,
		client.EnvLease:     l.Lease,
		client.EnvCreds:     "",
		client.EnvCA:        "",
		client.EnvWSURL:     l.WebSocketURL(), // with --web: the session's bus for non-Go clients
		client.EnvWSToken:   lo.WebSocketToken,
		client.EnvExporters: "", // an outer multi-exporter session's
		client.EnvLeases:    "",
		client.EnvCredsDir:  "",
		"PATH":              path,
	})

	argv := opts.Command
	if len(argv) == 0 {
		sh := os.Getenv("SHELL")
		if sh == "" {
			sh = "/bin/sh"
		}
		argv = []string{sh}
		fmt.Fprintf(opts.f.ErrOut, "jsn: lab %q attached (%s); exit to release\n", l.Exporter, strings.Join(topLevelNames(cfg), ", "))
		if cfg.Motd != "" {
			fmt.Fprintln(opts.f.ErrOut, strings.TrimRight(cfg.Motd, "\n"))
		}
	}
	return runChild(opts.f, argv, env, path, nil)
}

// sessionLogger logs everything to the session's log file, and warnings (info with verbose) to
// stderr without timestamps.
func sessionLogger(file, stderr io.Writer, verbose bool) *slog.Logger {
	level := slog.LevelWarn
	if verbose {
		level = slog.LevelInfo
	}
	toFile := slog.NewTextHandler(file, &slog.HandlerOptions{Level: slog.LevelDebug})
	toErr := slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level,
		ReplaceAttr: func(groups []string, a slog.Attr) slog.Attr {
			if len(groups) == 0 && a.Key == slog.TimeKey {
				return slog.Attr{}
			}
			return a
		}})
	return slog.New(slog.NewMultiHandler(toFile, toErr))
}

// sessionPath makes dir/bin holding links to this jsn executable, as jsn and as j (Jumpstarter's
// in-shell command name), and returns the session's PATH: that directory first, so jsn (and j)
// commands inside the session run this same jsn.
func sessionPath(dir string) (string, error) {
	bin := filepath.Join(dir, "bin")
	if err := os.Mkdir(bin, 0o700); err != nil {
		return "", fmt.Errorf("create session bin: %w", err)
	}
	exe, err := os.Executable()
	if err != nil {
		return "", fmt.Errorf("find jsn executable: %w", err)
	}
	for _, name := range []string{"jsn", exporter.JName} {
		if err := os.Symlink(exe, filepath.Join(bin, name)); err != nil {
			return "", fmt.Errorf("link %s into session: %w", name, err)
		}
	}
	return bin + string(os.PathListSeparator) + os.Getenv("PATH"), nil
}

// sessionEnv returns base with the keys of set replaced.
func sessionEnv(base []string, set map[string]string) []string {
	out := make([]string, 0, len(base)+len(set))
	for _, kv := range base {
		k, _, _ := strings.Cut(kv, "=")
		if _, ok := set[k]; !ok {
			out = append(out, kv)
		}
	}
	for _, k := range []string{client.EnvHost, client.EnvExporter, client.EnvLease, client.EnvCreds, client.EnvCA, client.EnvWSURL, client.EnvWSToken,
		client.EnvExporters, client.EnvLeases, client.EnvCredsDir, "PATH"} {
		if v, ok := set[k]; ok && v != "" {
			out = append(out, k+"="+v)
		}
	}
	return out
}

// topLevelNames lists the names of the export tree's roots, in file order.
func topLevelNames(cfg *exporter.Config) []string {
	var out []string
	if n := cfg.Export; n != nil {
		for i := 0; i+1 < len(n.Content); i += 2 {
			out = append(out, n.Content[i].Value)
		}
	}
	return out
}

// childGrace is how long an ended session's child has after SIGHUP before SIGTERM, and after
// SIGTERM before SIGKILL.
var childGrace = 5 * time.Second

// runChild runs argv with env and the Factory's streams, forwarding SIGINT, SIGTERM, SIGHUP and
// SIGQUIT to it, and turns its exit status into an ExitError. When end (nil: never) is closed,
// the session is over: the child gets SIGHUP, then SIGTERM and SIGKILL each childGrace later,
// and runChild returns exitLeaseEnded once it is gone.
func runChild(f *cmdutil.Factory, argv, env []string, path string, end <-chan struct{}) error {
	prog, err := lookPath(argv[0], path)
	if err != nil {
		return &cmdutil.ExitError{Code: 127, Message: err.Error()}
	}
	cmd := exec.Command(prog, argv[1:]...)
	cmd.Args[0] = argv[0]
	cmd.Env = env
	cmd.Stdin, cmd.Stdout, cmd.Stderr = f.In, f.Out, f.ErrOut

	// When jsn runs in the foreground of a terminal, the terminal already sends Ctrl-C and Ctrl-\
	// to the child (same process group): forwarding them would deliver them twice.
	fromTTY := inForegroundOf(f.In)
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGQUIT)
	defer signal.Stop(sigs)

	if err := cmd.Start(); err != nil {
		return &cmdutil.ExitError{Code: 126, Message: fmt.Sprintf("run %s: %v", argv[0], err)}
	}
	done := make(chan struct{})
	forwarded := make(chan struct{})
	ended := false // end was closed; written by the goroutine, read after forwarded is closed
	go func() {
		defer close(forwarded)
		var grace *time.Timer
		var graceC <-chan time.Time
		defer func() {
			if grace != nil {
				grace.Stop()
			}
		}()
		next := syscall.SIGTERM
		for {
			select {
			case <-done:
				return
			case <-end:
				end, ended = nil, true
				_ = cmd.Process.Signal(syscall.SIGHUP)
				grace = time.NewTimer(childGrace)
				graceC = grace.C
			case <-graceC:
				_ = cmd.Process.Signal(next)
				if next == syscall.SIGTERM {
					next = syscall.SIGKILL
					grace.Reset(childGrace)
				} else {
					graceC = nil
				}
			case s := <-sigs:
				if fromTTY && (s == syscall.SIGINT || s == syscall.SIGQUIT) {
					continue
				}
				_ = cmd.Process.Signal(s)
			}
		}
	}()
	err = cmd.Wait()
	close(done)
	<-forwarded
	if ended {
		return &cmdutil.ExitError{Code: exitLeaseEnded}
	}
	if err == nil {
		return nil
	}
	var ee *exec.ExitError
	if !errors.As(err, &ee) {
		return fmt.Errorf("run %s: %w", argv[0], err)
	}
	code := ee.ExitCode()
	if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		code = 128 + int(ws.Signal())
	}
	return &cmdutil.ExitError{Code: code}
}

// lookPath finds name like a shell would, on the session's PATH rather than jsn's own.
func lookPath(name, path string) (string, error) {
	if strings.Contains(name, "/") {
		if err := executable(name); err != nil {
			return "", fmt.Errorf("%s: %w", name, err)
		}
		return name, nil
	}
	for _, d := range filepath.SplitList(path) {
		if d == "" {
			d = "."
		}
		p := filepath.Join(d, name)
		if executable(p) == nil {
			return p, nil
		}
	}
	return "", fmt.Errorf("%s: command not found", name)
}

func executable(p string) error {
	st, err := os.Stat(p)
	if err != nil {
		return err
	}
	if st.IsDir() || st.Mode()&0o111 == 0 {
		return errors.New("not an executable file")
	}
	return nil
}

// inForegroundOf reports whether in is a terminal whose foreground process group is jsn's.
func inForegroundOf(in io.Reader) bool {
	file, ok := in.(*os.File)
	if !ok || !cmdutil.IsTerminal(file) {
		return false
	}
	pgrp, err := unix.IoctlGetInt(int(file.Fd()), unix.TIOCGPGRP)
	return err == nil && pgrp == unix.Getpgrp()
}
