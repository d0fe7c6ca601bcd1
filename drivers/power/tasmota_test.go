package power

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"jsn.dev/jsn/bus/wire"
	"jsn.dev/jsn/drivers/drivertest"
)

// mosquitto finds Debian's mosquitto or skips the test.
func mosquittoBin(t *testing.T) string {
	t.Helper()
	for _, p := range []string{"/usr/sbin/mosquitto", "mosquitto"} {
		if path, err := exec.LookPath(p); err == nil {
			return path
		}
	}
	t.Skip("mosquitto not installed (apt-get install mosquitto): skipping the MQTT broker tests")
	return ""
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// startMosquitto runs a broker on a free loopback port until the test ends. With a user, it
// requires that user and password (a mosquitto_passwd file).
func startMosquitto(t *testing.T, user, password string) int {
	t.Helper()
	bin := mosquittoBin(t)
	dir := t.TempDir()
	port := freePort(t)
	conf := fmt.Sprintf("listener %d 127.0.0.1\nallow_anonymous %v\n", port, user == "")
	if user != "" {
		pw := filepath.Join(dir, "passwd")
		if out, err := exec.Command("mosquitto_passwd", "-c", "-b", pw, user, password).CombinedOutput(); err != nil {
			t.Skipf("mosquitto_passwd: %v: %s", err, out)
		}
		conf += "password_file " + pw + "\n"
	}
	runMosquitto(t, bin, dir, conf, port)
	return port
}

// runMosquitto runs mosquitto with the config conf (written to dir) until the test ends, and
// waits until it accepts connections on every port of ports.
func runMosquitto(t *testing.T, bin, dir, conf string, ports ...int) {
	t.Helper()
	conf = "persistence false\n" + conf
	if os.Getuid() == 0 {
		conf = "user root\n" + conf // else mosquitto drops to user mosquitto and cannot read our files
	}
	cf := filepath.Join(dir, "mosquitto.conf")
	if err := os.WriteFile(cf, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-c", cf)
	var log syncBuffer
	cmd.Stdout, cmd.Stderr = &log, &log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-done
	})
	deadline := time.Now().Add(10 * time.Second)
	for _, port := range ports {
		for {
			c, err := net.Dial("tcp", "127.0.0.1:"+strconv.Itoa(port))
			if err == nil {
				c.Close()
				break
			}
			select {
			case <-done:
				t.Fatalf("mosquitto exited: %s", log.String())
			default:
			}
			if time.Now().After(deadline) {
				t.Fatalf("mosquitto did not listen on %d: %s", port, log.String())
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
}

// fakeTasmota is a simulated Tasmota relay on a broker: it follows cmnd/<topic>/POWER and
// reports on stat/<topic>/POWER, as the firmware does (an empty command queries the state).
type fakeTasmota struct {
	c mqtt.Client

	mu    sync.Mutex
	on    bool
	cmds  []string
	mute  bool   // ignore commands (a relay that is offline)
	reply string // when non-empty, report this instead of the state
}

func newFakeTasmota(t *testing.T, port int, topic, user, password string) *fakeTasmota {
	t.Helper()
	f := &fakeTasmota{}
	o := mqtt.NewClientOptions().AddBroker("tcp://127.0.0.1:" + strconv.Itoa(port)).SetClientID("fake-" + topic).
		SetUsername(user).SetPassword(password)
	f.c = mqtt.NewClient(o)
	if tok := f.c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("fake tasmota connect: %v", tok.Error())
	}
	t.Cleanup(func() { f.c.Disconnect(100) })
	stat := "stat/" + topic + "/POWER"
	tok := f.c.Subscribe("cmnd/"+topic+"/POWER", 1, func(c mqtt.Client, m mqtt.Message) {
		f.mu.Lock()
		p := string(m.Payload())
		f.cmds = append(f.cmds, p)
		if f.mute {
			f.mu.Unlock()
			return
		}
		switch strings.ToUpper(p) {
		case "ON", "1":
			f.on = true
		case "OFF", "0":
			f.on = false
		case "TOGGLE", "2":
			f.on = !f.on
		}
		out := map[bool]string{true: "ON", false: "OFF"}[f.on]
		if f.reply != "" {
			out = f.reply
		}
		f.mu.Unlock()
		c.Publish(stat, 1, false, out)
	})
	if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("fake tasmota subscribe: %v", tok.Error())
	}
	return f
}

func (f *fakeTasmota) commands() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := f.cmds
	f.cmds = nil
	return out
}

func tasmotaConfig(port int, topic, extra string) string {
	return fmt.Sprintf(`type: jumpstarter_driver_tasmota.driver.TasmotaPower
config:
  host: 127.0.0.1
  port: %d
  tls: false
  cmnd_topic: cmnd/%s/POWER
  stat_topic: stat/%s/POWER%s`, port, topic, topic, extra)
}

func TestTasmotaConfig(t *testing.T) {
	tests := []struct {
		src     string
		wantErr string
	}{
		{"type: power.Tasmota\nconfig: {host: h, cmnd_topic: a, stat_topic: b, tls: false, transport: websockets, client_id: x, username: u, password: p}", ""},
		{"type: power.Tasmota\nconfig: {cmnd_topic: a, stat_topic: b}", `missing required field "host"`},
		{"type: power.Tasmota\nconfig: {host: h, cmnd_topic: a}", `missing required field "stat_topic"`},
		{"type: power.Tasmota\nconfig: {host: h, cmnd_topic: a, stat_topic: 'stat/+/POWER'}", "stat_topic: want a topic without wildcards"},
		{"type: power.Tasmota\nconfig: {host: h, cmnd_topic: a, stat_topic: b, port: 0}", "port: want 1..65535"},
		{"type: power.Tasmota\nconfig: {host: h, cmnd_topic: a, stat_topic: b, transport: quic}", "transport"},
		{"type: power.Tasmota\nconfig: {host: h, cmnd_topic: a, stat_topic: b, timeout: -1s}", "timeout"},
		{"type: power.Tasmota\nconfig: {host: h, cmnd_topic: a, stat_topic: b, reset: later}", "reset"},
	}
	for _, tt := range tests {
		if tt.wantErr == "" {
			// Valid configs only decode here: opening would dial.
			continue
		}
		buildOne(t, tt.src, tt.wantErr)
	}
	d := NewTasmota(drivertest.Env("")).(*Tasmota)
	if d.Port != 1883 || !d.TLS || d.Transport != "tcp" || d.Timeout != 5*time.Second {
		t.Fatalf("defaults: got port %d tls %v transport %s timeout %s, want 1883 true tcp 5s", d.Port, d.TLS, d.Transport, d.Timeout)
	}
	urls := []struct {
		t    *Tasmota
		want string
	}{
		{&Tasmota{Host: "b", Port: 1883, Transport: "tcp"}, "tcp://b:1883"},
		{&Tasmota{Host: "b", Port: 8883, Transport: "tcp", TLS: true}, "ssl://b:8883"},
		{&Tasmota{Host: "::1", Port: 80, Transport: "websockets"}, "ws://[::1]:80/mqtt"},
		{&Tasmota{Host: "/run/mqtt.sock", Transport: "unix"}, "unix:///run/mqtt.sock"},
	}
	for _, u := range urls {
		if got := u.t.brokerURL(); got != u.want {
			t.Errorf("brokerURL: got %q, want %q", got, u.want)
		}
	}
}

func TestTasmota(t *testing.T) {
	for _, auth := range []bool{false, true} {
		t.Run(fmt.Sprintf("auth=%v", auth), func(t *testing.T) {
			user, pw, extra := "", "", ""
			if auth {
				user, pw, extra = "lab", "s3cret", "\n  username: lab\n  password: s3cret"
			}
			port := startMosquitto(t, user, pw)
			relay := newFakeTasmota(t, port, "tasmota_ABC123", user, pw)
			d := buildOne(t, tasmotaConfig(port, "tasmota_ABC123", extra), "")
			if why := d.(*Tasmota).Unavailable(); why != "" {
				t.Fatalf("Unavailable after Open: got %q, want \"\"", why)
			}
			steps := []struct{ method, want string }{{"status", "off"}, {"on", "on"}, {"off", "off"}, {"on", "on"}}
			for _, st := range steps {
				if st.method != "status" {
					call(t, d, st.method)
				}
				if got := status(t, d); got != st.want {
					t.Fatalf("after %s: got %q, want %q", st.method, got, st.want)
				}
			}
			call(t, d, "cycle", time.Millisecond)
			if err := d.Reset(context.Background()); err != nil {
				t.Fatal(err)
			}
			want := []string{"", "ON", "", "OFF", "", "ON", "", "OFF", "ON", "OFF"}
			if got := relay.commands(); strings.Join(got, ",") != strings.Join(want, ",") {
				t.Fatalf("commands: got %q, want %q", got, want)
			}
			_, err := drivertest.CollectStream(context.Background(), d, "read", int64(1))
			wantCode(t, err, wire.Unimplemented, "does not measure")
		})
	}
}

func TestTasmotaFailures(t *testing.T) {
	port := startMosquitto(t, "", "")
	relay := newFakeTasmota(t, port, "t1", "", "")
	d := buildOne(t, tasmotaConfig(port, "t1", "\n  timeout: 300ms"), "")
	ctx := context.Background()

	relay.mu.Lock()
	relay.mute = true
	relay.mu.Unlock()
	_, err := drivertest.CallMethod(ctx, d, "on")
	wantCode(t, err, wire.DeadlineExceeded, `on: no "ON" on stat/t1/POWER after publishing "ON" on cmnd/t1/POWER within 300ms`)

	relay.mu.Lock()
	relay.mute, relay.reply = false, "BLINK"
	relay.mu.Unlock()
	_, err = drivertest.CallMethod(ctx, d, "status")
	wantCode(t, err, wire.FailedPrecondition, `status: stat/t1/POWER reports "BLINK"`)
	_, err = drivertest.CallMethod(ctx, d, "off")
	wantCode(t, err, wire.DeadlineExceeded, `(last report "BLINK")`)

	// Wrong password: the broker refuses; Open still succeeds, the driver is unavailable.
	aport := startMosquitto(t, "lab", "right")
	bad := buildOne(t, tasmotaConfig(aport, "t1", "\n  username: lab\n  password: wrong"), "")
	if why := bad.(*Tasmota).Unavailable(); !strings.Contains(why, "not connected") {
		t.Fatalf("Unavailable with a wrong password: got %q, want not connected", why)
	}
	_, err = drivertest.CallMethod(ctx, bad, "on")
	wantCode(t, err, wire.Unavailable, "not connected")

	// No broker at all: Open succeeds and the driver reports why it is unavailable.
	down := freePort(t)
	late := buildOne(t, tasmotaConfig(down, "t2", ""), "")
	why := late.(*Tasmota).Unavailable()
	if !strings.Contains(why, "MQTT broker tcp://127.0.0.1:"+strconv.Itoa(down)+" not connected") {
		t.Fatalf("Unavailable with no broker: got %q", why)
	}
	_, err = drivertest.CallMethod(ctx, late, "on")
	wantCode(t, err, wire.Unavailable, "not connected")
}

func TestParseTasmotaPayload(t *testing.T) {
	tests := []struct{ in, want string }{
		{"ON", "ON"}, {" off\n", "OFF"}, {"1", "ON"}, {"0", "OFF"},
		{`{"POWER":"ON"}`, "ON"}, {`{"POWER1":"OFF"}`, "OFF"}, {`{"POWER":5}`, `{"POWER":5}`},
		{"BLINK", "BLINK"}, {strings.Repeat("x", 300), strings.Repeat("x", 100)},
	}
	for _, tt := range tests {
		if got := parseTasmotaPayload([]byte(tt.in)); got != tt.want {
			t.Errorf("parseTasmotaPayload(%q): got %q, want %q", tt.in, got, tt.want)
		}
	}
}

// FuzzTasmotaPayload feeds stat payloads to the parser: it never panics and never returns more
// than 100 bytes.
func FuzzTasmotaPayload(f *testing.F) {
	for _, s := range []string{"ON", "off", "1", `{"POWER":"ON"}`, `{"POWER":{"POWER":"ON"}}`, `{"POWER1":"0"}`, ""} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if got := parseTasmotaPayload(b); len(got) > 100 {
			t.Fatalf("got %d bytes, want at most 100", len(got))
		}
	})
}
