package serial

import (
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"jsn.dev/jsn/drivers/driver"
)

// build builds a one-node tree from the YAML of the node "console".
func build(t testing.TB, src string) (*driver.Tree, error) {
	t.Helper()
	var doc yaml.Node
	if err := yaml.Unmarshal([]byte("console:\n  "+strings.ReplaceAll(src, "\n", "\n  ")), &doc); err != nil {
		return nil, err
	}
	if len(doc.Content) == 0 {
		return nil, nil
	}
	return driver.Build("exporter.yaml", doc.Content[0], driver.BuildOptions{})
}

func TestBuildConfig(t *testing.T) {
	tests := []struct {
		src     string
		wantErr string
	}{
		{"type: jumpstarter_driver_pyserial.driver.PySerial\nconfig: {url: /dev/ttyUSB0, baudrate: 115200, check_present: false}", ""},
		{"type: serial.Port\nconfig: {url: 'socket://ser2net.lab:3001', parity: even, stopbits: 1.5, databits: 7, flow: rtscts, buffer: 4096, reconnect: 250ms}", ""},
		{"type: serial.Port\nconfig: {url: /dev/ttyS0, baudrate: 250000}", ""},
		{"type: serial.Port\nconfig: {baudrate: 9600}", `missing required field "url"`},
		{"type: serial.Port\nconfig: {url: ttyUSB0}", "not an absolute device path"},
		{"type: serial.Port\nconfig: {url: 'rfc2217://h:1'}", "unsupported url"},
		{"type: serial.Port\nconfig: {url: 'socket://h'}", "missing port"},
		{"type: serial.Port\nconfig: {url: 'socket://h:0'}", "port must be 1..65535"},
		{"type: serial.Port\nconfig: {url: /dev/x, baudrate: 0}", "baudrate: must be 1..4000000, got 0"},
		{"type: serial.Port\nconfig: {url: /dev/x, baudrate: 5000000}", "baudrate: must be 1..4000000"},
		{"type: serial.Port\nconfig: {url: /dev/x, baudrate: fast}", `want an integer, got "fast"`},
		{"type: serial.Port\nconfig: {url: /dev/x, parity: N}", `parity: must be none, even, odd, mark or space, got "N"`},
		{"type: serial.Port\nconfig: {url: /dev/x, stopbits: 3}", "stopbits: must be 1, 1.5 or 2, got 3"},
		{"type: serial.Port\nconfig: {url: /dev/x, databits: 9}", "databits: must be 5..8, got 9"},
		{"type: serial.Port\nconfig: {url: /dev/x, flow: dsrdtr}", `flow: must be none, rtscts or xonxoff`},
		{"type: serial.Port\nconfig: {url: /dev/x, buffer: 100}", "buffer: must be 4096..67108864 bytes, got 100"},
		{"type: serial.Port\nconfig: {url: /dev/x, buffer: 134217728}", "buffer: must be 4096..67108864 bytes"},
		{"type: serial.Port\nconfig: {url: /dev/x, reconnect: 0s}", "reconnect: must be positive"},
		{"type: serial.Port\nconfig: {url: /dev/x, baudrat: 9600}", `unknown field "baudrat" (did you mean "baudrate"?)`},
	}
	for _, tt := range tests {
		tree, err := build(t, tt.src)
		if tt.wantErr == "" {
			if err != nil {
				t.Errorf("%s: %v", tt.src, err)
				continue
			}
			if _, ok := tree.Find("console").Driver.(*Port); !ok {
				t.Errorf("%s: got %T, want *Port", tt.src, tree.Find("console").Driver)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !strings.Contains(err.Error(), "exporter.yaml:") {
			t.Errorf("%s:\ngot  %v\nwant a positioned error containing %q", tt.src, err, tt.wantErr)
		}
	}
}

func TestDefaults(t *testing.T) {
	tree, err := build(t, "type: serial.Port\nconfig: {url: /dev/ttyUSB0}")
	if err != nil {
		t.Fatal(err)
	}
	p := tree.Find("console").Driver.(*Port)
	if p.Baudrate != 115200 || p.Parity != "none" || p.StopBits != 1 || p.DataBits != 8 || p.Flow != "none" ||
		p.Buffer != 1<<20 || p.Reconnect != time.Second {
		t.Fatalf("got %+v, want the documented defaults", p)
	}
}

func TestParseURL(t *testing.T) {
	tests := []struct {
		in, want, wantErr string
	}{
		{"/dev/ttyUSB0", "/dev/ttyUSB0", ""},
		{"/dev/../dev/ttyACM0", "/dev/ttyACM0", ""},
		{"socket://localhost:3001", "socket://localhost:3001", ""},
		{"socket://[::1]:3001/", "socket://[::1]:3001", ""},
		{"socket://h:3001/x", "", "no path"},
		{"socket://h:99999", "", "port must be"},
		{"socket://:1", "", "empty host"},
		{"loop://", "loop://", ""}, {"spy://x", "", "unsupported url"},
		{"", "", "must not be empty"},
		{"dev/tty", "", "not an absolute"},
		{"/dev/\x00", "", "NUL"},
	}
	for _, tt := range tests {
		got, err := parseURL(tt.in)
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("parseURL(%q): got %v, %v, want error %q", tt.in, got, err, tt.wantErr)
			}
			continue
		}
		if err != nil || got.String() != tt.want {
			t.Errorf("parseURL(%q): got %v, %v, want %s", tt.in, got, err, tt.want)
		}
	}
}

// FuzzParseURL: no url panics, and accepted ones round-trip.
func FuzzParseURL(f *testing.F) {
	for _, s := range []string{"/dev/ttyUSB0", "socket://localhost:3001", "socket://[::1]:1/", "rfc2217://x:1", "", "a", "socket://:"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		u, err := parseURL(s)
		if err != nil {
			return
		}
		again, err := parseURL(u.String())
		if err != nil || again != u {
			t.Fatalf("parseURL(%q) = %v, but parseURL(%q) = %v, %v", s, u, u.String(), again, err)
		}
	})
}

// FuzzBuildConfig: no config makes Build panic or hang.
func FuzzBuildConfig(f *testing.F) {
	f.Add("type: serial.Port\nconfig: {url: /dev/ttyUSB0, baudrate: 9600, parity: odd, stopbits: 2}")
	f.Add("type: serial.Port\nconfig: {url: 'socket://h:1', buffer: 4096, reconnect: 1}")
	f.Add("type: jumpstarter_driver_pyserial.driver.PySerial\nconfig: {url: x, stopbits: .nan}")
	f.Fuzz(func(t *testing.T, src string) {
		build(t, src)
	})
}
