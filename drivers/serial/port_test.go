package serial

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"jsn.dev/jsn/bus"
	"jsn.dev/jsn/client"
	"jsn.dev/jsn/drivers/driver"
	"jsn.dev/jsn/drivers/drivertest"
	"jsn.dev/jsn/internal/testkit"
)

var ctx = context.Background()

func TestRegistered(t *testing.T) {
	for _, name := range []string{"serial.Port", "jumpstarter_driver_pyserial.driver.PySerial"} {
		info, ok := driver.Lookup(name)
		if !ok || info.Type != "serial.Port" || info.Interface != Interface {
			t.Errorf("Lookup(%q): got %+v, %v, want serial.Port/%s", name, info, ok, Interface)
		}
	}
}

// TestBoardConsole drives a board behind a pty through the real exporter and bus.
func TestBoardConsole(t *testing.T) {
	dev := newDevice(t, "board")
	lb := startLab(t, labConfig(dev.Path, ""))
	sc := lb.serial("console")

	// The banner is recorded before anyone connects.
	checkLogHas(t, ctx, sc, "login: ")
	if b, _ := sc.Log(ctx, 0); !strings.HasPrefix(string(b), "U-Boot 2026.01") {
		t.Fatalf("log: got %q, want the banner", b)
	}

	// A tap observer, two consoles at once.
	tctx, stopTap := context.WithCancel(ctx)
	tapped := make(chan []byte, 1024)
	tapDone := make(chan error, 1)
	go func() {
		tapDone <- lb.Client.Tap(tctx, lb.Local.Exporter, "console", func(b []byte) { tapped <- b })
	}()
	s1, err := sc.Connect(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer s1.Close()
	s2, err := sc.Connect(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	r1, r2 := readAll(s1), readAll(s2)
	checkConnections(t, ctx, sc, 2)
	// The tap subscription may start after the first bytes: send until the tap sees some.
	if _, err := s1.Write([]byte("uname\r")); err != nil {
		t.Fatal(err)
	}
	r1.waitContains(t, "Linux\r\n# ")
	r2.waitContains(t, "Linux\r\n# ")
	if _, err := s2.Write([]byte("echo from two\r")); err != nil {
		t.Fatal(err)
	}
	r1.waitContains(t, "from two\r\n")
	var tapOut strings.Builder
	testkit.CheckFor(t, 30*time.Second, func() error {
		for {
			select {
			case b := <-tapped:
				tapOut.Write(b)
				continue
			default:
			}
			if strings.Contains(tapOut.String(), "# ") {
				return nil
			}
			s1.Write([]byte("\r"))
			time.Sleep(20 * time.Millisecond)
			return fmt.Errorf("no prompt on the tap yet; tapped %q", tapOut.String())
		}
	})
	stopTap()
	if err := <-tapDone; err != nil {
		t.Fatalf("tap: %v", err)
	}

	// log --since: only recent output.
	time.Sleep(mergeWindow + 100*time.Millisecond) // let the current chunk age
	if _, err := s1.Write([]byte("echo fresh\r")); err != nil {
		t.Fatal(err)
	}
	r1.waitContains(t, "fresh\r\n# ")
	recent, err := sc.Log(ctx, 500*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(recent), "fresh") || strings.Contains(string(recent), "U-Boot") {
		t.Fatalf("log since 500ms: got %q, want the fresh output only", recent)
	}

	// Info.
	st, err := sc.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.URL != dev.Path || st.State != "open" || st.Baudrate != DefaultBaudrate || st.Buffered == 0 {
		t.Fatalf("info: got %+v", st)
	}

	// A pty has no modem lines; a socket has none either (see TestSocket).
	if err := sc.SetDTR(ctx, false); !errors.Is(err, client.ErrUnimplemented) {
		t.Fatalf("set_dtr on a pty: got %v, want UNIMPLEMENTED", err)
	}
}

func TestSetBaudrate(t *testing.T) {
	dev := newDevice(t, "board")
	lb := startLab(t, labConfig(dev.Path, ", baudrate: 9600"))
	sc := lb.serial("console")
	tests := []struct {
		rate    int
		wantErr error
	}{
		{115200, nil},
		{250000, nil}, // not a standard rate
		{0, client.ErrInvalidArgument},
		{-9600, client.ErrInvalidArgument},
		{MaxBaudrate + 1, client.ErrInvalidArgument},
	}
	for _, tt := range tests {
		err := sc.SetBaudrate(ctx, tt.rate)
		if !errors.Is(err, tt.wantErr) && !(tt.wantErr == nil && err == nil) {
			t.Errorf("set_baudrate %d: got %v, want %v", tt.rate, err, tt.wantErr)
			continue
		}
		if tt.wantErr == nil {
			if st, _ := sc.Info(ctx); st.Baudrate != tt.rate {
				t.Errorf("after set_baudrate %d: got baudrate %d", tt.rate, st.Baudrate)
			}
		}
	}
}

// TestResetRestores: a lease boundary ends the consoles, restores the configured rate and keeps
// the port open and its history.
func TestResetRestores(t *testing.T) {
	dev := newDevice(t, "board")
	p := NewPort(drivertest.Env("console")).(*Port)
	p.URL, p.Baudrate, p.Reconnect = dev.Path, 9600, 20*time.Millisecond
	if err := p.Validate(); err != nil {
		t.Fatal(err)
	}
	if err := p.Open(ctx); err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	testkit.CheckFor(t, 30*time.Second, func() error {
		if b := p.Log(time.Time{}); !strings.Contains(string(b), "login: ") {
			return fmt.Errorf("no banner yet; the log ends %q", tail(b))
		}
		return nil
	})
	if _, err := drivertest.CallMethod(ctx, p, "set_baudrate", int64(57600)); err != nil {
		t.Fatal(err)
	}
	s, err := drivertest.OpenStream(ctx, p, "connect")
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	testkit.CheckFor(t, 30*time.Second, func() error {
		if n := p.Info().Connections; n != 1 {
			return fmt.Errorf("got %d connections, want the console's", n)
		}
		return nil
	})
	if err := p.Reset(ctx); err != nil {
		t.Fatal(err)
	}
	if err := s.Wait(); !errors.Is(err, client.ErrUnavailable) || !strings.Contains(err.Error(), "reset") {
		t.Fatalf("console after reset: got %v, want UNAVAILABLE closed by reset", err)
	}
	info := p.Info().Map()
	if info["baudrate"] != int64(9600) || info["state"] != "open" || info["buffered"] == int64(0) {
		t.Fatalf("info after reset: got %v, want baudrate 9600, open, history kept", info)
	}
}

// TestAbsentThenPlugged: a device that does not exist yet makes the driver unavailable, not the
// exporter fail; it becomes available when the device appears, and recovers from an unplug.
func TestAbsentThenPlugged(t *testing.T) {
	link := filepath.Join(t.TempDir(), "ttyUSB0")
	lb := startLab(t, labConfig(link, ""))
	sc := lb.serial("console")

	desc, err := lb.Exporter.Describe(ctx)
	if err != nil {
		t.Fatal(err)
	}
	n := desc.Find("console")
	if n == nil || !strings.Contains(n.Unavailable, link+": no such file") {
		t.Fatalf("describe: got %+v, want unavailable: %s: no such file", n, link)
	}
	if _, err := sc.Log(ctx, 0); !errors.Is(err, client.ErrUnavailable) {
		t.Fatalf("log while absent: got %v, want UNAVAILABLE", err)
	}
	if _, err := sc.Connect(ctx); !errors.Is(err, client.ErrUnavailable) {
		t.Fatalf("connect while absent: got %v, want UNAVAILABLE", err)
	}

	plug := func() *device {
		dev := newDevice(t, "board")
		os.Remove(link)
		if err := os.Symlink(dev.Path, link); err != nil {
			t.Fatal(err)
		}
		return dev
	}
	dev := plug()
	checkLogHas(t, ctx, sc, "login: ")

	s, err := sc.Connect(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	rd := readAll(s)
	s.Write([]byte("uname\r"))
	rd.waitContains(t, "Linux")

	// Unplug mid-stream.
	dev.unplug()
	err = rd.wait(t)
	if !errors.Is(err, client.ErrUnavailable) || !strings.Contains(err.Error(), "serial "+link+" disconnected") {
		t.Fatalf("stream after unplug: got %v, want UNAVAILABLE serial %s disconnected", err, link)
	}
	testkit.CheckFor(t, 30*time.Second, func() error {
		if st, err := sc.Info(ctx); !errors.Is(err, client.ErrUnavailable) {
			return fmt.Errorf("info after the unplug: got %+v, %v, want UNAVAILABLE", st, err)
		}
		return nil
	})

	// Plug a new one in at the same path.
	plug()
	testkit.CheckFor(t, 30*time.Second, func() error {
		st, err := sc.Info(ctx)
		if err != nil {
			return err
		}
		if st.State != "open" {
			return fmt.Errorf("the device is %s (%s), want open", st.State, st.Reason)
		}
		return nil
	})
	s2, err := sc.Connect(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	m, _, err := sc.Expect(ctx, s2, regexp.MustCompile(`Linux`), []byte("uname\r"))
	if err != nil || string(m) != "Linux" {
		t.Fatalf("expect after replug: got %q, %v", m, err)
	}
}

// TestSocket drives a board behind a ser2net-style raw TCP port.
func TestSocket(t *testing.T) {
	addr := ser2net(t)
	lb := startLab(t, labConfig("socket://"+addr, ""))
	sc := lb.serial("console")
	checkLogHas(t, ctx, sc, "login: ")
	s, err := sc.Connect(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ectx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	m, tail, err := sc.Expect(ectx, s, regexp.MustCompile(`(?m)^[A-Z][a-z]+x\r$`), []byte("uname\r"))
	if err != nil || string(m) != "Linux\r" || !strings.HasPrefix(string(tail), "uname\r\n") {
		t.Fatalf("expect: got %q, %q, %v", m, tail, err)
	}
	for name, call := range map[string]func() error{
		"send_break":   func() error { return sc.SendBreak(ctx, 0) },
		"set_dtr":      func() error { return sc.SetDTR(ctx, true) },
		"set_baudrate": func() error { return sc.SetBaudrate(ctx, 9600) },
	} {
		if err := call(); !errors.Is(err, client.ErrUnimplemented) {
			t.Errorf("%s on socket://: got %v, want UNIMPLEMENTED", name, err)
		}
	}
	if err := sc.SetBaudrate(ctx, 0); !errors.Is(err, client.ErrInvalidArgument) {
		t.Errorf("set_baudrate 0 on socket://: got %v, want INVALID_ARGUMENT", err)
	}
}

// TestExpectTimeout: no match before the deadline gives the deadline error and the output.
func TestExpectTimeout(t *testing.T) {
	dev := newDevice(t, "board")
	lb := startLab(t, labConfig(dev.Path, ""))
	sc := lb.serial("console")
	// The deadline must pass after the device answered for the tail to hold the answer; on a
	// loaded machine the answer can take longer than a short deadline, so it doubles on each try.
	var tail []byte
	var err error
	for d := 500 * time.Millisecond; d <= 16*time.Second; d *= 2 {
		s, cerr := sc.Connect(ctx)
		if cerr != nil {
			t.Fatal(cerr)
		}
		ectx, cancel := context.WithTimeout(ctx, d)
		_, tail, err = sc.Expect(ectx, s, regexp.MustCompile(`never`), []byte("echo hello\r"))
		cancel()
		s.Close()
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("got %q, %v, want a deadline error", tail, err)
		}
		if strings.Contains(string(tail), "hello") {
			return
		}
	}
	t.Fatalf("got %q, want the output seen before the deadline", tail)
}

// TestSlowConsumerDropped: a console that stops reading is reset; the port goes on.
func TestSlowConsumerDropped(t *testing.T) {
	dev := newDevice(t, "board")
	lb := startLab(t, labConfig(dev.Path, ", buffer: 65536"))
	sc := lb.serial("console")
	slow, err := sc.Connect(ctx) // never read until it is dropped
	if err != nil {
		t.Fatal(err)
	}
	defer slow.Close()
	checkConnections(t, ctx, sc, 1)
	// Enough output to fill the slow stream's bus window and its backlog twice over.
	lines := 2 * (int(bus.DefaultWindow) + MaxBacklog) / 60
	in, err := sc.Connect(ctx)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(in, "flood %d\r", lines)
	in.Close()
	checkLogHas(t, ctx, sc, fmt.Sprintf("line %06d", lines-1))
	checkConnections(t, ctx, sc, 0) // the slow console is dropped
	buf := make([]byte, 1<<20)
	_, err = slow.Read(buf)
	for err == nil {
		_, err = slow.Read(buf)
	}
	if !errors.Is(err, client.ErrUnavailable) || !strings.Contains(err.Error(), "fell more than") {
		t.Fatalf("slow console: got %v, want UNAVAILABLE dropped", err)
	}
	st, _ := sc.Info(ctx)
	if st.Buffered > 65536 || st.Received < int64(lines)*60 {
		t.Fatalf("info after flood: got %+v, want at most 64 KiB buffered of all received", st)
	}
	// The port still works.
	s, err := sc.Connect(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if m, _, err := sc.Expect(ctx, s, regexp.MustCompile("Linux"), []byte("uname\r")); err != nil {
		t.Fatalf("after the drop: got %q, %v", m, err)
	}
}
