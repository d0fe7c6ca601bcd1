package jsntest

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// DefaultTimeout is how long Run and Shell let jsn run when Options.Timeout is 0.
const DefaultTimeout = 90 * time.Second

var (
	raceEnabled bool // set by race.go: build jsn with -race too

	buildOnce sync.Once
	buildDir  string // holds the binary; removed by Cleanup
	bin       string
	buildErr  error
	buildOut  []byte
)

// Binary returns the path of the jsn binary, building it on first use. It fails t if jsn does
// not build.
func Binary(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() {
		buildDir, buildErr = os.MkdirTemp("", "jsn-test-")
		if buildErr != nil {
			return
		}
		bin = filepath.Join(buildDir, "jsn")
		args := []string{"build", "-o", bin}
		if raceEnabled {
			args = append(args, "-race")
		}
		buildOut, buildErr = exec.Command("go", append(args, "jsn.dev/jsn/cmd/jsn")...).CombinedOutput()
	})
	if buildErr != nil {
		t.Fatalf("build jsn: %v\n%s", buildErr, buildOut)
	}
	return bin
}

// Cleanup removes the binary Binary built. Call it from TestMain after m.Run.
func Cleanup() {
	if buildDir != "" {
		os.RemoveAll(buildDir)
	}
}

// Env returns the test process's environment without session variables (JSN_…).
func Env() []string {
	var out []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "JSN_") {
			out = append(out, kv)
		}
	}
	return out
}

// Command prepares jsn with args, with the environment of Env. When ctx ends it gets SIGTERM,
// which a session forwards to its child, so a failing test leaves no processes behind.
func Command(ctx context.Context, t testing.TB, args ...string) *exec.Cmd {
	t.Helper()
	cmd := exec.CommandContext(ctx, Binary(t), args...)
	cmd.Env = Env()
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = 10 * time.Second
	return cmd
}

// Options say how Run and Shell run jsn.
type Options struct {
	Dir     string        // working directory; "" for the test's
	Stdin   string        // standard input
	Env     []string      // the whole environment; nil for Env()
	Timeout time.Duration // how long jsn may run; 0 for DefaultTimeout
}

// Result is how a run of jsn ended.
type Result struct {
	Stdout, Stderr string
	Code           int // exit code
}

// Want fails t unless jsn exited with code.
func (r Result) Want(t testing.TB, code int) {
	t.Helper()
	if r.Code != code {
		t.Fatalf("got exit %d, want %d\nstdout:\n%s\nstderr:\n%s", r.Code, code, r.Stdout, r.Stderr)
	}
}

// Run runs jsn with args to the end. It fails t if jsn cannot start or outlives the timeout.
func Run(t testing.TB, o Options, args ...string) Result {
	t.Helper()
	timeout := o.Timeout
	if timeout == 0 {
		timeout = DefaultTimeout
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := Command(ctx, t, args...)
	if o.Env != nil {
		cmd.Env = o.Env
	}
	cmd.Dir = o.Dir
	cmd.Stdin = strings.NewReader(o.Stdin)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	r := Result{Stdout: out.String(), Stderr: errOut.String()}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		r.Code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("run jsn %q: %v", args, err)
	}
	if ctx.Err() != nil {
		t.Fatalf("jsn %q: timed out after %v\nstdout:\n%s\nstderr:\n%s", args, timeout, r.Stdout, r.Stderr)
	}
	return r
}

// Shell runs `jsn shell -c config -- argv…` to the end, like Run.
func Shell(t testing.TB, config string, o Options, argv ...string) Result {
	t.Helper()
	return Run(t, o, append([]string{"shell", "-c", config, "--"}, argv...)...)
}

// Buffer is a bytes.Buffer that a running process writes while the test reads it.
type Buffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *Buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *Buffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}
