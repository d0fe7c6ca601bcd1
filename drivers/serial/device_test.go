package serial

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/creack/pty"
	"go.uber.org/goleak"
	"golang.org/x/term"

	"jsn.dev/jsn/drivers/drivertest"
	"jsn.dev/jsn/exporter/exportertest"
	"jsn.dev/jsn/internal/testkit"
)

// envDevice makes the test binary run as a device program on its stdin/stdout (a pty master).
const envDevice = "JSN_SERIAL_TEST_DEVICE"

func TestMain(m *testing.M) {
	switch os.Getenv(envDevice) {
	case "":
	case "echo":
		io.Copy(os.Stdout, os.Stdin)
		os.Exit(0)
	default:
		runBoard(os.Stdin, os.Stdout)
		os.Exit(0)
	}
	code := m.Run()
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintf(os.Stderr, "goleak: %v\n", err)
			code = 1
		}
	}
	os.Exit(code)
}

const banner = "U-Boot 2026.01 (Jan 01 2026 - 00:00:00 +0000)\r\n\r\nDRAM:  1 GiB\r\nStarting kernel ...\r\n\r\nlogin: "

// runBoard is a small board console: it prints a boot banner ending in "login: ", echoes what it
// is sent, and answers a line: "" → a new "login: ", "echo X" → X, "uname" → Linux, "flood N" →
// N lines of output.
func runBoard(r io.Reader, w io.Writer) {
	bw := bufio.NewWriter(w)
	bw.WriteString(banner)
	bw.Flush()
	br := bufio.NewReader(r)
	var line []byte
	for {
		c, err := br.ReadByte()
		if err != nil {
			return
		}
		if c != '\r' && c != '\n' {
			line = append(line, c)
			bw.WriteByte(c)
			if br.Buffered() == 0 {
				bw.Flush()
			}
			continue
		}
		cmd := string(line)
		line = line[:0]
		bw.WriteString("\r\n")
		switch {
		case cmd == "":
			bw.WriteString("login: ")
		case strings.HasPrefix(cmd, "echo "):
			bw.WriteString(strings.TrimPrefix(cmd, "echo ") + "\r\n# ")
		case cmd == "uname":
			bw.WriteString("Linux\r\n# ")
		case strings.HasPrefix(cmd, "flood "):
			var n int
			fmt.Sscan(strings.TrimPrefix(cmd, "flood "), &n)
			for i := range n {
				fmt.Fprintf(bw, "line %06d of flood output, padding padding padding padding\r\n", i)
			}
			bw.WriteString("# ")
		default:
			fmt.Fprintf(bw, "sh: %s: not found\r\n# ", cmd)
		}
		if err := bw.Flush(); err != nil {
			return
		}
	}
}

// device is a pseudo-terminal whose master end runs a device program in a helper process; the
// driver opens the slave end, Path, as it would /dev/ttyUSB0.
type device struct {
	Path   string
	master *os.File
	slave  *os.File
	cmd    *exec.Cmd
	once   sync.Once
}

// newDevice starts a device program ("board" or "echo") behind a new pty.
func newDevice(t testing.TB, program string) *device {
	t.Helper()
	master, slave, err := pty.Open()
	if err != nil {
		t.Skipf("no pseudo-terminals here: %v", err)
	}
	// Raw before the program speaks, so the line discipline neither echoes nor translates.
	if _, err := term.MakeRaw(int(slave.Fd())); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), envDevice+"="+program)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = master, master, os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	d := &device{Path: slave.Name(), master: master, slave: slave, cmd: cmd}
	t.Cleanup(d.unplug)
	return d
}

// unplug stops the device program and closes the pty: the slave end fails like a USB adapter
// pulled out.
func (d *device) unplug() {
	d.once.Do(func() {
		d.cmd.Process.Kill()
		d.cmd.Wait()
		d.master.Close()
		d.slave.Close()
	})
}

// ser2net is a raw TCP serial server with a board console behind each connection.
func ser2net(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	drivertest.Serve(t, ln, func(c net.Conn) { runBoard(c, c) })
	return ln.Addr().String()
}

// lab is a local session serving one exporter config, and a client on it.
type lab struct{ *exportertest.Lab }

// startLab serves the exporter config cfg.
func startLab(t testing.TB, cfg string) *lab { return &lab{exportertest.Start(t, cfg)} }

func (lb *lab) serial(path string) *Client { return NewClient(lb.Driver(path)) }

// labConfig is an exporter config with one serial driver "console" at url.
func labConfig(url string, extra string) string {
	return fmt.Sprintf(`apiVersion: jsn.dev/v1alpha1
kind: ExporterConfig
metadata: {name: lab1}
export:
  console:
    type: serial.Port
    config: {url: %q, reconnect: 20ms%s}
`, url, extra)
}

// checkLogHas waits until the console log of sc holds s.
func checkLogHas(t testing.TB, ctx context.Context, sc *Client, s string) {
	t.Helper()
	testkit.CheckFor(t, 30*time.Second, func() error {
		b, err := sc.Log(ctx, 0)
		if err != nil {
			return err
		}
		if !strings.Contains(string(b), s) {
			return fmt.Errorf("the log lacks %q; its end: %q", s, tail(b))
		}
		return nil
	})
}

// checkConnections waits until sc reports n open console connections.
func checkConnections(t testing.TB, ctx context.Context, sc *Client, n int) {
	t.Helper()
	testkit.CheckFor(t, 30*time.Second, func() error {
		st, err := sc.Info(ctx)
		if err != nil {
			return err
		}
		if st.Connections != n {
			return fmt.Errorf("got %d connections, want %d", st.Connections, n)
		}
		return nil
	})
}

// tail is the end of b, for messages.
func tail(b []byte) []byte { return b[max(0, len(b)-200):] }

// reader accumulates everything read from a stream in the background.
type reader struct {
	mu   sync.Mutex
	buf  []byte
	err  error
	done chan struct{}
}

func readAll(r io.Reader) *reader {
	rd := &reader{done: make(chan struct{})}
	go func() {
		defer close(rd.done)
		b := make([]byte, 4096)
		for {
			n, err := r.Read(b)
			rd.mu.Lock()
			rd.buf = append(rd.buf, b[:n]...)
			if err != nil {
				rd.err = err
				rd.mu.Unlock()
				return
			}
			rd.mu.Unlock()
		}
	}()
	return rd
}

func (rd *reader) String() string {
	rd.mu.Lock()
	defer rd.mu.Unlock()
	return string(rd.buf)
}

// wait waits for the stream to end and returns its error.
func (rd *reader) wait(t testing.TB) error {
	t.Helper()
	select {
	case <-rd.done:
	case <-time.After(20 * time.Second):
		t.Fatalf("stream did not end; read %q", rd.String())
	}
	return rd.err
}

// waitContains waits until the output contains s.
func (rd *reader) waitContains(t testing.TB, s string) {
	t.Helper()
	testkit.CheckFor(t, 30*time.Second, func() error {
		rd.mu.Lock()
		defer rd.mu.Unlock()
		if !strings.Contains(string(rd.buf), s) {
			return fmt.Errorf("the output lacks %q; its end: %q", s, tail(rd.buf))
		}
		return nil
	})
}
