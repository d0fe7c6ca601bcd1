package jsntest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
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
	bin       string
	buildErr  error
)

// Binary returns the path of a jsn binary built from this source tree (with -race when the
// tests run with -race), building it on first use. It fails t if jsn does not build.
//
// The test processes of one `go test ./...` run share the binary, and so do later runs until the
// sources change: it is built once into a directory of os.TempDir() named after a hash of
// everything it is built from (see buildKey), under a file lock that makes the other processes
// wait for it instead of building it again.
func Binary(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() { bin, buildErr = build() })
	if buildErr != nil {
		t.Fatalf("build jsn: %v", buildErr)
	}
	return bin
}

// build makes (or finds) the shared binary of this source tree.
func build() (string, error) {
	key, err := buildKey()
	if err != nil {
		return "", err
	}
	dir := filepath.Join(os.TempDir(), "jsn-test-bin-"+key)
	path := filepath.Join(dir, "jsn")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", err
	}
	lock, err := os.OpenFile(filepath.Join(dir, "lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return "", err
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		return "", fmt.Errorf("lock %s: %w", lock.Name(), err)
	}
	defer syscall.Flock(int(lock.Fd()), syscall.LOCK_UN)
	if _, err := os.Stat(path); err == nil {
		now := time.Now()
		_ = os.Chtimes(path, now, now) // in use: not stale
		return path, nil               // another test process built it
	}
	removeStale(filepath.Dir(dir), dir)
	args := []string{"build", "-o", path + ".tmp"}
	if raceEnabled {
		args = append(args, "-race")
	}
	out, err := exec.Command("go", append(args, "jsn.dev/jsn/cmd/jsn")...).CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("%v\n%s", err, out)
	}
	return path, os.Rename(path+".tmp", path)
}

// buildKey hashes what the binary is built from: the Go toolchain and settings, -race, go.sum
// (the versions of every module outside this one), and the files of every package of this
// module that jsn imports.
func buildKey() (string, error) {
	h := sha256.New()
	fmt.Fprintln(h, runtime.Version(), runtime.GOOS, runtime.GOARCH, raceEnabled, os.Getenv("GOFLAGS"), os.Getenv("CGO_ENABLED"))
	out, err := exec.Command("go", "list", "-deps", "-f",
		"{{if .Module}}{{if .Module.Main}}{{.Dir}}|{{join .GoFiles \"|\"}}|{{join .CgoFiles \"|\"}}|{{join .EmbedFiles \"|\"}}{{end}}{{end}}",
		"jsn.dev/jsn/cmd/jsn").Output()
	if err != nil {
		return "", fmt.Errorf("go list: %w", err)
	}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if line == "" {
			continue
		}
		parts := strings.Split(line, "|")
		dir := parts[0]
		for _, name := range parts[1:] {
			if name == "" {
				continue
			}
			b, err := os.ReadFile(filepath.Join(dir, name))
			if err != nil {
				return "", err
			}
			fmt.Fprintf(h, "%s/%s %d\n", dir, name, len(b))
			h.Write(b)
		}
	}
	root, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	for _, name := range []string{"go.mod", "go.sum"} {
		b, err := os.ReadFile(filepath.Join(filepath.Dir(strings.TrimSpace(string(root))), name))
		if err != nil {
			return "", err
		}
		h.Write(b)
	}
	return hex.EncodeToString(h.Sum(nil))[:16], nil
}

// removeStale removes the shared binaries of other source trees not used for a day.
func removeStale(tmp, keep string) {
	old, _ := filepath.Glob(filepath.Join(tmp, "jsn-test-bin-*"))
	for _, d := range old {
		if d == keep {
			continue
		}
		if fi, err := os.Stat(filepath.Join(d, "jsn")); err == nil && time.Since(fi.ModTime()) > 24*time.Hour {
			_ = os.RemoveAll(d)
		}
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
