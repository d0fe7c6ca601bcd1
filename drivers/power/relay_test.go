package power

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/creack/pty"
	"golang.org/x/term"

	"jsn.dev/jsn/cmd/jsn/cli/clitest"
	"jsn.dev/jsn/drivers/drivertest"
	"jsn.dev/jsn/internal/testkit"
)

// noyitoBoard is a stand-in NOYITO relay board behind a pty: it speaks the board's protocol
// (4-byte A0 commands with checksum; FF or A0 0F 02 B1 asks for "CHn:ON|OFF" lines), and
// rejects a bad checksum by ignoring the command, as the board does.
type noyitoBoard struct {
	path   string
	hid    bool // commands come after a report number byte
	mu     sync.Mutex
	state  map[int]bool
	bad    int // commands with a bad checksum
	master *os.File
	slave  *os.File
	done   chan struct{}
}

func newNoyitoBoard(t *testing.T, channels int, hid bool) *noyitoBoard {
	t.Helper()
	master, slave, err := pty.Open()
	if err != nil {
		t.Skipf("no pseudo-terminals here: %v", err)
	}
	if _, err := term.MakeRaw(int(slave.Fd())); err != nil {
		t.Fatal(err)
	}
	b := &noyitoBoard{path: slave.Name(), hid: hid, state: map[int]bool{}, master: master, slave: slave, done: make(chan struct{})}
	for c := 1; c <= channels; c++ {
		b.state[c] = false
	}
	go b.serve()
	t.Cleanup(func() { master.Close(); slave.Close(); <-b.done })
	return b
}

func (b *noyitoBoard) serve() {
	defer close(b.done)
	var buf []byte
	chunk := make([]byte, 64)
	for {
		n, err := b.master.Read(chunk)
		if err != nil {
			return
		}
		buf = append(buf, chunk[:n]...)
		for {
			if b.hid && len(buf) > 0 && buf[0] == 0 {
				buf = buf[1:] // the report number
			}
			if len(buf) > 0 && buf[0] == noyitoStatus && !b.hid {
				buf = buf[1:]
				b.answer()
				continue
			}
			if len(buf) < 4 {
				break
			}
			cmd := buf[:4]
			buf = buf[4:]
			if cmd[0] != noyitoHead || cmd[3] != byte(int(cmd[0])+int(cmd[1])+int(cmd[2])) {
				b.mu.Lock()
				b.bad++
				b.mu.Unlock()
				continue
			}
			if cmd[1] == noyitoAll && cmd[2] == noyitoQuery {
				b.answer()
				continue
			}
			b.mu.Lock()
			if _, ok := b.state[int(cmd[1])]; ok {
				b.state[int(cmd[1])] = cmd[2] == 1
			}
			b.mu.Unlock()
		}
	}
}

func (b *noyitoBoard) answer() {
	b.mu.Lock()
	var s strings.Builder
	for c := 1; c <= len(b.state); c++ {
		v := "OFF"
		if b.state[c] {
			v = "ON"
		}
		fmt.Fprintf(&s, "CH%d:%s\r\n", c, v)
	}
	b.mu.Unlock()
	b.master.Write([]byte(s.String()))
}

// waitFor waits until the board's channels are in the states want names (a board applies a
// command after it arrives).
func (b *noyitoBoard) waitFor(t *testing.T, want map[int]bool) {
	t.Helper()
	testkit.CheckFor(t, 10*time.Second, func() error {
		for c, v := range want {
			if b.get(c) != v {
				return fmt.Errorf("channel %d is %v, want %v", c, b.get(c), v)
			}
		}
		return nil
	})
}

func (b *noyitoBoard) get(c int) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.state[c]
}

// TestNoyitoSerialThroughJSN: jsn power on/status/off through a real exporter and NATS switch
// channel 2 of a stand-in serial board.
func TestNoyitoSerialThroughJSN(t *testing.T) {
	b := newNoyitoBoard(t, 2, false)
	s := clitest.Start(t, fmt.Sprintf(`apiVersion: jumpstarter.dev/v1alpha1
kind: ExporterConfig
metadata: {name: relay}
export:
  relay2:
    type: jumpstarter_driver_noyito_relay.driver.NoyitoPowerSerial
    config: {port: %s, channel: 2}
`, b.path))
	s.Run("power", "on").Want(t, 0)
	b.waitFor(t, map[int]bool{1: false, 2: true})
	if r := s.Run("power", "status"); r.Stdout != "on\n" {
		t.Fatalf("status: %q %q", r.Stdout, r.Stderr)
	}
	s.Run("power", "off").Want(t, 0)
	b.waitFor(t, map[int]bool{1: false, 2: false})
	if r := s.Run("power", "status"); r.Stdout != "off\n" {
		t.Fatalf("status after off: %q", r.Stdout)
	}
	if b.bad != 0 {
		t.Errorf("%d commands with a bad checksum", b.bad)
	}
}

func TestNoyitoHIDStandIn(t *testing.T) {
	b := newNoyitoBoard(t, 8, true)
	d := NewNoyitoHID(drivertest.Env("relay")).(*NoyitoHID)
	d.NumChannels, d.AllChannels, d.Device = 8, true, b.path
	if err := d.Validate(); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := d.On(ctx); err != nil {
		t.Fatal(err)
	}
	b.waitFor(t, map[int]bool{1: true, 2: true, 3: true, 4: true, 5: true, 6: true, 7: true, 8: true})
	if st, err := d.Status(ctx); err != nil || st != On {
		t.Fatalf("status %q %v", st, err)
	}
	d.AllChannels, d.Channel = false, 3
	if err := d.Off(ctx); err != nil {
		t.Fatal(err)
	}
	b.waitFor(t, map[int]bool{3: false, 4: true})
	if st, err := d.Status(ctx); err != nil || st != Off {
		t.Fatalf("status %q %v", st, err)
	}
	d.AllChannels = true
	if _, err := d.Status(ctx); err == nil || !strings.Contains(err.Error(), "channels differ") {
		t.Errorf("mixed channels: %v", err)
	}
	gone := NewNoyitoHID(drivertest.Env("x")).(*NoyitoHID)
	gone.VendorID = 0xfffe
	if why := gone.Unavailable(); !strings.Contains(why, "no hidraw device with USB ids fffe:07d7") {
		t.Errorf("absent board: %q", why)
	}
}

func TestNoyitoProtocol(t *testing.T) {
	if got := NoyitoCommand(1, 1); string(got) != "\xa0\x01\x01\xa2" {
		t.Errorf("on 1: % x", got)
	}
	if got := NoyitoCommand(2, 0); string(got) != "\xa0\x02\x00\xa2" {
		t.Errorf("off 2: % x", got)
	}
	m, err := ParseNoyitoStatus([]byte("CH1:ON\r\nCH2: off\r\n"))
	if err != nil || m["CH1"] != "on" || m["CH2"] != "off" {
		t.Errorf("%v %v", m, err)
	}
	if _, err := ParseNoyitoStatus([]byte("\xff\x00garbage")); err == nil {
		t.Error("garbage parsed")
	}
}

func FuzzParseNoyitoStatus(f *testing.F) {
	f.Add([]byte("CH1:ON\r\nCH2:OFF\r\n"))
	f.Add([]byte(":\n:"))
	f.Fuzz(func(t *testing.T, b []byte) { _, _ = ParseNoyitoStatus(b) })
}

// TestNoyitoHardware switches a real board: JSN_NOYITO_PORT=/dev/ttyUSB0 (serial board).
func TestNoyitoHardware(t *testing.T) {
	port := os.Getenv("JSN_NOYITO_PORT")
	if port == "" {
		t.Skip("set JSN_NOYITO_PORT=/dev/ttyUSBn to switch a real NOYITO serial relay")
	}
	d := NewNoyitoSerial(drivertest.Env("relay")).(*NoyitoSerial)
	d.Port = port
	ctx := context.Background()
	for _, want := range []State{On, Off} {
		var err error
		if want == On {
			err = d.On(ctx)
		} else {
			err = d.Off(ctx)
		}
		if err != nil {
			t.Fatal(err)
		}
		if st, err := d.Status(ctx); err != nil || st != want {
			t.Fatalf("status %q %v, want %s", st, err, want)
		}
	}
}

// energenieStandIn serves an EG-PMS2-LAN's web interface: POST /login.html with pw logs in (a
// session cookie), POST / with cteN=0|1 switches socket N of a logged-in session.
type energenieStandIn struct {
	mu      sync.Mutex
	sockets [5]bool
	logins  int
}

func (e *energenieStandIn) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost || r.ParseForm() != nil {
		http.Error(w, "no", http.StatusBadRequest)
		return
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	switch r.URL.Path {
	case "/login.html":
		if r.PostForm.Get("pw") != "secret" {
			io.WriteString(w, "<html>wrong password</html>")
			return
		}
		e.logins++
		http.SetCookie(w, &http.Cookie{Name: "session", Value: "ok"})
		io.WriteString(w, "<html>ok</html>")
	case "/":
		if c, err := r.Cookie("session"); err != nil || c.Value != "ok" {
			http.Error(w, "log in first", http.StatusForbidden)
			return
		}
		for n := 1; n <= 4; n++ {
			if v := r.PostForm.Get(fmt.Sprintf("cte%d", n)); v != "" {
				e.sockets[n] = v == "1"
			}
		}
		io.WriteString(w, "<html>done</html>")
	default:
		http.NotFound(w, r)
	}
}

func TestEnerGenieStandIn(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dev := &energenieStandIn{}
	srv := &http.Server{Handler: dev}
	go srv.Serve(ln)
	defer srv.Close()
	s := clitest.Start(t, fmt.Sprintf(`apiVersion: jumpstarter.dev/v1alpha1
kind: ExporterConfig
metadata: {name: strip}
export:
  power:
    type: jumpstarter_driver_energenie.driver.EnerGenie
    config: {host: "%s", password: secret, slot: 3}
`, ln.Addr()))
	s.Run("power", "on").Want(t, 0)
	dev.mu.Lock()
	on := dev.sockets[3]
	dev.mu.Unlock()
	if !on {
		t.Fatal("socket 3 is off after jsn power on")
	}
	s.Run("power", "off").Want(t, 0)
	dev.mu.Lock()
	on = dev.sockets[3]
	dev.mu.Unlock()
	if on {
		t.Fatal("socket 3 is on after jsn power off")
	}
	// An unreachable strip: the call fails UNAVAILABLE naming the host.
	e := NewEnerGenie(drivertest.Env("p")).(*EnerGenie)
	e.Host = "127.0.0.1:1"
	_ = e.Open(context.Background())
	if err := e.On(context.Background()); err == nil || !strings.Contains(err.Error(), "log in to 127.0.0.1:1") {
		t.Errorf("unreachable: %v", err)
	}
}

// TestEnerGenieHardware switches a real strip: JSN_ENERGENIE_HOST (and JSN_ENERGENIE_PASSWORD).
func TestEnerGenieHardware(t *testing.T) {
	host := os.Getenv("JSN_ENERGENIE_HOST")
	if host == "" {
		t.Skip("set JSN_ENERGENIE_HOST (and JSN_ENERGENIE_PASSWORD) to switch a real EnerGenie strip")
	}
	e := NewEnerGenie(drivertest.Env("p")).(*EnerGenie)
	e.Host = host
	if pw := os.Getenv("JSN_ENERGENIE_PASSWORD"); pw != "" {
		e.Password = pw
	}
	_ = e.Open(context.Background())
	if err := e.On(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := e.Off(context.Background()); err != nil {
		t.Fatal(err)
	}
}
