package fault

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"

	"jsn.dev/jsn/bus"
	"jsn.dev/jsn/cmd/jsn/cli"
	"jsn.dev/jsn/controller"
	_ "jsn.dev/jsn/drivers/power" // power.Mock on the exporters
	"jsn.dev/jsn/exporter"
)

// The processes of a test are the test binary re-executed in a role.
const (
	envRole = "JSN_FAULT_ROLE" // nats, controller or exporter
	envArg  = "JSN_FAULT_ARG"  // the role's argument (a config file, or JSON)
	ready   = "fault: ready"   // a child's line on stderr once it serves
)

func TestMain(m *testing.M) {
	if os.Getenv(envRole) == "jsn" {
		// The jsn command itself (and every jsn a jsn shell runs, which inherit the role).
		os.Exit(cli.Main())
	}
	if role := os.Getenv(envRole); role != "" {
		os.Exit(runRole(role, os.Getenv(envArg)))
	}
	goleak.VerifyTestMain(m)
}

// runRole runs one child process until SIGTERM (a clean stop) or SIGKILL.
func runRole(role, arg string) int {
	level := slog.LevelInfo
	if role == "nats" || role == "exporter" {
		level = slog.LevelDebug // the server's notices: elections, catch-ups
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	var err error
	switch role {
	case "nats":
		err = runNats(ctx, arg, log)
	case "controller":
		err = runController(ctx, arg, log)
	case "exporter":
		err = runExporter(ctx, arg, log)
	default:
		err = fmt.Errorf("unknown role %q", role)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "fault: %s: %v\n", role, err)
		return 1
	}
	return 0
}

func runNats(ctx context.Context, conf string, log *slog.Logger) error {
	sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	s, err := bus.StartServerFromConfig(sctx, conf, log)
	if err != nil {
		return err
	}
	fmt.Fprintln(os.Stderr, ready)
	<-ctx.Done()
	s.Shutdown()
	return nil
}

// controllerArgs is the JSON argument of a controller child.
type controllerArgs struct {
	Data     string
	NatsURL  string // "" = the embedded server, listening on Listen
	Listen   string
	HTTP     string
	Replicas int
}

func runController(ctx context.Context, arg string, log *slog.Logger) error {
	var a controllerArgs
	if err := json.Unmarshal([]byte(arg), &a); err != nil {
		return err
	}
	o := controller.Options{Data: a.Data, NatsURL: a.NatsURL, Listen: a.Listen, HTTP: a.HTTP,
		Replicas: a.Replicas, MaxDuration: time.Hour, Log: log,
		NoTLS: true} // plain, like the test cluster's servers (TLS is tested in package controller)
	// A cluster elects its JetStream meta leader a moment after its servers accept
	// connections (and again after losing it): retry until the buckets can be opened.
	deadline := time.Now().Add(60 * time.Second)
	for {
		sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		c, err := controller.Start(sctx, o)
		cancel()
		if err == nil {
			fmt.Fprintln(os.Stderr, ready)
			<-ctx.Done()
			c.Close()
			return nil
		}
		if ctx.Err() != nil || time.Now().After(deadline) || errors.Is(err, controller.ErrDataInUse) {
			return err
		}
		log.Warn("controller not started yet", "err", err)
		time.Sleep(250 * time.Millisecond)
	}
}

func runExporter(ctx context.Context, file string, log *slog.Logger) error {
	cfg, err := exporter.LoadConfig(file)
	if err != nil {
		return err
	}
	fmt.Fprintln(os.Stderr, ready)
	return exporter.RunRemote(ctx, cfg, log)
}

// proc is a child process in a role; it can be restarted after it was killed.
type proc struct {
	t         *testing.T
	name      string
	role, arg string
	log       string // its stderr, appended over restarts

	mu      sync.Mutex
	cmd     *exec.Cmd     // nil when not running; guarded by mu
	exited  chan struct{} // closed when cmd has exited; guarded by mu
	stopped bool          // SIGSTOPped; guarded by mu
}

func newProc(t *testing.T, dir, name, role, arg string) *proc {
	p := &proc{t: t, name: name, role: role, arg: arg, log: dir + "/" + name + ".log"}
	t.Cleanup(func() {
		p.term()
		if t.Failed() {
			t.Logf("--- %s log (last lines):\n%s", p.name, tail(p.log, 40))
		}
	})
	return p
}

// start starts the process and waits until it says it is ready.
func (p *proc) start() {
	p.t.Helper()
	f, err := os.OpenFile(p.log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		p.t.Fatal(err)
	}
	defer f.Close()
	pr, pw, err := os.Pipe()
	if err != nil {
		p.t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	// Under -race, a data race stops a controller or an exporter (ours: the test must see it). A
	// NATS node runs nothing of ours but nats-server, whose own races (seen at start, between
	// setting the system account and the first client messages) are not this suite's subject:
	// they are reported in the node's log, and the node goes on.
	halt := "1"
	if p.role == "nats" {
		halt = "0"
	}
	cmd.Env = append(os.Environ(), envRole+"="+p.role, envArg+"="+p.arg, "GORACE=halt_on_error="+halt)
	cmd.Stdout = f
	cmd.Stderr = pw
	// Children die with the test process, whatever kills it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		pw.Close()
		pr.Close()
		p.t.Fatalf("start %s: %v", p.name, err)
	}
	pw.Close()
	fmt.Fprintf(f, "=== %s started (pid %d) at %s\n", p.name, cmd.Process.Pid, time.Now().Format(time.RFC3339Nano))
	exited := make(chan struct{})
	readyCh := make(chan struct{})
	copied := make(chan struct{})
	go func() {
		defer close(copied)
		sc := bufio.NewScanner(pr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		seen := false
		lf, _ := os.OpenFile(p.log, os.O_WRONLY|os.O_APPEND, 0o600)
		for sc.Scan() {
			line := sc.Text()
			if lf != nil {
				fmt.Fprintln(lf, line)
			}
			if !seen && line == ready {
				seen = true
				close(readyCh)
			}
		}
		if lf != nil {
			lf.Close()
		}
		pr.Close()
	}()
	go func() {
		_ = cmd.Wait()
		<-copied
		close(exited)
	}()
	p.mu.Lock()
	p.cmd, p.exited, p.stopped = cmd, exited, false
	p.mu.Unlock()
	select {
	case <-readyCh:
	case <-exited:
		p.t.Fatalf("%s exited before it was ready:\n%s", p.name, tail(p.log, 30))
	case <-time.After(90 * time.Second):
		p.t.Fatalf("%s not ready after 90s:\n%s", p.name, tail(p.log, 30))
	}
}

// signal sends sig to the running process.
func (p *proc) signal(sig syscall.Signal) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil {
		return
	}
	_ = p.cmd.Process.Signal(sig)
	switch sig {
	case syscall.SIGSTOP:
		p.stopped = true
	case syscall.SIGCONT:
		p.stopped = false
	}
}

// kill is kill -9: no clean-up of any kind.
func (p *proc) kill() {
	p.mu.Lock()
	cmd, exited := p.cmd, p.exited
	p.cmd = nil
	p.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Kill()
	<-exited
	p.note("killed (SIGKILL)")
}

// term stops the process cleanly (SIGTERM), or kills it after 20 s.
func (p *proc) term() {
	p.mu.Lock()
	cmd, exited, stopped := p.cmd, p.exited, p.stopped
	p.cmd = nil
	p.mu.Unlock()
	if cmd == nil {
		return
	}
	if stopped {
		_ = cmd.Process.Signal(syscall.SIGCONT)
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-exited:
	case <-time.After(20 * time.Second):
		_ = cmd.Process.Kill()
		<-exited
	}
}

func (p *proc) running() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.cmd != nil
}

func (p *proc) note(what string) {
	if f, err := os.OpenFile(p.log, os.O_WRONLY|os.O_APPEND, 0o600); err == nil {
		fmt.Fprintf(f, "=== %s %s at %s\n", p.name, what, time.Now().Format(time.RFC3339Nano))
		f.Close()
	}
}

// tail returns the last n lines of file.
func tail(file string, n int) string {
	b, err := os.ReadFile(file)
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
