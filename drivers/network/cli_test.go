package network

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"jsn.dev/jsn/cmd/jsn/jsntest"
	"jsn.dev/jsn/internal/testkit"
)

// These tests build the real jsn binary and run `jsn forward` and `jsn ssh` inside
// `jsn shell -c netlab.yaml -- …` sessions, against real local servers.

// labConfig writes an exporter config exporting the YAML lines of export and returns its path.
func labConfig(t *testing.T, export string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "netlab.yaml")
	src := "apiVersion: jsn.dev/v1alpha1\nkind: ExporterConfig\nmetadata: {name: netlab}\nexport:\n" + export
	if err := os.WriteFile(p, []byte(src), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// run runs `jsn argv…` in a session on config to the end.
func run(t *testing.T, config string, argv ...string) jsntest.Result {
	t.Helper()
	if testing.Short() {
		t.Skip("builds the jsn binary")
	}
	return jsntest.Shell(t, config, jsntest.Options{Dir: t.TempDir(), Timeout: 60 * time.Second}, append([]string{"jsn"}, argv...)...)
}

// forwarding is a running `jsn forward`.
type forwarding struct {
	cmd    *exec.Cmd
	local  string          // the local address it printed
	stderr *jsntest.Buffer // everything after the forwarding line
	done   chan struct{}
}

var forwardingLine = regexp.MustCompile(`^forwarding (\S+) -> (\S+) \((tcp|udp|unix)( \S+)?\)$`)

// startForward starts `jsn forward args…` in a session and waits for its forwarding line.
// Cleanup stops it with Ctrl-C if the test did not.
func startForward(t *testing.T, config, dir string, args ...string) *forwarding {
	t.Helper()
	if testing.Short() {
		t.Skip("builds the jsn binary")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	cmd := jsntest.Command(ctx, t, append([]string{"shell", "-c", config, "--", "jsn", "forward"}, args...)...)
	cmd.Dir = dir
	errPipe, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	f := &forwarding{cmd: cmd, stderr: &jsntest.Buffer{}, done: make(chan struct{})}
	sc := bufio.NewScanner(errPipe)
	var early []string
	for f.local == "" && sc.Scan() {
		if m := forwardingLine.FindStringSubmatch(sc.Text()); m != nil {
			f.local = m[1]
		} else {
			early = append(early, sc.Text())
		}
	}
	go func() {
		defer close(f.done)
		io.Copy(f.stderr, errPipe)
	}()
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGINT)
		<-f.done
		cmd.Wait()
		cancel()
	})
	if f.local == "" {
		t.Fatalf("jsn forward %q: got no forwarding line; stderr:\n%s", args, strings.Join(early, "\n"))
	}
	return f
}

// stop sends Ctrl-C and returns the exit code.
func (f *forwarding) stop(t *testing.T) int {
	t.Helper()
	if err := f.cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	<-f.done
	f.cmd.Wait()
	return f.cmd.ProcessState.ExitCode()
}

func TestCLIForwardTCP(t *testing.T) {
	srv := serve(t, echo)
	config := labConfig(t, fmt.Sprintf("  network: {type: network.TCP, config: {host: 127.0.0.1, port: %d}}\n", srv.port()))
	f := startForward(t, config, t.TempDir(), "0", "network")
	if !strings.HasPrefix(f.local, "127.0.0.1:") {
		t.Fatalf("local address: got %q, want 127.0.0.1:PORT", f.local)
	}
	var wg sync.WaitGroup
	for i := range 4 { // concurrent connections, each its own stream
		wg.Add(1)
		go func() {
			defer wg.Done()
			msg := bytes.Repeat([]byte(fmt.Sprintf("hello %d ", i)), 50000)
			got, err := exchange("tcp", f.local, msg)
			if err != nil || !bytes.Equal(got, msg) {
				t.Errorf("connection %d: got %d bytes, %v, want the %d sent", i, len(got), err, len(msg))
			}
		}()
	}
	wg.Wait()
	if code := f.stop(t); code != 0 {
		t.Fatalf("exit after Ctrl-C: got %d, want 0; stderr:\n%s", code, f.stderr)
	}
}

func TestCLIForwardClosedPort(t *testing.T) {
	config := labConfig(t, fmt.Sprintf("  network: {type: network.TCP, config: {host: 127.0.0.1, port: %d}}\n", freePort(t)))
	f := startForward(t, config, t.TempDir()) // the only network driver, any port
	for i := range 2 {
		if got, _ := exchange("tcp", f.local, []byte("hello?")); len(got) != 0 {
			t.Fatalf("connection %d: got %q, want nothing", i, got)
		}
	}
	testkit.CheckFor(t, 30*time.Second, func() error {
		if n := strings.Count(f.stderr.String(), "jsn: forward: connection ended with an error"); n != 2 {
			return fmt.Errorf("got %d error lines on stderr, want 2: %q", n, f.stderr.String())
		}
		return nil
	})
	if s := f.stderr.String(); !strings.Contains(s, "refused") {
		t.Fatalf("stderr: got %q, want connection refused", s)
	}
	if code := f.stop(t); code != 0 {
		t.Fatalf("exit after Ctrl-C: got %d, want 0; stderr:\n%s", code, f.stderr)
	}
}

func TestCLIForwardUDP(t *testing.T) {
	srv := udpEcho(t)
	config := labConfig(t, fmt.Sprintf("  dns: {type: network.UDP, config: {host: 127.0.0.1, port: %d}}\n", srv.port()))
	f := startForward(t, config, t.TempDir(), "127.0.0.1:0", "dns")
	a, b := dialUDP(t, f.local), dialUDP(t, f.local)
	for _, size := range []int{1, 1000, 65000} {
		roundTrip(t, a, random(size))
		roundTrip(t, b, random(size))
	}
	if got := srv.peerCount(); got != 2 {
		t.Fatalf("server peers: got %d, want 2", got)
	}
	if code := f.stop(t); code != 0 {
		t.Fatalf("exit after Ctrl-C: got %d, want 0; stderr:\n%s", code, f.stderr)
	}
}

func TestCLIForwardUnix(t *testing.T) {
	remote := filepath.Join(t.TempDir(), "qmp.sock")
	serveUnix(t, remote, unixReplyAtEOF)
	config := labConfig(t, fmt.Sprintf("  qmp: {type: network.Unix, config: {path: %s}}\n", remote))
	dir := t.TempDir()
	f := startForward(t, config, dir, "./dut.sock", "qmp")
	local := filepath.Join(dir, "dut.sock")
	fi, err := os.Stat(local)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode()&os.ModeSocket == 0 || fi.Mode().Perm() != 0o600 {
		t.Fatalf("local socket: got mode %v, want a 0600 socket", fi.Mode())
	}
	got, err := exchange("unix", local, []byte("ping"))
	if err != nil || string(got) != "got PING" {
		t.Fatalf("got %q, %v, want %q", got, err, "got PING")
	}
	if code := f.stop(t); code != 0 {
		t.Fatalf("exit after Ctrl-C: got %d, want 0; stderr:\n%s", code, f.stderr)
	}
	if _, err := os.Lstat(local); !os.IsNotExist(err) {
		t.Fatalf("local socket after exit: got %v, want it removed", err)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Fatalf("left behind in the directory: %v", entries)
	}

	// The default: a socket in a private temporary directory, removed on exit.
	f = startForward(t, config, t.TempDir())
	if got, err := exchange("unix", f.local, []byte("x")); err != nil || string(got) != "got X" {
		t.Fatalf("default socket: got %q, %v", got, err)
	}
	if code := f.stop(t); code != 0 {
		t.Fatalf("exit after Ctrl-C: got %d, want 0", code)
	}
	if _, err := os.Lstat(filepath.Dir(f.local)); !os.IsNotExist(err) {
		t.Fatalf("default socket directory after exit: got %v, want it removed", err)
	}
}

func TestCLIForwardBadInput(t *testing.T) {
	dir := t.TempDir()
	existing := filepath.Join(dir, "taken.sock")
	os.WriteFile(existing, nil, 0o600)
	config := labConfig(t, fmt.Sprintf("  network: {type: network.TCP, config: {host: 127.0.0.1, port: 22}}\n  qmp: {type: network.Unix, config: {path: %s/qmp.sock}}\n", dir))
	tests := []struct {
		args []string
		code int
		want string
	}{
		{[]string{"70000", "network"}, 2, "port out of range"},
		{[]string{"host", "network"}, 2, "not an address"},
		{[]string{"localhost:ssh", "network"}, 2, "port must be a number"},
		{[]string{"unix:", "qmp"}, 2, "empty path"},
		{[]string{"./x.sock", "network"}, 2, "driver network is tcp"},
		{[]string{"8022", "qmp"}, 2, "driver qmp is unix"},
		{[]string{"1", "2", "3"}, 2, "accepts between 0 and 2"},
		{[]string{existing, "qmp"}, 1, "file already exists"},
		{[]string{"0", "nosuch"}, 3, `no driver "nosuch"`},
		{nil, 4, "several network drivers"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			r := run(t, config, append([]string{"forward"}, tt.args...)...)
			r.Want(t, tt.code)
			if !strings.Contains(r.Stderr, tt.want) {
				t.Fatalf("stderr: got %q, want it to contain %q", r.Stderr, tt.want)
			}
		})
	}
}
