package cli

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"jsn.dev/jsn/cmd/jsn/jsntest"
)

// These tests build the real jsn binary once and run it as a user would, inside real local
// sessions (embedded bus, Unix socket, real drivers).

type result = jsntest.Result

// jsn runs the binary with args and stdin, outside any session.
func jsn(t *testing.T, stdin string, args ...string) result {
	t.Helper()
	return jsntest.Run(t, jsntest.Options{Stdin: stdin}, args...)
}

// inSession runs `jsn shell -c config -- argv…`.
func inSession(t *testing.T, config, stdin string, argv ...string) result {
	t.Helper()
	return jsntest.Shell(t, config, jsntest.Options{Stdin: stdin}, argv...)
}

func TestShellRunsCommand(t *testing.T) {
	inSession(t, "testdata/lab.yaml", "", "jsn", "call", "power.on").Want(t, 0)
}

func TestShellPowerOnThenStatus(t *testing.T) {
	r := inSession(t, "testdata/lab.yaml", "", "sh", "-c", "jsn power status && jsn power on && jsn power status")
	r.Want(t, 0)
	if r.Stdout != "off\non\n" {
		t.Errorf("got %q, want %q", r.Stdout, "off\non\n")
	}
}

func TestShellExitCodes(t *testing.T) {
	tests := []struct {
		script string
		want   int
	}{
		{"exit 0", 0},
		{"exit 7", 7},
		{"kill -TERM $$", 128 + int(syscall.SIGTERM)},
		{"kill -KILL $$", 128 + int(syscall.SIGKILL)},
	}
	for _, tt := range tests {
		t.Run(tt.script, func(t *testing.T) {
			inSession(t, "testdata/lab.yaml", "", "sh", "-c", tt.script).Want(t, tt.want)
		})
	}
	inSession(t, "testdata/lab.yaml", "", "no-such-command-jsn").Want(t, 127)
}

func TestShellEnvironment(t *testing.T) {
	r := inSession(t, "testdata/lab.yaml", "", "sh", "-c",
		`echo "$JSN_HOST"; echo "$JSN_EXPORTER"; echo "$JSN_LEASE"; p=$(command -v jsn); echo "$p"; `+
			`d=$(dirname "$(dirname "$p")"); stat -c %a "$d"; echo "$d"`)
	r.Want(t, 0)
	lines := strings.Split(strings.TrimSpace(r.Stdout), "\n")
	if len(lines) != 6 {
		t.Fatalf("got %q, want 6 lines", r.Stdout)
	}
	host, exporter, lease, jsnPath, mode, dir := lines[0], lines[1], lines[2], lines[3], lines[4], lines[5]
	if !strings.HasPrefix(host, "unix://"+dir+"/") {
		t.Errorf("got JSN_HOST %q, want a socket inside the session directory %s", host, dir)
	}
	if exporter != "testlab" {
		t.Errorf("got JSN_EXPORTER %q, want testlab", exporter)
	}
	if lease == "" {
		t.Errorf("got an empty JSN_LEASE, want one")
	}
	if jsnPath != filepath.Join(dir, "bin", "jsn") {
		t.Errorf("got jsn at %q, want it in %s/bin", jsnPath, dir)
	}
	if mode != "700" {
		t.Errorf("got session directory mode %s, want 700", mode)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("got %v for the session directory after the session, want it removed", err)
	}
	if strings.Contains(r.Stderr, "attached") {
		t.Errorf("got a banner %q in non-interactive mode, want none", r.Stderr)
	}
}

func TestShellInteractiveBanner(t *testing.T) {
	// No command: $SHELL runs and reads its commands from stdin.
	r := jsn(t, "jsn power on; jsn power status\n", "shell", "-c", "testdata/lab.yaml")
	r.Want(t, 0)
	if r.Stdout != "on\n" {
		t.Errorf("got %q, want %q", r.Stdout, "on\n")
	}
	want := `jsn: lab "testlab" attached (power, shell); exit to release` + "\n"
	if !strings.Contains(r.Stderr, want) {
		t.Errorf("got stderr %q, want the banner %q", r.Stderr, want)
	}
}

func TestShellForwardsSignals(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := jsntest.Command(ctx, t, "shell", "-c", "testdata/lab.yaml", "--", "sh", "-c",
		`trap 'echo got INT; exit 42' INT; echo ready; while :; do sleep 0.05; done`)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var errOut bytes.Buffer
	cmd.Stderr = &errOut
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(out)
	if !sc.Scan() || sc.Text() != "ready" {
		t.Fatalf("got %q, want ready; stderr:\n%s", sc.Text(), errOut.String())
	}
	if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	if !sc.Scan() || sc.Text() != "got INT" {
		t.Errorf("got %q, want %q", sc.Text(), "got INT")
	}
	_ = cmd.Wait()
	if got := cmd.ProcessState.ExitCode(); got != 42 {
		t.Errorf("got exit %d, want 42; stderr:\n%s", got, errOut.String())
	}
}

func TestCallOutputStream(t *testing.T) {
	r := inSession(t, "testdata/lab.yaml", "", "jsn", "call", "shell.fail")
	r.Want(t, 3)
	if r.Stdout != "out\n" {
		t.Errorf("got stdout %q, want %q", r.Stdout, "out\n")
	}
	if !strings.Contains(r.Stderr, "err\n") || strings.Contains(r.Stderr, "out") {
		t.Errorf("got stderr %q, want err and not out", r.Stderr)
	}
	if strings.Contains(r.Stderr, "jsn:") {
		t.Errorf("got stderr %q, want no jsn error message for a command's own exit code", r.Stderr)
	}
	r = inSession(t, "testdata/lab.yaml", "", "jsn", "call", "shell.hello")
	r.Want(t, 0)
	if r.Stdout != "hello\n" {
		t.Errorf("got stdout %q, want %q", r.Stdout, "hello\n")
	}
}

func TestCallResultsAndStreams(t *testing.T) {
	r := inSession(t, "testdata/lab.yaml", "", "sh", "-c",
		`jsn call power.on && jsn call power.status && jsn call power.status -o json && `+
			`jsn call power.read 2 -o json && echo END && jsn call power.read 2`)
	r.Want(t, 0)
	parts := strings.SplitN(r.Stdout, "END\n", 2)
	if len(parts) != 2 {
		t.Fatalf("got %q, want output before and after END", r.Stdout)
	}
	lines := strings.Split(strings.TrimSpace(parts[0]), "\n")
	if len(lines) != 4 || lines[0] != "on" || lines[1] != `"on"` {
		t.Fatalf("got %q, want on, \"on\", then two JSON readings", parts[0])
	}
	for _, l := range lines[2:] {
		var m map[string]float64
		if err := json.Unmarshal([]byte(l), &m); err != nil || m["voltage"] <= 0 || m["current"] <= 0 {
			t.Errorf("got reading %q (%v), want positive voltage and current", l, err)
		}
	}
	docs := strings.Split(parts[1], "---\n")
	if len(docs) != 2 || !strings.Contains(docs[0], "voltage: ") || !strings.Contains(docs[1], "current: ") {
		t.Errorf("got %q, want two YAML documents separated by ---", parts[1])
	}
}

func TestPowerCommands(t *testing.T) {
	r := inSession(t, "testdata/lab.yaml", "", "sh", "-c",
		`jsn power on && jsn power cycle --wait 10ms && jsn power status && jsn power off && jsn power status && jsn power read -n 2`)
	r.Want(t, 0)
	lines := strings.Split(strings.TrimSpace(r.Stdout), "\n")
	if len(lines) != 4 || lines[0] != "on" || lines[1] != "off" {
		t.Fatalf("got %q, want on, off and two readings", r.Stdout)
	}
	reading := regexp.MustCompile(`^\d+\.\d\d V  \d+\.\d\d A$`)
	for _, l := range lines[2:] {
		if !reading.MatchString(l) {
			t.Errorf("got reading %q, want like %q", l, "0.00 V  0.00 A")
		}
	}
}

func TestSeveralPowerDrivers(t *testing.T) {
	r := inSession(t, "testdata/two_power.yaml", "", "jsn", "power", "on")
	r.Want(t, 4)
	want := "jsn: several power drivers: harness.power, dut.power; choose one with -d PATH\n"
	if r.Stderr != want {
		t.Errorf("got %q, want %q", r.Stderr, want)
	}
	r = inSession(t, "testdata/two_power.yaml", "", "sh", "-c",
		`jsn power on -d dut.power && jsn power status -d dut.power && jsn power status -d harness.power`)
	r.Want(t, 0)
	if r.Stdout != "on\noff\n" {
		t.Errorf("got %q, want %q", r.Stdout, "on\noff\n")
	}
	r = inSession(t, "testdata/two_power.yaml", "", "jsn", "power", "on", "-d", "dut")
	r.Want(t, 4)
	if !strings.Contains(r.Stderr, `driver "dut" is not a power driver`) {
		t.Errorf("got %q, want it to say dut is not a power driver", r.Stderr)
	}
	inSession(t, "testdata/two_power.yaml", "", "jsn", "power", "on", "-d", "nope").Want(t, 3)
}

func TestErrors(t *testing.T) {
	tests := []struct {
		name   string
		run    func(t *testing.T) result
		code   int
		stderr string // substring
	}{
		{"outside a session", func(t *testing.T) result { return jsn(t, "", "call", "power.on") }, 2,
			"jsn: no jsn session: run this inside `jsn shell -c exporter.yaml`"},
		{"unknown driver", func(t *testing.T) result { return inSession(t, "testdata/lab.yaml", "", "jsn", "call", "nope.on") }, 3,
			`jsn: no driver "nope"; drivers: power, shell`},
		{"unknown method", func(t *testing.T) result { return inSession(t, "testdata/lab.yaml", "", "jsn", "call", "power.of") }, 3,
			`jsn: driver "power" has no method "of"; methods: on, off, cycle, status, read`},
		{"too many args", func(t *testing.T) result {
			return inSession(t, "testdata/lab.yaml", "", "jsn", "call", "power.on", "1")
		}, 4, "jsn: power.on takes no arguments, got 1"},
		{"bad arg type", func(t *testing.T) result {
			return inSession(t, "testdata/lab.yaml", "", "jsn", "call", "power.cycle", "abc")
		}, 4, `jsn: power.cycle: argument 1 (wait): "abc" is not a duration`},
		{"not PATH.METHOD", func(t *testing.T) result { return inSession(t, "testdata/lab.yaml", "", "jsn", "call", "power") }, 2,
			`"power" is not PATH.METHOD`},
		{"bad config", func(t *testing.T) result { return jsn(t, "", "shell", "-c", "testdata/bad.yaml", "--", "true") }, 2,
			`testdata/bad.yaml:9:7: `},
		{"missing config", func(t *testing.T) result { return jsn(t, "", "shell", "-c", "testdata/none.yaml", "--", "true") }, 2,
			`testdata/none.yaml`},
		{"no -c", func(t *testing.T) result { return jsn(t, "", "shell", "--", "true") }, 2, `"config" not set`},
		{"unknown command", func(t *testing.T) result { return jsn(t, "", "frobnicate") }, 2, `unknown command "frobnicate"`},
		{"unknown flag", func(t *testing.T) result { return jsn(t, "", "describe", "--frob") }, 2, "unknown flag: --frob"},
		{"bad output format", func(t *testing.T) result { return jsn(t, "", "describe", "-o", "xml") }, 2, `invalid output format "xml"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := tt.run(t)
			r.Want(t, tt.code)
			if !strings.Contains(r.Stderr, tt.stderr) {
				t.Errorf("got stderr %q, want it to contain %q", r.Stderr, tt.stderr)
			}
			if strings.Contains(r.Stderr, "goroutine ") || strings.Contains(r.Stderr, "panic") {
				t.Errorf("got a Go trace in stderr:\n%s", r.Stderr)
			}
		})
	}
}

func TestDescribe(t *testing.T) {
	r := inSession(t, "testdata/lab.yaml", "", "jsn", "describe", "-o", "json")
	r.Want(t, 0)
	var desc struct {
		Exporter string
		Drivers  []struct {
			Path    string
			Methods []struct{ Name, Kind string }
		}
	}
	if err := json.Unmarshal([]byte(r.Stdout), &desc); err != nil {
		t.Fatalf("got invalid JSON %q: %v", r.Stdout, err)
	}
	methods := map[string]string{}
	for _, d := range desc.Drivers {
		for _, m := range d.Methods {
			methods[d.Path+"."+m.Name] = m.Kind
		}
	}
	for name, kind := range map[string]string{"power.on": "call", "power.read": "server-stream", "shell.fail": "server-stream"} {
		if methods[name] != kind {
			t.Errorf("got %s kind %q, want %q (all: %v)", name, methods[name], kind, methods)
		}
	}

	r = inSession(t, "testdata/lab.yaml", "", "jsn", "describe")
	r.Want(t, 0)
	for _, want := range []string{
		"testlab  board=virtual\n",
		"├── power  power.Mock  jsn.power.v1",
		"│   ├── on() ",
		"│   ├── cycle([wait duration]) ",
		"│   ├── status() -> string ",
		"│   └── read([count int]) => reading… ",
		"└── shell  shell  jsn.shell.v1",
		"fail(",
		") => output… ",
	} {
		if !strings.Contains(r.Stdout, want) {
			t.Errorf("got tree\n%s\nwant it to contain %q", r.Stdout, want)
		}
	}
}

// echoServer listens on loopback and echoes each connection until the peer half-closes, then
// half-closes its own side.
func echoServer(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	t.Cleanup(func() { ln.Close(); <-done })
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				_, _ = io.Copy(c, c)
				_ = c.(*net.TCPConn).CloseWrite()
			}()
		}
	}()
	return ln.Addr().String()
}

func networkConfig(t *testing.T, addr string) string {
	t.Helper()
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	cfg := fmt.Sprintf(`apiVersion: jsn.dev/v1alpha1
kind: ExporterConfig
metadata:
  name: netlab
export:
  network:
    type: network.TCP
    config: {host: %s, port: %s}
`, host, port)
	p := filepath.Join(t.TempDir(), "net.yaml")
	if err := os.WriteFile(p, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestCallByteStream(t *testing.T) {
	cfg := networkConfig(t, echoServer(t))
	r := inSession(t, cfg, "ping\npong\n", "jsn", "call", "network.connect")
	r.Want(t, 0)
	if r.Stdout != "ping\npong\n" {
		t.Errorf("got %q, want %q", r.Stdout, "ping\npong\n")
	}
}

func TestVersionAndHelp(t *testing.T) {
	r := jsn(t, "", "version")
	r.Want(t, 0)
	if !strings.HasPrefix(r.Stdout, "jsn ") {
		t.Errorf("got %q, want it to start with jsn", r.Stdout)
	}
	r = jsn(t, "", "--help")
	r.Want(t, 0)
	if !strings.Contains(r.Stdout, "Exit codes:") {
		t.Errorf("got %q, want the exit codes documented", r.Stdout)
	}
	r = jsn(t, "", "completion", "bash")
	r.Want(t, 0)
	if !strings.Contains(r.Stdout, "__start_jsn") {
		t.Errorf("got no bash completion script")
	}
}

func TestPowerReadStopsOnInterrupt(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := jsntest.Command(ctx, t, "shell", "-c", "testdata/lab.yaml", "--", "jsn", "power", "read")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var errOut bytes.Buffer
	cmd.Stderr = &errOut
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(out)
	for range 3 {
		if !sc.Scan() {
			t.Fatalf("got %v before 3 readings; stderr:\n%s", sc.Err(), errOut.String())
		}
	}
	if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	go io.Copy(io.Discard, out)
	_ = cmd.Wait()
	if got := cmd.ProcessState.ExitCode(); got != 0 {
		t.Errorf("got exit %d after Ctrl-C, want 0; stderr:\n%s", got, errOut.String())
	}
}

func TestCompletion(t *testing.T) {
	r := inSession(t, "testdata/lab.yaml", "", "jsn", "__complete", "call", "")
	r.Want(t, 0)
	for _, want := range []string{"power.on\tswitch the power on\n", "shell.fail\t", ":4\n"} {
		if !strings.Contains(r.Stdout, want) {
			t.Errorf("got %q, want it to contain %q", r.Stdout, want)
		}
	}
}

// TestShellWebEnvironment: with --web, the session's shell learns the NATS WebSocket URL and token
// a client without a custom dialer (nats.js) uses to reach the local bus; without it, neither.
func TestShellWebEnvironment(t *testing.T) {
	r := jsntest.Run(t, jsntest.Options{}, "shell", "-c", "testdata/lab.yaml", "--web", "127.0.0.1:0", "--",
		"sh", "-c", `echo "$JSN_WS_URL"; echo "$JSN_WS_TOKEN"`)
	r.Want(t, 0)
	lines := strings.Split(strings.TrimSpace(r.Stdout), "\n")
	if len(lines) != 2 || !strings.HasPrefix(lines[0], "ws://127.0.0.1:") || len(lines[1]) < 16 {
		t.Errorf("--web session env: %q", r.Stdout)
	}
	r = inSession(t, "testdata/lab.yaml", "", "sh", "-c", `echo "[$JSN_WS_URL][$JSN_WS_TOKEN]"`)
	r.Want(t, 0)
	if r.Stdout != "[][]\n" {
		t.Errorf("session without --web: %q", r.Stdout)
	}
}
