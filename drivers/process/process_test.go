package process_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"jsn.dev/jsn/bus/wire"
	"jsn.dev/jsn/client"
	"jsn.dev/jsn/exporter/exportertest"
	"jsn.dev/jsn/internal/testkit"

	_ "jsn.dev/jsn/drivers/power"
	_ "jsn.dev/jsn/drivers/process"
)

// python is Debian's interpreter, which has python3-msgpack (.ci/run installs both).
const python = "/usr/bin/python3"

func needPython(t *testing.T) {
	t.Helper()
	if err := exec.Command(python, "-c", "import msgpack").Run(); err != nil {
		if os.Getenv("CI") != "" || os.Getuid() == 0 {
			t.Fatalf("%s with msgpack is required (apt-get install python3 python3-msgpack): %v", python, err)
		}
		t.Skipf("%s with msgpack not installed (apt-get install python3 python3-msgpack): %v", python, err)
	}
}

func testdata(t *testing.T) string {
	t.Helper()
	p, err := filepath.Abs("testdata/drivers.py")
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func lab(t *testing.T, extra string) *exportertest.Lab {
	t.Helper()
	needPython(t)
	return exportertest.Start(t, fmt.Sprintf(`apiVersion: jsn.dev/v1alpha1
kind: ExporterConfig
metadata: {name: lab}
export:
  relay:
    type: process
    config:
      command: [%s, -m, jsn_driver, %s]
      options: {channels: 2, label: board}
      call_timeout: 2s
%s
  other:
    type: power.Mock
`, python, testdata(t)+":Relay", extra))
}

func TestCallsStreamsAndDescribe(t *testing.T) {
	l := lab(t, "")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	d := l.Driver("relay")
	if _, err := d.Call(ctx, "on"); err != nil {
		t.Fatal(err)
	}
	if got, err := d.Call(ctx, "set", 1, false); err != nil || got != "board:1=open" {
		t.Fatalf("set = %v, %v; want board:1=open", got, err)
	}
	if got, err := d.Call(ctx, "get", 0); err != nil || got != true {
		t.Fatalf("get(0) = %v, %v; want true (on closed it)", got, err)
	}
	if got, err := d.Call(ctx, "slow_echo", "hi", 0.01); err != nil || got != "hi" {
		t.Fatalf("slow_echo = %v, %v", got, err)
	}
	var b []byte
	if err := d.CallInto(ctx, "echo", &b, []byte{0, 1, 2}); err != nil || !bytes.Equal(b, []byte{0, 1, 2}) {
		t.Fatalf("echo(bytes) = %#v, %v", b, err)
	}
	// Arguments are checked against the declared types before anything reaches the process.
	if _, err := d.Call(ctx, "set", "one", true); !errors.Is(err, client.ErrInvalidArgument) || !strings.Contains(err.Error(), "argument 1 (channel): want int") {
		t.Fatalf("set(\"one\") = %v; want INVALID_ARGUMENT naming channel", err)
	}
	// The driver's own validation error reaches the caller.
	if _, err := d.Call(ctx, "set", 9, true); !errors.Is(err, client.ErrInvalidArgument) || err.Error() != "relay.set: ValueError: no channel 9: the board has 2" {
		t.Fatalf("set(9) = %v", err)
	}
	if _, err := d.Call(ctx, "fail"); !errors.Is(err, client.ErrInternal) || err.Error() != "relay.fail: RuntimeError: relay 7 is welded shut" {
		t.Fatalf("fail = %v", err)
	}
	for _, m := range []string{"count", "acount"} {
		items, err := d.Stream(ctx, m, 5)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for {
			var v any
			if err := items.Next(&v); err == io.EOF {
				break
			} else if err != nil {
				t.Fatalf("%s: %v", m, err)
			}
			got = append(got, fmt.Sprint(v))
		}
		if strings.Join(got, ",") != "0,1,2,3,4" {
			t.Fatalf("%s(5) = %v", m, got)
		}
	}
	desc, err := l.Exporter.Describe(ctx)
	if err != nil {
		t.Fatal(err)
	}
	n := desc.Find("relay")
	if n == nil || n.Type != "process" {
		t.Fatalf("describe: %+v", n)
	}
	set := n.Method("set")
	if set == nil || set.Doc != "Set one relay." || len(set.Args) != 2 || set.Args[0].Type != wire.TypeInt ||
		set.Args[1].Type != wire.TypeBool || set.Args[0].Doc != "relay number, from 0" || set.Returns != wire.TypeString {
		t.Fatalf("describe set: %+v", set)
	}
	if m := n.Method("count"); m == nil || m.Kind != wire.KindServerStream || m.Returns != wire.TypeInt {
		t.Fatalf("describe count: %+v", m)
	}
	if m := n.Method("loop"); m == nil || m.Kind != wire.KindByteStream {
		t.Fatalf("describe loop: %+v", m)
	}
	if m := n.Method("slow_echo"); m == nil || !m.Args[1].Optional || m.Args[1].Type != wire.TypeFloat {
		t.Fatalf("describe slow_echo: %+v", m)
	}
}

func TestByteStreams(t *testing.T) {
	l := lab(t, "")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	// 64 MiB through the Python echo stream and back, with flow control both ways.
	s, err := l.Driver("relay").Open(ctx, "loop")
	if err != nil {
		t.Fatal(err)
	}
	const size = 64 << 20
	src := make([]byte, size)
	_, _ = rand.Read(src)
	werr := make(chan error, 1)
	go func() {
		_, err := s.Write(src)
		if err == nil {
			err = s.CloseWrite()
		}
		werr <- err
	}()
	got, err := io.ReadAll(s)
	if err != nil {
		t.Fatal(err)
	}
	if err := <-werr; err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, src) {
		t.Fatalf("echo returned %d bytes, want the %d sent", len(got), len(src))
	}
	_ = s.Close()
	// A sync source stream.
	s, err = l.Driver("relay").Open(ctx, "source", 3<<20+5)
	if err != nil {
		t.Fatal(err)
	}
	_ = s.CloseWrite()
	n, err := io.Copy(io.Discard, s)
	if err != nil || n != 3<<20+5 {
		t.Fatalf("source read %d, %v", n, err)
	}
}

func TestFailures(t *testing.T) {
	l := lab(t, "")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	d := l.Driver("relay")

	// An async method that never answers: DEADLINE_EXCEEDED, and the driver keeps serving.
	_, err := d.Call(ctx, "never")
	if !errors.Is(err, client.ErrDeadlineExceeded) || err.Error() != "relay.never: no answer from the driver process within 2s (call_timeout)" {
		t.Fatalf("never = %v", err)
	}
	if _, err := d.Call(ctx, "on"); err != nil {
		t.Fatalf("after never: %v", err)
	}
	if _, err := l.Driver("other").Call(ctx, "on"); err != nil {
		t.Fatalf("other driver: %v", err)
	}

	// A crash: UNAVAILABLE with the exit status; restarted, and the lease goes on.
	_, err = d.Call(ctx, "crash")
	if !errors.Is(err, client.ErrUnavailable) || err.Error() != "relay.crash: driver process exited (exit status 3)" {
		t.Fatalf("crash = %v", err)
	}
	waitUp(t, d)

	// A hang in a plain method blocks the process: the caller gets DEADLINE_EXCEEDED, the
	// process fails its ping and is killed and restarted.
	_, err = d.Call(ctx, "hang")
	if !errors.Is(err, client.ErrDeadlineExceeded) {
		t.Fatalf("hang = %v", err)
	}
	testkit.CheckFor(t, 20*time.Second, func() error {
		desc, err := l.Exporter.Describe(ctx)
		if err != nil {
			return err
		}
		if u := desc.Find("relay").Unavailable; !strings.Contains(u, "driver process hung: hang passed its 2s deadline") {
			return fmt.Errorf("unavailable = %q", u)
		}
		return nil
	})
	waitUp(t, d)

	// Garbage on the protocol socket: INTERNAL naming it; restarted.
	_, err = d.Call(ctx, "garbage")
	if !errors.Is(err, client.ErrInternal) || !strings.HasPrefix(err.Error(), "relay.garbage: driver process broke the protocol: frame length") {
		t.Fatalf("garbage = %v", err)
	}
	waitUp(t, d)
	if _, err := l.Driver("other").Call(ctx, "off"); err != nil {
		t.Fatalf("other driver: %v", err)
	}
}

// waitUp waits until the restarted process serves calls again under the same lease.
func waitUp(t *testing.T, d *client.Driver) {
	t.Helper()
	testkit.CheckFor(t, 20*time.Second, func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		got, err := d.Call(ctx, "set", 0, true)
		if err != nil {
			return err
		}
		if got != "board:0=closed" {
			return fmt.Errorf("set = %v", got)
		}
		return nil
	})
}

func TestEnvironmentHasNoCredentials(t *testing.T) {
	t.Setenv("JSN_CREDS", "/secret/lease.creds")
	t.Setenv("NATS_URL", "nats://secret")
	l := lab(t, "      env: {RELAY_PORT: /dev/ttyACM0}")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	got, err := l.Driver("relay").Call(ctx, "environ")
	if err != nil {
		t.Fatal(err)
	}
	env := got.(map[string]any)
	if env["RELAY_PORT"] != "/dev/ttyACM0" || env["JSN_DRIVER_PATH"] != "relay" {
		t.Fatalf("env lacks the config's variables: %v", env)
	}
	for k, v := range env {
		if strings.HasPrefix(k, "JSN_") && k != "JSN_DRIVER_PATH" && k != "JSN_DRIVER_FD" || strings.HasPrefix(k, "NATS_") ||
			strings.Contains(fmt.Sprint(v), "secret") {
			t.Errorf("the driver process sees %s=%v", k, v)
		}
	}
}

func TestResetAtLeaseStart(t *testing.T) {
	l := lab(t, "")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// The session's lease started with a reset.
	got, err := l.Driver("relay").Call(ctx, "resets_seen")
	if err != nil || got != int64(1) {
		t.Fatalf("resets_seen = %v, %v; want 1", got, err)
	}
}

func TestConcurrentCalls(t *testing.T) {
	l := lab(t, "")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	errs := make(chan error, 40)
	for i := range 40 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			m := "echo"
			if i%2 == 0 {
				m = "slow_echo"
			}
			got, err := l.Driver("relay").Call(ctx, m, fmt.Sprint(i))
			if err == nil && got != fmt.Sprint(i) {
				err = fmt.Errorf("%s(%d) = %v", m, i, got)
			}
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
}

func TestNoNATS(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "jsn.dev/jsn/drivers/process").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	for _, p := range strings.Fields(string(out)) {
		if strings.Contains(p, "nats-io") || p == "jsn.dev/jsn/bus" || p == "jsn.dev/jsn/client" || p == "jsn.dev/jsn/exporter" {
			t.Errorf("drivers/process links %s", p)
		}
	}
}

// syncBuffer is a log sink tests read while the exporter writes it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestStderrAndRestartNever: the process's output lands in the exporter log with the node's
// path; with restart: never a crashed process stays down and the node says why.
func TestStderrAndRestartNever(t *testing.T) {
	needPython(t)
	var logs syncBuffer
	l := exportertest.StartWith(t, fmt.Sprintf(`apiVersion: jsn.dev/v1alpha1
kind: ExporterConfig
metadata: {name: lab}
export:
  relay:
    type: process
    config:
      command: [%s, -m, jsn_driver, %s]
      restart: never
`, python, testdata(t)+":Relay"), exportertest.Options{Log: slog.New(slog.NewTextHandler(&logs, nil))})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	d := l.Driver("relay")
	if _, err := d.Call(ctx, "crash"); !errors.Is(err, client.ErrUnavailable) {
		t.Fatalf("crash = %v", err)
	}
	testkit.CheckFor(t, 10*time.Second, func() error {
		if s := logs.String(); !strings.Contains(s, `msg="about to crash" driver=relay from="driver process"`) {
			return fmt.Errorf("the exporter log lacks the process's stderr line:\n%s", s)
		}
		return nil
	})
	want := "driver relay is unavailable: driver process exited (exit status 3); not restarted (restart: never)"
	testkit.CheckFor(t, 10*time.Second, func() error {
		_, err := d.Call(ctx, "on")
		if !errors.Is(err, client.ErrUnavailable) || err.Error() != want {
			return fmt.Errorf("on = %v; want %s", err, want)
		}
		return nil
	})
	desc, err := l.Exporter.Describe(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if u := desc.Find("relay").Unavailable; u != "driver process exited (exit status 3); not restarted (restart: never)" {
		t.Fatalf("describe says %q", u)
	}
}
