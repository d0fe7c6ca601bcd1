package clitest

import (
	"context"
	"strings"
	"testing"
	"time"

	"jsn.dev/jsn/cmd/jsn/cli"
	"jsn.dev/jsn/cmd/jsn/cmdutil"
	"jsn.dev/jsn/cmd/jsn/jsntest"
	"jsn.dev/jsn/exporter/exportertest"
)

// Options say how a command runs.
type Options struct {
	Stdin   string            // its standard input
	Env     map[string]string // variables it sees besides the session's (which these override)
	Timeout time.Duration     // how long it may run; 0 for jsntest.DefaultTimeout
}

// Session is a lab (exportertest.Lab) that jsn commands run against.
type Session struct {
	*exportertest.Lab
	t testing.TB
}

// Start serves config (see exportertest.Start) for jsn commands.
func Start(t testing.TB, config string) *Session {
	t.Helper()
	return &Session{Lab: exportertest.Start(t, config), t: t}
}

// Run runs `jsn args…` in the session to the end.
func (s *Session) Run(args ...string) jsntest.Result {
	s.t.Helper()
	return s.RunWith(Options{}, args...)
}

// RunWith runs `jsn args…` in the session with o to the end. It fails the test if the command
// outlives its timeout.
func (s *Session) RunWith(o Options, args ...string) jsntest.Result {
	s.t.Helper()
	return Run(s.t, o, s.env(o.Env), args...)
}

func (s *Session) env(extra map[string]string) map[string]string {
	env := s.Lab.Env()
	for k, v := range extra {
		env[k] = v
	}
	return env
}

// Run runs `jsn args…` in-process with env as its whole environment, to the end. It fails t if
// the command outlives o.Timeout.
func Run(t testing.TB, o Options, env map[string]string, args ...string) jsntest.Result {
	t.Helper()
	timeout := o.Timeout
	if timeout == 0 {
		timeout = jsntest.DefaultTimeout
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var out, errOut jsntest.Buffer
	code := cli.Run(ctx, factory(o.Stdin, env, &out, &errOut), args)
	r := jsntest.Result{Stdout: out.String(), Stderr: errOut.String(), Code: code}
	if ctx.Err() != nil {
		t.Fatalf("jsn %q: timed out after %v\nstdout:\n%s\nstderr:\n%s", args, timeout, r.Stdout, r.Stderr)
	}
	return r
}

func factory(stdin string, env map[string]string, out, errOut *jsntest.Buffer) *cmdutil.Factory {
	return &cmdutil.Factory{In: strings.NewReader(stdin), Out: out, ErrOut: errOut,
		Getenv: func(k string) string { return env[k] }}
}

// Proc is a jsn command running in the background (`jsn forward`, `jsn tap`).
type Proc struct {
	Stdout, Stderr *jsntest.Buffer // what it wrote so far
	cancel         context.CancelFunc
	done           chan struct{}
	code           int // set before done is closed
}

// Background starts `jsn args…` in the session. Stop ends it as Ctrl-C would; the test's end
// does if the test did not.
func (s *Session) Background(o Options, args ...string) *Proc {
	s.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	p := &Proc{Stdout: &jsntest.Buffer{}, Stderr: &jsntest.Buffer{}, cancel: cancel, done: make(chan struct{})}
	f := factory(o.Stdin, s.env(o.Env), p.Stdout, p.Stderr)
	go func() {
		defer close(p.done)
		p.code = cli.Run(ctx, f, args)
	}()
	s.t.Cleanup(func() { p.Stop() })
	return p
}

// Exited reports whether the command has ended by itself or been stopped.
func (p *Proc) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Stop interrupts the command (its context ends, as on Ctrl-C) and returns its exit code.
func (p *Proc) Stop() int {
	p.cancel()
	<-p.done
	return p.code
}
