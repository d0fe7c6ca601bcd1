package network

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
	"strconv"
	"strings"
	"sync"
	"syscall"

	"github.com/spf13/cobra"

	"jsn.dev/jsn/bus/wire"
	"jsn.dev/jsn/client/remote"
	"jsn.dev/jsn/cmd/jsn/cmdutil"
)

func init() {
	cmdutil.AddGroup(newForwardCmd)
	cmdutil.AddGroup(newSSHCmd)
}

type forwardOptions struct {
	f      *cmdutil.Factory
	Local  string // LOCAL as given; "" = the default for the driver's kind
	Driver string // driver path; "" = the only network driver
}

// newForwardCmd builds `jsn forward [LOCAL] [DRIVER]`.
func newForwardCmd(f *cmdutil.Factory) *cobra.Command {
	opts := &forwardOptions{f: f}
	cmd := &cobra.Command{
		Use:   "forward [LOCAL] [DRIVER]",
		Short: "Forward a local port or socket to a network driver",
		Long: `Listen locally and tunnel everything to a network driver (` + Interface + `) of the
attached exporter, until Ctrl-C. The local listener matches the driver's kind:

  tcp   LOCAL is [HOST:]PORT (default 127.0.0.1:0, a free port). Each accepted
        connection gets its own stream; half-close is carried both ways.
  udp   LOCAL is a UDP [HOST:]PORT (default 127.0.0.1:0). Each distinct local peer
        address gets its own stream, so replies go back to the peer that asked;
        a peer idle (nothing sent or received) for 60s is forgotten. Datagram
        boundaries are kept.
  unix  LOCAL is a socket path containing a slash (./dut.sock) or unix:PATH (default:
        a socket in a new private temporary directory). The socket is created 0600
        and removed on exit; an existing file is never replaced.

The real local address is printed on stderr. DRIVER is the path of a network driver; it
may be left out when the exporter has only one. A connection the driver cannot make (the
port is closed) is reported on stderr and forwarding goes on.`,
		Example: `  # reach the board's ssh port on localhost:8022
  $ jsn forward 8022 network
  forwarding 127.0.0.1:8022 -> network (tcp 192.168.1.2:22)
  $ ssh -p 8022 root@127.0.0.1

  # any free port, the only network driver
  $ jsn forward

  # a UDP service (iperf3 -u, DNS, TFTP) on local port 5353
  $ jsn forward 5353 dns

  # a QEMU monitor socket of the exporter as ./qmp.sock
  $ jsn forward ./qmp.sock qmp`,
		Args: cmdutil.RangeArgs(0, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			local, drv, err := forwardArgs(args)
			if err != nil {
				return err
			}
			opts.Local, opts.Driver = local, drv
			return runForward(cmd.Context(), opts)
		},
	}
	return cmd
}

// forwardArgs sorts out [LOCAL] [DRIVER]: with one argument, something that looks like an
// address (a port, host:port, a path with a slash, unix:PATH) is LOCAL and anything else a driver
// path. LOCAL is checked for syntax here, and against the driver's kind once that is known.
func forwardArgs(args []string) (local, drv string, err error) {
	switch len(args) {
	case 1:
		if looksLikeLocal(args[0]) {
			local = args[0]
		} else {
			drv = args[0]
		}
	case 2:
		local, drv = args[0], args[1]
	}
	if local != "" {
		if _, err := parseLocal(local); err != nil {
			return "", "", err
		}
	}
	return local, drv, nil
}

func looksLikeLocal(s string) bool {
	if strings.ContainsAny(s, ":/") {
		return true
	}
	_, err := strconv.ParseUint(s, 10, 64)
	return err == nil
}

// localAddr is a parsed LOCAL.
type localAddr struct {
	unix   bool   // a socket path
	addr   string // host:port, or the path
	tmpDir string // a private directory made for a default socket; removed on exit
}

// parseLocal parses LOCAL: PORT (127.0.0.1:PORT), HOST:PORT, unix:PATH or a path with a slash.
func parseLocal(s string) (localAddr, error) {
	bad := func(why string) (localAddr, error) {
		return localAddr{}, &cmdutil.UsageError{
			Err:      fmt.Errorf("invalid LOCAL %q: %s; want PORT, HOST:PORT, unix:PATH or a path with a slash", s, why),
			ShowHelp: true,
		}
	}
	if p, ok := strings.CutPrefix(s, "unix:"); ok {
		if p == "" {
			return bad("empty path")
		}
		return localAddr{unix: true, addr: p}, nil
	}
	if p, err := strconv.ParseUint(s, 10, 64); err == nil {
		if p > 65535 {
			return bad("port out of range")
		}
		return localAddr{addr: net.JoinHostPort("127.0.0.1", strconv.FormatUint(p, 10))}, nil
	}
	if host, port, err := net.SplitHostPort(s); err == nil && !strings.Contains(host, "/") {
		if p, err := strconv.ParseUint(port, 10, 64); err != nil || p > 65535 {
			return bad("port must be a number 0..65535")
		}
		return localAddr{addr: s}, nil
	}
	if strings.Contains(s, "/") {
		return localAddr{unix: true, addr: s}, nil
	}
	return bad("not an address")
}

// selectNetwork connects to the session's exporter, picks its network driver (the only one, or
// the one at path) and asks its transport kind. The caller closes ex.
func selectNetwork(ctx context.Context, f *cmdutil.Factory, path string) (remote.Exporter, *wire.NodeDesc, *Client, string, error) {
	ex, err := f.Exporter(ctx)
	if err != nil {
		return nil, nil, nil, "", err
	}
	node, err := cmdutil.SelectDriver(ctx, ex, Interface, path)
	if err != nil {
		ex.Close()
		return nil, nil, nil, "", err
	}
	c := NewClient(ex.Driver(node.Path))
	c.Log = slog.New(newLineHandler(f.ErrOut))
	kind, err := c.Kind(ctx)
	if err != nil {
		ex.Close()
		return nil, nil, nil, "", err
	}
	return ex, node, c, kind, nil
}

func runForward(ctx context.Context, opts *forwardOptions) error {
	ctx, stop := cmdutil.Interruptible(ctx)
	defer stop()
	ex, node, c, kind, err := selectNetwork(ctx, opts.f, opts.Driver)
	if err != nil {
		return err
	}
	defer ex.Close()
	if kind != KindTCP && kind != KindUDP && kind != KindUnix {
		return fmt.Errorf("forward: driver %s has unknown kind %q", node.Path, kind)
	}
	local, err := defaultLocal(opts.Local, kind, node.Path)
	if err != nil {
		return err
	}
	if local.tmpDir != "" {
		defer os.Remove(local.tmpDir)
	}
	if local.unix != (kind == KindUnix) {
		want := "a [HOST:]PORT"
		if kind == KindUnix {
			want = "a socket path (with a slash, or unix:PATH)"
		}
		return &cmdutil.UsageError{Err: fmt.Errorf("invalid LOCAL %q: driver %s is %s, so LOCAL must be %s", opts.Local, node.Path, kind, want), ShowHelp: true}
	}

	target := kind
	if addr, err := c.Address(ctx); err == nil {
		target += " " + addr
	}
	announce := func(addr string) {
		fmt.Fprintf(opts.f.ErrOut, "forwarding %s -> %s (%s)\n", addr, node.Path, target)
	}
	switch kind {
	case KindUDP:
		var lc net.ListenConfig
		pc, err := lc.ListenPacket(ctx, "udp", local.addr)
		if err != nil {
			return fmt.Errorf("forward: %w", err)
		}
		announce(pc.LocalAddr().String())
		err = c.ForwardPacket(ctx, pc)
		if ctx.Err() != nil {
			return nil // stopped by Ctrl-C: whatever ForwardPacket returned is a consequence
		}
		return err
	case KindUnix:
		ln, cleanup, err := listenUnix(local.addr)
		if err != nil {
			return fmt.Errorf("forward: %w", err)
		}
		defer cleanup()
		announce(local.addr)
		err = c.Forward(ctx, ln)
		if ctx.Err() != nil {
			return nil
		}
		return err
	}
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", local.addr)
	if err != nil {
		return fmt.Errorf("forward: %w", err)
	}
	announce(ln.Addr().String())
	err = c.Forward(ctx, ln)
	if ctx.Err() != nil {
		return nil
	}
	return err
}

// defaultLocal parses s, or picks the default LOCAL for kind when s is empty: a free loopback
// port, or for unix a socket in a new private temporary directory (removed with the socket).
func defaultLocal(s, kind, drv string) (localAddr, error) {
	if s != "" {
		return parseLocal(s)
	}
	if kind != KindUnix {
		return localAddr{addr: "127.0.0.1:0"}, nil
	}
	dir, err := os.MkdirTemp("", "jsn-forward-")
	if err != nil {
		return localAddr{}, fmt.Errorf("forward: %w", err)
	}
	return localAddr{unix: true, addr: filepath.Join(dir, drv+".sock"), tmpDir: dir}, nil
}

// listenUnix listens on a new Unix socket at path with mode 0600, without ever replacing an
// existing file and without a moment where the socket has looser permissions: it binds in a
// private directory next to path, sets the mode, then hard-links the socket into place.
// cleanup closes the listener and removes the socket if it is still ours.
func listenUnix(path string) (ln *net.UnixListener, cleanup func(), err error) {
	if _, err := os.Lstat(path); err == nil {
		return nil, nil, fmt.Errorf("listen unix %s: %w", path, os.ErrExist)
	}
	dir, err := os.MkdirTemp(filepath.Dir(path), ".jsn-forward-")
	if err != nil {
		return nil, nil, fmt.Errorf("listen unix %s: %w", path, err)
	}
	defer os.RemoveAll(dir)
	tmp := filepath.Join(dir, "s")
	ln, err = net.ListenUnix("unix", &net.UnixAddr{Name: tmp, Net: "unix"})
	if err != nil {
		return nil, nil, fmt.Errorf("listen unix %s: %w", path, err)
	}
	ln.SetUnlinkOnClose(false)
	fail := func(err error) (*net.UnixListener, func(), error) {
		ln.Close()
		return nil, nil, fmt.Errorf("listen unix %s: %w", path, err)
	}
	if err := os.Chmod(tmp, 0o600); err != nil {
		return fail(err)
	}
	if err := os.Link(tmp, path); err != nil {
		return fail(err)
	}
	ours, err := os.Lstat(path)
	if err != nil {
		return fail(err)
	}
	cleanup = func() {
		ln.Close()
		if fi, err := os.Lstat(path); err == nil && os.SameFile(fi, ours) {
			os.Remove(path)
		}
	}
	return ln, cleanup, nil
}

// lineHandler prints warnings and errors of the forwarders as one line each:
// "jsn: forward: connection ended with an error (remote=127.0.0.1:40124, err=...)".
type lineHandler struct {
	w     io.Writer
	mu    *sync.Mutex // serialises writes to w; shared by the handlers WithAttrs derives
	attrs []slog.Attr
}

func newLineHandler(w io.Writer) *lineHandler { return &lineHandler{w: w, mu: new(sync.Mutex)} }

func (h *lineHandler) Enabled(_ context.Context, l slog.Level) bool { return l >= slog.LevelWarn }

func (h *lineHandler) Handle(_ context.Context, r slog.Record) error {
	var b strings.Builder
	b.WriteString("jsn: ")
	b.WriteString(r.Message)
	var kv []string
	add := func(a slog.Attr) bool {
		kv = append(kv, a.Key+"="+a.Value.String())
		return true
	}
	for _, a := range h.attrs {
		add(a)
	}
	r.Attrs(add)
	if len(kv) > 0 {
		b.WriteString(" (" + strings.Join(kv, ", ") + ")")
	}
	b.WriteString("\n")
	h.mu.Lock()
	defer h.mu.Unlock()
	_, err := io.WriteString(h.w, b.String())
	return err
}

func (h *lineHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return &lineHandler{w: h.w, mu: h.mu, attrs: append(append([]slog.Attr(nil), h.attrs...), as...)}
}

func (h *lineHandler) WithGroup(string) slog.Handler { return h }

type sshOptions struct {
	f       *cmdutil.Factory
	User    string   // from USER@; "" = ssh's default
	Driver  string   // driver path; "" = the only network driver
	Command string   // the ssh program (--ssh-command)
	Args    []string // passed to ssh after the destination
}

// newSSHCmd builds `jsn ssh [[USER@]DRIVER] [-- SSH-ARGS...]`.
func newSSHCmd(f *cmdutil.Factory) *cobra.Command {
	opts := &sshOptions{f: f}
	cmd := &cobra.Command{
		Use:   "ssh [[USER@]DRIVER] [-- SSH-ARGS...]",
		Short: "Run ssh to the board through a tcp network driver",
		Long: `Forward a free loopback port to a tcp network driver (usually the board's port 22) and
run ssh on it; the forward ends when ssh exits, and jsn exits with ssh's exit code.

DRIVER may be left out when the exporter has only one network driver. Everything after
-- goes to ssh after the destination: ssh options (-i KEY, -o ..., -L ...) and then the
remote command. jsn adds these options unless SSH-ARGS set them:

  -o HostKeyAlias=jsn-EXPORTER-DRIVER   known_hosts entries are per board, not per
                                        random local port
  -o StrictHostKeyChecking=accept-new   the first key a board shows is recorded, a
                                        changed key is refused (after reflashing a
                                        board: ssh-keygen -R jsn-EXPORTER-DRIVER)
  -o CheckHostIP=no                     the address is always 127.0.0.1`,
		Example: `  $ jsn ssh root@network
  $ jsn ssh root@dut.ssh -- uname -a

  # a key, and a throw-away known_hosts file
  $ jsn ssh root@network -- -i ~/.ssh/board -o UserKnownHostsFile=/dev/null uname -a

  # strict host key checking instead of accept-new
  $ jsn ssh network -- -o StrictHostKeyChecking=yes`,
		RunE: func(cmd *cobra.Command, args []string) error {
			target, extra := args, []string(nil)
			if dash := cmd.ArgsLenAtDash(); dash >= 0 {
				target, extra = args[:dash], args[dash:]
			} else if len(args) > 1 {
				target, extra = args[:1], args[1:]
			}
			if len(target) > 1 {
				return &cmdutil.UsageError{Err: fmt.Errorf("want at most one [USER@]DRIVER before --, got %q", target), ShowHelp: true}
			}
			if len(target) == 1 {
				opts.User, opts.Driver = splitUserDriver(target[0])
			}
			opts.Args = extra
			return runSSH(cmd.Context(), opts)
		},
	}
	cmd.Flags().StringVar(&opts.Command, "ssh-command", "ssh", "the ssh program to run")
	return cmd
}

// splitUserDriver splits "root@dut.net" into "root", "dut.net".
func splitUserDriver(s string) (user, drv string) {
	if u, d, ok := strings.Cut(s, "@"); ok {
		return u, d
	}
	return "", s
}

// sshArgv is the ssh command line (without the program) for a forward on 127.0.0.1:port: the
// destination and jsn's options first, then extra. Options extra sets with -o are left out,
// since ssh keeps the first value it is given.
func sshArgv(port int, alias, user string, extra []string) []string {
	argv := []string{"-p", strconv.Itoa(port)}
	for _, o := range []string{"HostKeyAlias=" + alias, "StrictHostKeyChecking=accept-new", "CheckHostIP=no"} {
		key, _, _ := strings.Cut(o, "=")
		if !setsOption(extra, key) {
			argv = append(argv, "-o", o)
		}
	}
	if user != "" {
		argv = append(argv, "-l", user)
	}
	argv = append(argv, "127.0.0.1")
	return append(argv, extra...)
}

// setsOption reports whether args set the ssh option key with -o KEY=V, -o "KEY V" or -oKEY=V.
func setsOption(args []string, key string) bool {
	for i, a := range args {
		var v string
		switch {
		case a == "-o" && i+1 < len(args):
			v = args[i+1]
		case strings.HasPrefix(a, "-o"):
			v = a[2:]
		default:
			continue
		}
		k, _, _ := strings.Cut(strings.TrimSpace(v), "=")
		k, _, _ = strings.Cut(k, " ")
		if strings.EqualFold(k, key) {
			return true
		}
	}
	return false
}

// sshWrapper applies the settings of a network.SSH node (Jumpstarter's SSHWrapper) to opts: the
// node named by opts.Driver, or the exporter's only one when none is named. The forward goes to
// its tcp child; its user, ssh command and identity apply unless the command line gives its own.
// It returns the extra ssh arguments and a cleanup, or nothing when there is no such node.
func sshWrapper(ctx context.Context, opts *sshOptions) (prefix []string, cleanup func(), err error) {
	cleanup = func() {}
	ex, err := opts.f.Exporter(ctx)
	if err != nil {
		return nil, cleanup, err
	}
	defer ex.Close()
	desc, err := ex.Describe(ctx)
	if err != nil {
		return nil, cleanup, err
	}
	var node *wire.NodeDesc
	if opts.Driver != "" {
		if n := desc.Find(opts.Driver); n != nil && n.Interface == SSHInterface {
			node = n
		}
	} else {
		var ns []*wire.NodeDesc
		for _, n := range desc.WithInterface(SSHInterface) {
			if n.Ref == "" {
				ns = append(ns, n)
			}
		}
		if len(ns) == 1 {
			node = ns[0]
		}
	}
	if node == nil {
		return nil, cleanup, nil
	}
	d := ex.Driver(node.Path)
	var user, command, identity string
	for _, x := range []struct {
		m   string
		out *string
	}{{"default_username", &user}, {"ssh_command", &command}, {"ssh_identity", &identity}} {
		if err := d.CallInto(ctx, x.m, x.out); err != nil {
			return nil, cleanup, fmt.Errorf("ssh: %s.%s: %w", node.Path, x.m, err)
		}
	}
	opts.Driver = node.Path + ".tcp"
	if opts.User == "" {
		opts.User = user
	}
	if f := strings.Fields(command); len(f) > 0 {
		if opts.Command == "ssh" { // --ssh-command not given
			opts.Command = f[0]
		}
		prefix = append(prefix, f[1:]...)
	}
	if identity != "" {
		dir, err := os.MkdirTemp("", "jsn-ssh-")
		if err != nil {
			return nil, cleanup, fmt.Errorf("ssh: %w", err)
		}
		cleanup = func() { os.RemoveAll(dir) }
		key := filepath.Join(dir, "identity")
		if !strings.HasSuffix(identity, "\n") {
			identity += "\n"
		}
		if err := os.WriteFile(key, []byte(identity), 0o600); err != nil {
			cleanup()
			return nil, func() {}, fmt.Errorf("ssh: %w", err)
		}
		prefix = append(prefix, "-i", key)
	}
	return prefix, cleanup, nil
}

func runSSH(ctx context.Context, opts *sshOptions) error {
	prefix, cleanup, err := sshWrapper(ctx, opts)
	defer cleanup()
	if err != nil {
		return err
	}
	opts.Args = append(prefix, opts.Args...)
	ex, node, c, kind, err := selectNetwork(ctx, opts.f, opts.Driver)
	if err != nil {
		return err
	}
	defer ex.Close()
	if kind != KindTCP {
		return cmdutil.InvalidArgf("ssh: driver %s is %s, want a tcp network driver", node.Path, kind)
	}
	prog, err := exec.LookPath(opts.Command)
	if err != nil {
		return &cmdutil.ExitError{Code: 127, Message: fmt.Sprintf("ssh: %v", err)}
	}

	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", "127.0.0.1:0")
	if err != nil {
		return fmt.Errorf("ssh: %w", err)
	}
	fctx, stopForward := context.WithCancel(ctx)
	forwarded := make(chan error, 1)
	go func() { forwarded <- c.Forward(fctx, ln) }()
	defer func() {
		stopForward()
		<-forwarded
	}()

	port := ln.Addr().(*net.TCPAddr).Port
	alias := "jsn-" + ex.Name() + "-" + node.Path
	return runProgram(opts.f, prog, sshArgv(port, alias, opts.User, opts.Args))
}

// runProgram runs prog with argv on the Factory's streams and turns its exit status into an
// ExitError. While it runs, jsn survives Ctrl-C (a terminal sends it to ssh too, which decides)
// and passes SIGTERM and SIGHUP, and SIGINT when not on a terminal, on to it.
func runProgram(f *cmdutil.Factory, prog string, argv []string) error {
	cmd := exec.Command(prog, argv...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = f.In, f.Out, f.ErrOut
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGQUIT)
	defer signal.Stop(sigs)
	if err := cmd.Start(); err != nil {
		return &cmdutil.ExitError{Code: 126, Message: fmt.Sprintf("ssh: %v", err)}
	}
	fromTTY := cmdutil.IsTerminal(f.In)
	done := make(chan struct{})
	relayed := make(chan struct{})
	go func() {
		defer close(relayed)
		for {
			select {
			case <-done:
				return
			case s := <-sigs:
				if fromTTY && (s == syscall.SIGINT || s == syscall.SIGQUIT) {
					continue
				}
				_ = cmd.Process.Signal(s)
			}
		}
	}()
	err := cmd.Wait()
	close(done)
	<-relayed
	if err == nil {
		return nil
	}
	var ee *exec.ExitError
	if !errors.As(err, &ee) {
		return fmt.Errorf("ssh: %w", err)
	}
	code := ee.ExitCode()
	if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		code = 128 + int(ws.Signal())
	}
	return &cmdutil.ExitError{Code: code}
}
