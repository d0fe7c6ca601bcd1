package shell

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"

	"jsn.dev/jsn/bus/wire"
	"jsn.dev/jsn/drivers/driver"
	"jsn.dev/jsn/drivers/drivertest"
	"jsn.dev/jsn/internal/testkit"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func newShell(t *testing.T, methods map[string]any, mod func(*Shell)) *Shell {
	t.Helper()
	env := drivertest.Env("shell")
	env.Dir = t.TempDir()
	s := New(env).(*Shell)
	s.Commands = methods
	if mod != nil {
		mod(s)
	}
	if err := s.Validate(); err != nil {
		t.Fatalf("Validate: %v", err)
	}
	if err := s.Open(context.Background()); err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// result is a finished call: output split by stream, exit code, error.
type result struct {
	stdout, stderr bytes.Buffer
	code           int
	exited         bool
	items          int
	err            error
}

func call(t *testing.T, ctx context.Context, s *Shell, method string, args ...any) *result {
	t.Helper()
	items, err := drivertest.CollectStream(ctx, s, method, args...)
	r := &result{err: err, code: -1}
	for i, item := range items {
		o, derr := DecodeOutput(item)
		if derr != nil {
			t.Fatalf("item %d: %v", i, derr)
		}
		if r.exited {
			t.Fatalf("item %d after the exit item", i)
		}
		switch {
		case o.Exited:
			r.exited, r.code = true, o.ExitCode
		case o.Stream == "stdout":
			r.stdout.Write(o.Data)
		default:
			r.stderr.Write(o.Data)
		}
		if len(o.Data) > chunkSize {
			t.Fatalf("item %d: %d bytes, want at most %d", i, len(o.Data), chunkSize)
		}
		r.items++
	}
	return r
}

func TestRegistered(t *testing.T) {
	for _, name := range []string{"shell", "jumpstarter_driver_shell.driver.Shell"} {
		info, ok := driver.Lookup(name)
		if !ok || info.Type != "shell" || info.Interface != Interface {
			t.Errorf("Lookup(%q): got %+v, %v, want shell/%s", name, info, ok, Interface)
		}
	}
}

func TestRun(t *testing.T) {
	t.Setenv("JSN_TEST_INHERITED", "from-exporter")
	s := newShell(t, map[string]any{
		"both":     "echo out; echo err >&2; echo out2",
		"fail":     "echo failing >&2; exit 3",
		"ok":       "true",
		"env":      `echo "$GREETING $JSN_TEST_INHERITED"`,
		"args":     `printf '%s|' "$0" "$@"`,
		"signaled": "kill -9 $$",
		"pwd":      "pwd",
		"stdin":    "cat; echo done",
	}, func(s *Shell) {
		s.Env = map[string]string{"GREETING": "hello"}
		s.Cwd = "work"
		os.Mkdir(filepath.Join(s.env.Dir, "work"), 0o755)
	})
	workDir, _ := filepath.EvalSymlinks(filepath.Join(s.env.Dir, "work"))
	tests := []struct {
		method     string
		args       []any
		wantOut    string
		wantErr    string
		wantCode   int
		wantBusErr wire.Code
	}{
		{method: "both", wantOut: "out\nout2\n", wantErr: "err\n", wantCode: 0},
		{method: "fail", wantErr: "failing\n", wantCode: 3},
		{method: "ok", wantCode: 0},
		{method: "env", wantOut: "hello from-exporter\n"},
		{method: "args", wantOut: "args|"},
		{method: "args", args: []any{[]any{"a b", "c", ""}}, wantOut: "args|a b|c||"},
		{method: "args", args: []any{"one string, not split"}, wantOut: "args|one string, not split|"},
		{method: "args", args: []any{[]string{"x"}}, wantOut: "args|x|"},
		{method: "args", args: []any{[]any{"x", int64(1)}}, wantCode: -1, wantBusErr: wire.InvalidArgument},
		{method: "args", args: []any{int64(1)}, wantCode: -1, wantBusErr: wire.InvalidArgument},
		{method: "signaled", wantCode: 128 + 9},
		{method: "pwd", wantOut: workDir + "\n"},
		{method: "stdin", wantOut: "done\n"}, // stdin is empty, not the exporter's
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%s%v", tt.method, tt.args), func(t *testing.T) {
			r := call(t, context.Background(), s, tt.method, tt.args...)
			if tt.wantBusErr != "" {
				if got := wire.CodeOf(r.err); got != tt.wantBusErr {
					t.Fatalf("error: got %v (%v), want %s", got, r.err, tt.wantBusErr)
				}
				return
			}
			if r.err != nil {
				t.Fatalf("error: %v", r.err)
			}
			if !r.exited || r.code != tt.wantCode {
				t.Fatalf("exit code: got %d (exited %v), want %d", r.code, r.exited, tt.wantCode)
			}
			if r.stdout.String() != tt.wantOut || r.stderr.String() != tt.wantErr {
				t.Fatalf("output: got stdout %q stderr %q, want %q %q", r.stdout.String(), r.stderr.String(), tt.wantOut, tt.wantErr)
			}
		})
	}
}

func TestLargeOutput(t *testing.T) {
	const n = 5 << 20
	s := newShell(t, map[string]any{
		"big": fmt.Sprintf("head -c %d /dev/zero | tr '\\0' x; head -c %d /dev/zero | tr '\\0' y >&2", n, n/2),
	}, nil)
	r := call(t, context.Background(), s, "big")
	if r.err != nil || r.code != 0 {
		t.Fatalf("got %v, exit %d, want nil, 0", r.err, r.code)
	}
	if r.stdout.Len() != n || bytes.Count(r.stdout.Bytes(), []byte("x")) != n {
		t.Fatalf("stdout: got %d bytes (%d x), want %d x", r.stdout.Len(), bytes.Count(r.stdout.Bytes(), []byte("x")), n)
	}
	if r.stderr.Len() != n/2 || bytes.Count(r.stderr.Bytes(), []byte("y")) != n/2 {
		t.Fatalf("stderr: got %d bytes, want %d y", r.stderr.Len(), n/2)
	}
	if r.items < n/chunkSize {
		t.Fatalf("items: got %d, want at least %d chunks", r.items, n/chunkSize)
	}
}

// spawner prints the pids of a child and a grandchild, both sleeping, then waits.
const spawner = `sleep 100 & echo $!; sh -c 'sleep 101 & echo $!; wait' & wait`

// alive reports whether pid exists and is not a zombie.
func alive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i < 0 || i+2 >= len(s) || s[i+2] != 'Z'
}

func waitGone(t *testing.T, pids []int) {
	t.Helper()
	testkit.CheckFor(t, 30*time.Second, func() error {
		for _, pid := range pids {
			if alive(pid) {
				return fmt.Errorf("process %d still alive", pid)
			}
		}
		return nil
	})
}

// runSpawner calls method in the background; it returns the two pids once printed and a
// function returning the call's error.
func runSpawner(t *testing.T, ctx context.Context, s *Shell, method string) ([]int, func() error) {
	t.Helper()
	m, err := drivertest.Method(s, method)
	if err != nil {
		t.Fatal(err)
	}
	pidc := make(chan int, 2)
	var buf bytes.Buffer
	done := make(chan error, 1)
	go func() {
		done <- m.Stream(ctx, nil, func(item any) error {
			o, err := DecodeOutput(item)
			if err != nil || o.Exited {
				return err
			}
			buf.Write(o.Data)
			for {
				line, err := buf.ReadString('\n')
				if err != nil {
					buf.WriteString(line)
					return nil
				}
				pid, _ := strconv.Atoi(strings.TrimSpace(line))
				pidc <- pid
			}
		})
	}()
	var pids []int
	for len(pids) < 2 {
		select {
		case pid := <-pidc:
			pids = append(pids, pid)
		case err := <-done:
			t.Fatalf("call ended before printing pids: %v", err)
		}
	}
	for _, pid := range pids {
		if !alive(pid) {
			t.Fatalf("process %d not running", pid)
		}
	}
	return pids, func() error { return <-done }
}

func TestTimeoutKillsGroup(t *testing.T) {
	s := newShell(t, map[string]any{
		"hang": map[string]any{"command": spawner, "timeout": "1s", "description": "hangs"},
	}, nil)
	pids, wait := runSpawner(t, context.Background(), s, "hang")
	err := wait()
	if !errors.Is(err, wire.ErrDeadlineExceeded) || !strings.Contains(err.Error(), "hang: timed out after 1s") {
		t.Fatalf("got %v, want DEADLINE_EXCEEDED \"hang: timed out after 1s\"", err)
	}
	waitGone(t, pids)
}

func TestCancelKillsGroup(t *testing.T) {
	s := newShell(t, map[string]any{"hang": spawner}, nil)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	pids, wait := runSpawner(t, ctx, s, "hang")
	cancel()
	if err := wait(); !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v, want context.Canceled", err)
	}
	waitGone(t, pids)
}

func TestResetKillsRunning(t *testing.T) {
	s := newShell(t, map[string]any{"hang": spawner}, nil)
	pids, wait := runSpawner(t, context.Background(), s, "hang")
	if err := s.Reset(context.Background()); err != nil {
		t.Fatalf("Reset: %v", err)
	}
	if err := wait(); !errors.Is(err, wire.ErrUnavailable) {
		t.Fatalf("got %v, want UNAVAILABLE", err)
	}
	waitGone(t, pids)
}

// TestLeftoversKilled: background processes still in the group when the shell exits are killed,
// and the call ends with the shell's exit code.
func TestLeftoversKilled(t *testing.T) {
	s := newShell(t, map[string]any{"leave": "sleep 100 & echo $!; exit 4"}, nil)
	r := call(t, context.Background(), s, "leave")
	if r.err != nil || r.code != 4 {
		t.Fatalf("got %v, exit %d, want nil, 4", r.err, r.code)
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(r.stdout.String()))
	waitGone(t, []int{pid})
}

func TestSendFailureKills(t *testing.T) {
	s := newShell(t, map[string]any{"hang": spawner}, nil)
	m, _ := drivertest.Method(s, "hang")
	errGone := errors.New("client gone")
	var mu sync.Mutex
	var out []byte
	err := m.Stream(context.Background(), nil, func(item any) error {
		o, _ := DecodeOutput(item)
		mu.Lock()
		defer mu.Unlock()
		out = append(out, o.Data...)
		if bytes.Count(out, []byte("\n")) == 2 {
			return errGone
		}
		return nil
	})
	if !errors.Is(err, errGone) {
		t.Fatalf("got %v, want %v", err, errGone)
	}
	var pids []int
	for _, f := range strings.Fields(string(out)) {
		pid, _ := strconv.Atoi(f)
		pids = append(pids, pid)
	}
	waitGone(t, pids)
}

func TestStartFailure(t *testing.T) {
	s := newShell(t, map[string]any{"x": "true"}, func(s *Shell) { s.Shell = []string{"/nonexistent/sh", "-c"} })
	r := call(t, context.Background(), s, "x")
	if !errors.Is(r.err, wire.ErrFailedPrecondition) {
		t.Fatalf("got %v, want FAILED_PRECONDITION", r.err)
	}
}

func TestSyscallKillZero(t *testing.T) {
	// Guard for alive(): our own process is alive by both measures.
	if !alive(os.Getpid()) || syscall.Kill(os.Getpid(), 0) != nil {
		t.Fatal("alive(self) is false")
	}
}
