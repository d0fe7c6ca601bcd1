package power

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"jsn.dev/jsn/bus/wire"
	"jsn.dev/jsn/drivers/driver"
)

func init() {
	driver.MustRegister(driver.Info{
		Type:      "power.Command",
		Interface: Interface,
		Doc:       "power switch driven by shell commands (uhubctl, sispmctl, pdudaemon, scripts)",
		New:       NewCommand,
	})
}

// Reset modes shared by the backends: what Reset does between leases.
const (
	resetOff   = "off"   // switch off (the default: the safe state)
	resetOn    = "on"    // switch on
	resetLeave = "leave" // do nothing
)

func validReset(field, mode string) error {
	switch mode {
	case resetOff, resetOn, resetLeave:
		return nil
	}
	return driver.FieldErrorf(field, `want "off", "on" or "leave", got %q`, mode)
}

// applyReset brings d to the state mode asks for.
func applyReset(ctx context.Context, d Device, mode string) error {
	switch mode {
	case resetOn:
		return d.On(ctx)
	case resetLeave:
		return nil
	}
	return d.Off(ctx)
}

// Command is a power switch driven by commands run through a shell: one to switch on, one to
// switch off, optionally one to cycle and one to query the state.
//
// Config:
//
//	on: "uhubctl -l 1-1 -p 2 -a on"   # required
//	off: "uhubctl -l 1-1 -p 2 -a off" # required
//	cycle: ""            # optional; default: off, wait, on. Gets JSN_POWER_WAIT (seconds)
//	status: ""           # optional; its trimmed stdout is searched for status_on
//	status_on: "^on$"    # RE2 regular expression meaning "on"
//	shell: [sh, -c]      # argv prefix the command string is appended to
//	timeout: 30s         # per command; then the process group is killed
//	env: {}              # extra environment
//	cycle_wait: 1s       # off time of cycle when the caller gives none
//	reset: off           # off | on | leave: what Reset does between leases
//
// Without a status command, status returns the last state switched to ("assumed"), off before
// the first switch.
type Command struct {
	OnCmd     string            `yaml:"on" jsn:"required"`
	OffCmd    string            `yaml:"off" jsn:"required"`
	CycleCmd  string            `yaml:"cycle"`
	StatusCmd string            `yaml:"status"`
	StatusOn  string            `yaml:"status_on"`
	Shell     []string          `yaml:"shell"`
	Timeout   time.Duration     `yaml:"timeout"`
	Env       map[string]string `yaml:"env"`
	CycleWait time.Duration     `yaml:"cycle_wait"`
	ResetMode string            `yaml:"reset"`

	run *runner
}

// NewCommand is the power.Command constructor: defaults only, no side effects.
func NewCommand(env driver.Env) driver.Driver {
	return &Command{
		StatusOn:  "^on$",
		Shell:     []string{"sh", "-c"},
		Timeout:   30 * time.Second,
		CycleWait: DefaultCycleWait,
		ResetMode: resetOff,
		run:       newRunner(env),
	}
}

// Validate checks the config.
func (c *Command) Validate() error {
	var errs []error
	if strings.TrimSpace(c.OnCmd) == "" {
		errs = append(errs, driver.FieldErrorf("on", "must not be empty"))
	}
	if strings.TrimSpace(c.OffCmd) == "" {
		errs = append(errs, driver.FieldErrorf("off", "must not be empty"))
	}
	if len(c.Shell) == 0 || c.Shell[0] == "" {
		errs = append(errs, driver.FieldErrorf("shell", "must name a program, e.g. [sh, -c]"))
	}
	re, err := regexp.Compile(c.StatusOn)
	if err != nil {
		errs = append(errs, driver.FieldErrorf("status_on", "%v", err))
	}
	c.run.statusOn = re
	errs = append(errs, c.run.validate(c.Timeout, c.CycleWait, c.Env)...)
	if err := validReset("reset", c.ResetMode); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

func (c *Command) argv(cmd string) []string {
	if cmd == "" {
		return nil
	}
	return append(append([]string(nil), c.Shell...), cmd)
}

// Open prepares the commands; nothing runs yet.
func (c *Command) Open(ctx context.Context) error {
	c.run.timeout, c.run.env, c.run.cycleWait = c.Timeout, c.Env, c.CycleWait
	c.run.on, c.run.off = c.argv(c.OnCmd), c.argv(c.OffCmd)
	c.run.cycle, c.run.status = c.argv(c.CycleCmd), c.argv(c.StatusCmd)
	if c.run.statusOn == nil {
		re, err := regexp.Compile(c.StatusOn)
		if err != nil {
			return fmt.Errorf("open: status_on: %w", err)
		}
		c.run.statusOn = re
	}
	return nil
}

// Reset switches off, unless reset says otherwise.
func (c *Command) Reset(ctx context.Context) error { return applyReset(ctx, c.run, c.ResetMode) }

// Close does nothing: no process outlives a call.
func (c *Command) Close() error { return nil }

// Methods returns the jsn.power.v1 method table.
func (c *Command) Methods() []driver.Method {
	return Methods(c.run, Options{CycleWait: c.CycleWait})
}

// On runs the on command.
func (c *Command) On(ctx context.Context) error { return c.run.On(ctx) }

// Off runs the off command.
func (c *Command) Off(ctx context.Context) error { return c.run.Off(ctx) }

// Status runs the status command, or returns the assumed state.
func (c *Command) Status(ctx context.Context) (State, error) { return c.run.Status(ctx) }

// Read is not supported: commands switch, they do not measure.
func (c *Command) Read(ctx context.Context) (Reading, error) { return c.run.Read(ctx) }

// runner runs the argv of each power action; Command and Ykush are both made of one. It is a
// Device (and a Cycler when it has a cycle command).
type runner struct {
	log *slog.Logger
	dir string // working directory: the config file's

	// set before Open returns, read-only afterwards
	on, off, cycle, status []string // argv; cycle and status may be nil
	statusOn               *regexp.Regexp
	timeout, cycleWait     time.Duration
	env                    map[string]string
	kind                   string // "command" or "ykushcmd", for messages

	mu      sync.Mutex // serialises actions: one command at a time
	assumed State      // last state switched to; guarded by mu
}

func newRunner(env driver.Env) *runner {
	return &runner{log: env.Log, dir: env.Dir, assumed: Off, kind: "command"}
}

func (r *runner) validate(timeout, cycleWait time.Duration, env map[string]string) []error {
	var errs []error
	if timeout <= 0 {
		errs = append(errs, driver.FieldErrorf("timeout", "must be positive, got %s", timeout))
	}
	if cycleWait < 0 {
		errs = append(errs, driver.FieldErrorf("cycle_wait", "must not be negative, got %s", cycleWait))
	}
	keys := make([]string, 0, len(env))
	for k := range env {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if k == "" || strings.ContainsAny(k, "=\x00") {
			errs = append(errs, driver.FieldErrorf("env", "bad variable name %q", k))
		}
		if strings.Contains(env[k], "\x00") {
			errs = append(errs, driver.FieldErrorf("env."+k, "must not contain NUL"))
		}
	}
	return errs
}

func (r *runner) On(ctx context.Context) error  { return r.switchTo(ctx, "on", r.on, On, nil) }
func (r *runner) Off(ctx context.Context) error { return r.switchTo(ctx, "off", r.off, Off, nil) }

// Cycle runs the cycle command if there is one, else off, wait, on.
func (r *runner) Cycle(ctx context.Context, wait time.Duration) error {
	if r.cycle == nil {
		return cycleSteps(ctx, r, wait)
	}
	secs := strconv.FormatFloat(wait.Seconds(), 'f', -1, 64)
	return r.switchTo(ctx, "cycle", r.cycle, On, []string{"JSN_POWER_WAIT=" + secs})
}

func (r *runner) switchTo(ctx context.Context, action string, argv []string, to State, extra []string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, err := r.exec(ctx, action, argv, extra); err != nil {
		return err
	}
	if r.assumed != to || action == "cycle" {
		r.log.Info("power state changed", "action", action, "from", string(r.assumed), "to", string(to))
	}
	r.assumed = to
	return nil
}

// Status runs the status command and matches its output, or returns the assumed state.
func (r *runner) Status(ctx context.Context) (State, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.status == nil {
		return r.assumed, nil
	}
	out, err := r.exec(ctx, "status", r.status, nil)
	if err != nil {
		return "", err
	}
	if r.statusOn.MatchString(strings.TrimSpace(out)) {
		return On, nil
	}
	return Off, nil
}

// Read fails UNIMPLEMENTED.
func (r *runner) Read(ctx context.Context) (Reading, error) {
	return Reading{}, wire.Errorf(wire.Unimplemented, "this %s power switch cannot measure voltage or current", r.kind)
}

// maxOutput bounds what is kept of a command's stdout and stderr.
const maxOutput = 64 << 10

// exec runs argv with the timeout, in its own process group, and returns its stdout. A non-zero
// exit or a program that cannot start is UNAVAILABLE (the device did not do it), with the tail
// of stderr; the timeout is DEADLINE_EXCEEDED, after killing the whole process group.
func (r *runner) exec(ctx context.Context, action string, argv []string, extra []string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, r.timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Dir = r.dir
	cmd.Env = append(os.Environ(), "JSN_POWER_ACTION="+action)
	for k, v := range r.env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	cmd.Env = append(cmd.Env, extra...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error {
		if cmd.Process == nil {
			return nil
		}
		return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	}
	cmd.WaitDelay = time.Second // a grandchild holding the pipes must not hang the call
	stdout, stderr := &tailBuffer{max: maxOutput}, &tailBuffer{max: maxOutput}
	cmd.Stdout, cmd.Stderr = stdout, stderr
	r.log.Debug("run power command", "action", action, "argv", argv)
	err := cmd.Run()
	if cmd.Process != nil {
		// Leave nothing of the group behind, even after a clean exit.
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	}
	name := quoteArgv(argv)
	switch {
	case err == nil:
		return stdout.String(), nil
	case ctx.Err() == context.DeadlineExceeded:
		return "", wire.Errorf(wire.DeadlineExceeded, "%s: %s did not finish within %s; killed it", action, name, r.timeout)
	case ctx.Err() != nil:
		return "", fmt.Errorf("%s: %s: %w", action, name, ctx.Err())
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return "", wire.Errorf(wire.Unavailable, "%s: %s %s%s", action, name, exitText(ee), tail(stderr.String()))
	}
	return "", wire.Errorf(wire.Unavailable, "%s: %s: %w", action, name, err)
}

func exitText(ee *exec.ExitError) string {
	if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return "was killed by " + ws.Signal().String()
	}
	return fmt.Sprintf("exited with status %d", ee.ExitCode())
}

// tail formats the last lines of stderr for an error message.
func tail(s string) string {
	s = strings.TrimSpace(s)
	if s == "" {
		return ""
	}
	const maxTail = 512
	if len(s) > maxTail {
		s = "…" + s[len(s)-maxTail:]
	}
	return ": " + s
}

func quoteArgv(argv []string) string {
	if len(argv) > 0 {
		if argv[0] == "sh" || filepath.Base(argv[0]) == "sh" || filepath.Base(argv[0]) == "bash" {
			return strconv.Quote(argv[len(argv)-1])
		}
	}
	return strconv.Quote(strings.Join(argv, " "))
}

// tailBuffer keeps the last max bytes written to it.
type tailBuffer struct {
	max int
	b   bytes.Buffer
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	n := len(p)
	if len(p) > t.max {
		p = p[len(p)-t.max:]
	}
	if over := t.b.Len() + len(p) - t.max; over > 0 {
		t.b.Next(over)
	}
	t.b.Write(p)
	return n, nil
}

func (t *tailBuffer) String() string { return t.b.String() }

// cycleSteps is off, wait, on on d.
func cycleSteps(ctx context.Context, d Device, wait time.Duration) error {
	if err := d.Off(ctx); err != nil {
		return fmt.Errorf("cycle: %w", err)
	}
	if err := sleep(ctx, wait); err != nil {
		return fmt.Errorf("cycle: %w", err)
	}
	if err := d.On(ctx); err != nil {
		return fmt.Errorf("cycle: %w", err)
	}
	return nil
}

var (
	_ Device           = (*Command)(nil)
	_ Device           = (*runner)(nil)
	_ Cycler           = (*runner)(nil)
	_ driver.Driver    = (*Command)(nil)
	_ driver.Validator = (*Command)(nil)
	_ driver.Methoder  = (*Command)(nil)
)
