package process

import (
	"context"
	"crypto/sha256"
	_ "embed"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"jsn.dev/jsn/bus/wire"
	"jsn.dev/jsn/drivers/driver"
)

// Type is the registered driver type.
const Type = "process"

// Restart policies.
const (
	RestartNever     = "never"      // a process that exits stays down (the node is unavailable)
	RestartOnFailure = "on-failure" // restarted after a crash, a non-zero exit, a hang or garbage
	RestartAlways    = "always"     // restarted whatever the reason it ended
)

func init() {
	driver.MustRegister(driver.Info{
		Type: Type,
		Doc:  "a driver served by a program of its own, in any language (docs/external-drivers.md)",
		New:  func(env driver.Env) driver.Driver { return New(env) },
	})
}

// New returns a Process driver with the defaults of a config that sets only command.
func New(env driver.Env) *Process {
	return &Process{env: env, Restart: RestartOnFailure, CallTimeout: 30 * time.Second, StartTimeout: 10 * time.Second}
}

// Process is an out-of-process driver: the exporter starts Command and serves the methods the
// program declares, forwarding calls, server streams and byte streams to it over a private
// socket (fd 3 in the program). See docs/external-drivers.md for the protocol.
type Process struct {
	// Command is the program and its arguments. A relative program path containing a slash, and
	// Dir, are relative to the config file's directory; a bare name is looked up in PATH.
	Command []string `yaml:"command" jsn:"required"`
	// Env adds variables to the program's environment. The exporter's own JSN_* and NATS_*
	// variables are never passed on: the program never sees bus credentials.
	Env map[string]string `yaml:"env"`
	// Dir is the program's working directory; default the config file's directory.
	Dir string `yaml:"dir"`
	// Restart is never, on-failure (default) or always. Restarts back off from 100ms to 30s.
	Restart string `yaml:"restart"`
	// CallTimeout bounds every call, and Open/Reset/Close (default 30s). Streams are bounded
	// by their client, not by it.
	CallTimeout time.Duration `yaml:"call_timeout"`
	// StartTimeout bounds the program's start until its HELLO (default 10s).
	StartTimeout time.Duration `yaml:"start_timeout"`
	// Options is handed to the program in INIT: the driver's own settings (the Python SDK
	// passes them to the driver class as keyword arguments).
	Options map[string]any `yaml:"options"`

	env driver.Env

	mu       sync.Mutex
	cur      *conn  // the running process; nil while down
	down     string // why the process is down; "" while up
	closed   bool
	hello    *hello // the declaration of the first process; later ones must match
	methods  []driver.Method
	stopped  chan struct{} // closed by Close: ends the supervisor
	superWG  sync.WaitGroup
	restarts int // how many times the process was restarted (for tests and logs)
}

// Validate checks the config.
func (p *Process) Validate() error {
	var errs []error
	if len(p.Command) == 0 || p.Command[0] == "" {
		errs = append(errs, driver.FieldErrorf("command", "want the program and its arguments, e.g. [python3, relay.py]"))
	}
	switch p.Restart {
	case RestartNever, RestartOnFailure, RestartAlways:
	default:
		errs = append(errs, driver.FieldErrorf("restart", "%q: want never, on-failure or always", p.Restart))
	}
	if p.CallTimeout <= 0 {
		errs = append(errs, driver.FieldErrorf("call_timeout", "%v: want a positive duration such as 30s", p.CallTimeout))
	}
	if p.StartTimeout <= 0 {
		errs = append(errs, driver.FieldErrorf("start_timeout", "%v: want a positive duration such as 10s", p.StartTimeout))
	}
	for k := range p.Env {
		if k == "" || strings.ContainsAny(k, "=\x00") {
			errs = append(errs, driver.FieldErrorf("env", "invalid variable name %q", k))
		}
	}
	return errors.Join(errs...)
}

// Program returns the program Command runs, resolved as Open will run it (for allowlists).
func (p *Process) Program() string {
	if len(p.Command) == 0 {
		return ""
	}
	return resolveProgram(p.Command[0], p.env.Dir)
}

func resolveProgram(prog, dir string) string {
	if strings.Contains(prog, "/") {
		if !filepath.IsAbs(prog) && dir != "" {
			return filepath.Join(dir, prog)
		}
		return filepath.Clean(prog)
	}
	if path, err := exec.LookPath(prog); err == nil {
		return path
	}
	return prog
}

// Open starts the program and waits for its declaration, then sends OPEN.
func (p *Process) Open(ctx context.Context) error {
	c, err := p.start(ctx)
	if err != nil {
		return err
	}
	p.mu.Lock()
	p.cur, p.hello = c, c.hello
	p.methods = p.buildMethods(c.hello)
	p.stopped = make(chan struct{})
	p.mu.Unlock()
	p.superWG.Add(1)
	go p.supervise(c)
	return nil
}

// start runs the program once: INIT, HELLO, OPEN.
func (p *Process) start(ctx context.Context) (*conn, error) {
	c, err := spawn(p)
	if err != nil {
		return nil, err
	}
	if err := c.handshake(ctx, p.StartTimeout); err != nil {
		c.kill(err.Error())
		<-c.exited
		return nil, fmt.Errorf("%w%s", err, c.stderrTail())
	}
	if _, err := c.lifecycle(ctx, frameOpen, "open"); err != nil {
		c.kill("open failed")
		<-c.exited
		return nil, fmt.Errorf("%w%s", err, c.stderrTail())
	}
	return c, nil
}

// Declared returns what the first process declared (driver.Declarer).
func (p *Process) Declared() (string, []driver.Method) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.hello == nil {
		return "", nil
	}
	return p.hello.Interface, p.methods
}

// Reset sends RESET to the running process; a process that is down has nothing to reset.
func (p *Process) Reset(ctx context.Context) error {
	c := p.conn()
	if c == nil {
		return nil
	}
	_, err := c.lifecycle(ctx, frameReset, "reset")
	return err
}

// Close sends CLOSE, closes the socket (the program reads end of stream and should exit), and
// kills the program if it is still running a few seconds later.
func (p *Process) Close() error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil
	}
	p.closed = true
	c := p.cur
	p.cur = nil
	p.down = "driver closed"
	if p.stopped != nil {
		close(p.stopped)
	}
	p.mu.Unlock()
	var err error
	if c != nil {
		ctx, cancel := context.WithTimeout(context.Background(), min(p.CallTimeout, 5*time.Second))
		_, err = c.lifecycle(ctx, frameClose, "close")
		cancel()
		c.shutdown(5 * time.Second)
	}
	p.superWG.Wait()
	return err
}

// Unavailable says why the process is down, "" while it runs.
func (p *Process) Unavailable() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cur == nil && !p.closed && p.stopped != nil {
		return p.down
	}
	return ""
}

// Restarts returns how many times the process was restarted.
func (p *Process) Restarts() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.restarts
}

func (p *Process) conn() *conn {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.cur
}

// current returns the running process or an UNAVAILABLE error naming why it is down.
func (p *Process) current(method string) (*conn, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cur != nil {
		return p.cur, nil
	}
	why := p.down
	if why == "" {
		why = "driver process not started"
	}
	return nil, wire.Errorf(wire.Unavailable, "%s.%s: %s", p.env.Path, method, why)
}

// supervise waits for each process to end and restarts it as the policy says.
func (p *Process) supervise(c *conn) {
	defer p.superWG.Done()
	backoff := 100 * time.Millisecond
	for {
		select {
		case <-c.exited:
		case <-p.stopped:
			return
		}
		started := c.started
		reason := c.reason()
		restart := p.Restart == RestartAlways || p.Restart == RestartOnFailure && !c.cleanExit()
		p.mu.Lock()
		if p.closed {
			p.mu.Unlock()
			return
		}
		p.cur = nil
		if !restart {
			p.down = reason + "; not restarted (restart: " + p.Restart + ")"
			p.mu.Unlock()
			p.env.Log.Warn("driver process down", "reason", reason, "restart", p.Restart)
			return
		}
		if time.Since(started) > 10*time.Second {
			backoff = 100 * time.Millisecond
		}
		p.mu.Unlock()
		for {
			p.mu.Lock()
			p.down = fmt.Sprintf("%s; restarting in %v (restart: %s)", reason, backoff, p.Restart)
			p.mu.Unlock()
			p.env.Log.Warn("driver process down, restarting", "reason", reason, "in", backoff)
			select {
			case <-time.After(backoff):
			case <-p.stopped:
				return
			}
			backoff = min(backoff*2, 30*time.Second)
			ctx, cancel := context.WithTimeout(context.Background(), p.StartTimeout+p.CallTimeout)
			nc, err := p.start(ctx)
			if err == nil && !sameDeclaration(p.hello, nc.hello) {
				nc.kill("declaration changed")
				<-nc.exited
				cancel()
				p.mu.Lock()
				p.down = "the restarted driver process declares other methods than the first one; restart the exporter to serve them"
				p.mu.Unlock()
				p.env.Log.Error("driver process changed its declaration", "path", p.env.Path)
				return
			}
			if err == nil {
				_, err = nc.lifecycle(ctx, frameReset, "reset")
				if err != nil {
					nc.kill("reset failed")
					<-nc.exited
				}
			}
			cancel()
			if err != nil {
				reason = "restart failed: " + err.Error()
				continue
			}
			p.mu.Lock()
			if p.closed {
				p.mu.Unlock()
				nc.shutdown(time.Second)
				return
			}
			p.cur, p.down = nc, ""
			p.restarts++
			p.mu.Unlock()
			p.env.Log.Info("driver process restarted", "pid", nc.cmd.Process.Pid)
			c = nc
			break
		}
	}
}

// childEnv is the program's environment: the exporter's, minus anything that could reach the
// bus, plus the SDK's directory on PYTHONPATH and the config's env.
func (p *Process) childEnv() ([]string, error) {
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		u := strings.ToUpper(k)
		if strings.HasPrefix(u, "JSN_") || strings.HasPrefix(u, "NATS_") || k == "PYTHONPATH" {
			continue
		}
		env = append(env, kv)
	}
	sdk, err := sdkDir()
	if err != nil {
		return nil, err
	}
	pp := sdk
	if old := os.Getenv("PYTHONPATH"); old != "" {
		pp += string(os.PathListSeparator) + old
	}
	env = append(env, "PYTHONPATH="+pp, "PYTHONUNBUFFERED=1", "JSN_DRIVER_PATH="+p.env.Path, "JSN_DRIVER_FD=3")
	for k, v := range p.Env {
		env = append(env, k+"="+v)
	}
	return env, nil
}

//go:embed python/jsn_driver.py
var pythonSDK []byte

// PythonSDK returns the Python SDK module, jsn_driver.py, as shipped in this binary.
func PythonSDK() []byte { return pythonSDK }

var sdkOnce = sync.OnceValues(func() (string, error) {
	sum := sha256.Sum256(pythonSDK)
	base, err := os.UserCacheDir()
	if err != nil || base == "" {
		base = os.TempDir()
	}
	dir := filepath.Join(base, "jsn", "python-"+hex.EncodeToString(sum[:8]))
	file := filepath.Join(dir, "jsn_driver.py")
	if b, err := os.ReadFile(file); err == nil && string(b) == string(pythonSDK) {
		return dir, nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("python sdk: %w", err)
	}
	tmp, err := os.CreateTemp(dir, ".jsn_driver-*")
	if err != nil {
		return "", fmt.Errorf("python sdk: %w", err)
	}
	_, err = tmp.Write(pythonSDK)
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), file)
	}
	if err != nil {
		_ = os.Remove(tmp.Name())
		return "", fmt.Errorf("python sdk: %w", err)
	}
	return dir, nil
})

// sdkDir is a directory holding jsn_driver.py, put on the program's PYTHONPATH so a driver
// written in Python needs nothing installed but python3 and python3-msgpack.
func sdkDir() (string, error) { return sdkOnce() }
