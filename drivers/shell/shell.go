package shell

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"jsn.dev/jsn/bus/wire"
	"jsn.dev/jsn/drivers/driver"
)

// Interface is the name of the interface the shell driver implements.
const Interface = "jsn.shell.v1"

func init() {
	driver.MustRegister(driver.Info{
		Type:      "shell",
		Interface: Interface,
		Doc:       "methods that run configured shell commands",
		New:       New,
		Aliases:   []string{"jumpstarter_driver_shell.driver.Shell"},
	})
}

// DefaultTimeout is how long a command may run when the config sets no timeout.
const DefaultTimeout = 300 * time.Second

// chunkSize is the largest data item a method sends.
const chunkSize = 32 << 10

var (
	errTimedOut = errors.New("timed out")
	errReset    = errors.New("killed by driver reset")
)

// Shell is the shell driver. Config (the keys of Jumpstarter's Shell):
//
//	methods:                       # required, at least one; names match [a-z_][a-z0-9_]*
//	  build_info: "uname -a"       # a command string, or:
//	  flash:
//	    command: "flash.sh $1"
//	    description: flash an image
//	    timeout: 600               # seconds, or a duration string "10m"
//	shell: [bash, -c]              # default [sh, -c]
//	timeout: 300                   # default timeout; seconds or a duration string
//	env: {BOARD: rpi4}             # added to the exporter's environment
//	cwd: /srv/lab                  # working directory, relative to the config file's directory
//	log_level: INFO                # the driver's log level, as on every driver (see docs/drivers.md)
//
// Each method is a server stream taking one optional argument, args: a list of strings or one
// string (never split), passed to the command as $1, $2… ($0 is the method name), like
// `sh -c COMMAND NAME ARGS…`. It sends {"stream": "stdout"|"stderr", "data": bytes} items as
// output arrives (at most 32 KiB each), then {"exit_code": int} (128+N when killed by signal N).
type Shell struct {
	Commands map[string]any    `yaml:"methods" jsn:"required"`
	Shell    []string          `yaml:"shell"`
	Timeout  time.Duration     `yaml:"timeout"`
	Env      map[string]string `yaml:"env"`
	Cwd      string            `yaml:"cwd"`

	env  driver.Env
	log  *slog.Logger
	cmds []command // parsed by Validate

	mu      sync.Mutex
	running map[*run]struct{} // commands being run; guarded by mu
}

// run is one running command.
type run struct {
	cancel context.CancelCauseFunc
	done   chan struct{} // closed when the method returns
}

// New is the shell constructor: defaults only, no side effects.
func New(env driver.Env) driver.Driver {
	return &Shell{
		Shell:   []string{"sh", "-c"},
		Timeout: DefaultTimeout,
		env:     env,
		log:     env.Log,
		running: map[*run]struct{}{},
	}
}

// Validate checks the config and parses the methods.
func (s *Shell) Validate() error {
	var errs []error
	if len(s.Shell) == 0 || s.Shell[0] == "" {
		errs = append(errs, driver.FieldErrorf("shell", "must name a program, e.g. [sh, -c]"))
	}
	if s.Timeout <= 0 {
		errs = append(errs, driver.FieldErrorf("timeout", "must be positive, got %s", s.Timeout))
	}
	for _, k := range slices.Sorted(maps.Keys(s.Env)) {
		if k == "" || containsAny(k, "=\x00") {
			errs = append(errs, driver.FieldErrorf("env", "invalid variable name %q", k))
		}
	}
	cmds, err := parseMethods(s.Commands, s.Timeout)
	if err != nil {
		errs = append(errs, err)
	}
	s.cmds = cmds
	return errors.Join(errs...)
}

func containsAny(s, chars string) bool {
	for _, r := range s {
		for _, c := range chars {
			if r == c {
				return true
			}
		}
	}
	return false
}

// dir returns the working directory of commands, "" for the exporter's.
func (s *Shell) dir() string {
	if s.Cwd == "" || filepath.IsAbs(s.Cwd) {
		return s.Cwd
	}
	return filepath.Join(s.env.Dir, s.Cwd)
}

// Open checks that the working directory exists.
func (s *Shell) Open(ctx context.Context) error {
	if s.cmds == nil {
		if err := s.Validate(); err != nil {
			return err
		}
	}
	if d := s.dir(); d != "" {
		fi, err := os.Stat(d)
		if err != nil {
			return fmt.Errorf("open: cwd: %w", err)
		}
		if !fi.IsDir() {
			return fmt.Errorf("open: cwd %s: not a directory", d)
		}
	}
	return nil
}

// Reset kills every running command and waits (at most until ctx ends) for its method to return.
func (s *Shell) Reset(ctx context.Context) error {
	for _, r := range s.killAll() {
		select {
		case <-r.done:
		case <-ctx.Done():
			return fmt.Errorf("reset: wait for commands: %w", ctx.Err())
		}
	}
	return nil
}

// Close kills every running command and waits for its method to return.
func (s *Shell) Close() error {
	for _, r := range s.killAll() {
		<-r.done
	}
	return nil
}

func (s *Shell) killAll() []*run {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []*run
	for r := range s.running {
		r.cancel(errReset)
		out = append(out, r)
	}
	return out
}

// Methods returns one server-stream method per configured command, sorted by name.
func (s *Shell) Methods() []driver.Method {
	ms := make([]driver.Method, 0, len(s.cmds))
	for _, c := range s.cmds {
		ms = append(ms, driver.Method{
			Name:    c.name,
			Doc:     c.doc,
			Kind:    driver.KindServerStream,
			Returns: driver.TypeOutput,
			Args: []driver.Arg{{Name: "args", Type: driver.TypeAny, Optional: true,
				Doc: "positional parameters $1…: a list of strings, or one string"}},
			Stream: func(ctx context.Context, args driver.Args, send func(any) error) error {
				argv, err := positional(c.name, args.Any(0))
				if err != nil {
					return err
				}
				return s.run(ctx, c, argv, send)
			},
		})
	}
	return ms
}

// positional converts the args argument.
func positional(method string, v any) ([]string, error) {
	switch v := v.(type) {
	case nil:
		return nil, nil
	case string:
		return []string{v}, nil
	case []string:
		return v, nil
	case []any:
		out := make([]string, len(v))
		for i, a := range v {
			s, ok := a.(string)
			if !ok {
				return nil, wire.Errorf(wire.InvalidArgument, "%s: args[%d]: want a string, got %T", method, i, a)
			}
			out[i] = s
		}
		return out, nil
	default:
		return nil, wire.Errorf(wire.InvalidArgument, "%s: args: want a string or a list of strings, got %T", method, v)
	}
}

// chunk is one piece of output read by a pipe reader.
type chunk struct {
	stream string
	data   []byte
}

func (s *Shell) run(parent context.Context, c command, args []string, send func(any) error) error {
	ctx, cancel := context.WithCancelCause(parent)
	defer cancel(nil)
	ctx, stopTimer := context.WithTimeoutCause(ctx, c.timeout, errTimedOut)
	defer stopTimer()
	r := &run{cancel: cancel, done: make(chan struct{})}
	s.mu.Lock()
	s.running[r] = struct{}{}
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.running, r)
		s.mu.Unlock()
		close(r.done)
	}()

	argv := append(append(slices.Clone(s.Shell), c.script, c.name), args...)
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Dir = s.dir()
	cmd.Env = os.Environ()
	for _, k := range slices.Sorted(maps.Keys(s.Env)) {
		cmd.Env = append(cmd.Env, k+"="+s.Env[k])
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}

	outR, outW, err := os.Pipe()
	if err != nil {
		return fmt.Errorf("%s: %w", c.name, err)
	}
	defer outR.Close()
	errR, errW, err := os.Pipe()
	if err != nil {
		outW.Close()
		return fmt.Errorf("%s: %w", c.name, err)
	}
	defer errR.Close()
	cmd.Stdout, cmd.Stderr = outW, errW
	err = cmd.Start()
	outW.Close()
	errW.Close()
	if err != nil {
		return wire.Errorf(wire.FailedPrecondition, "%s: start %s: %w", c.name, argv[0], err)
	}
	pid := cmd.Process.Pid
	// The group's id stays ours until cmd.Wait reaps the shell, so killing -pid before then
	// cannot hit another process group.
	killGroup := func() { syscall.Kill(-pid, syscall.SIGKILL) }
	s.log.Debug("command started", "method", c.name, "pid", pid)

	exited := make(chan struct{}) // the shell has exited (not yet reaped)
	go func() {
		defer close(exited)
		var info unix.Siginfo
		for {
			err := unix.Waitid(unix.P_PID, pid, &info, unix.WEXITED|unix.WNOWAIT, nil)
			if err != unix.EINTR {
				return
			}
		}
	}()

	items := make(chan chunk)
	quit := make(chan struct{})
	var readers sync.WaitGroup
	read := func(name string, f *os.File) {
		defer readers.Done()
		for {
			buf := make([]byte, chunkSize)
			n, err := f.Read(buf)
			if n > 0 {
				select {
				case items <- chunk{name, buf[:n]}:
				case <-quit:
					return
				}
			}
			if err != nil {
				return
			}
		}
	}
	readers.Add(2)
	go read("stdout", outR)
	go read("stderr", errR)
	readersDone := make(chan struct{})
	go func() {
		readers.Wait()
		close(readersDone)
	}()

	// abort kills everything, unblocks the readers, reaps the shell and returns err.
	abort := func(err error) error {
		killGroup()
		<-exited
		close(quit)
		outR.Close()
		errR.Close()
		<-readersDone
		cmd.Wait()
		return err
	}

	exitedCh, readersCh := exited, readersDone // nil once seen
	for exitedCh != nil || readersCh != nil {
		select {
		case it := <-items:
			if err := send(map[string]any{"stream": it.stream, "data": it.data}); err != nil {
				return abort(err)
			}
		case <-readersCh:
			readersCh = nil
		case <-exitedCh:
			exitedCh = nil
			killGroup() // whatever the shell left behind in its group
		case <-ctx.Done():
			switch cause := context.Cause(ctx); {
			case errors.Is(cause, errTimedOut):
				s.log.Info("command timed out, killed", "method", c.name, "timeout", c.timeout)
				return abort(wire.Errorf(wire.DeadlineExceeded, "%s: timed out after %s", c.name, c.timeout))
			case errors.Is(cause, errReset):
				s.log.Info("command killed by reset", "method", c.name)
				return abort(wire.Errorf(wire.Unavailable, "%s: %w", c.name, errReset))
			default:
				s.log.Info("command cancelled, killed", "method", c.name)
				return abort(fmt.Errorf("%s: %w", c.name, cause))
			}
		}
	}
	cmd.Wait()
	code := exitCode(cmd.ProcessState)
	s.log.Debug("command exited", "method", c.name, "exit_code", code)
	return send(map[string]any{"exit_code": code})
}

// exitCode is the shell convention: the exit status, or 128+N after signal N.
func exitCode(ps *os.ProcessState) int {
	if ws, ok := ps.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return 128 + int(ws.Signal())
	}
	return ps.ExitCode()
}

var (
	_ driver.Driver    = (*Shell)(nil)
	_ driver.Validator = (*Shell)(nil)
	_ driver.Methoder  = (*Shell)(nil)
)
