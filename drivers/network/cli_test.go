package network

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"jsn.dev/jsn/cmd/jsn/cli/clitest"
	"jsn.dev/jsn/cmd/jsn/jsntest"
	"jsn.dev/jsn/internal/testkit"
)

// These tests run `jsn forward` and `jsn ssh` in-process (clitest) against a lab exporting
// network drivers to real local servers.

// labConfig is an exporter config exporting the YAML lines of export.
func labConfig(export string) string {
	return "apiVersion: jsn.dev/v1alpha1\nkind: ExporterConfig\nmetadata: {name: netlab}\nexport:\n" + export
}

// forwarding is a running `jsn forward`.
type forwarding struct {
	*clitest.Proc
	local  string          // the local address it printed
	stderr *jsntest.Buffer // everything it wrote on stderr
}

var forwardingLine = regexp.MustCompile(`(?m)^forwarding (\S+) -> (\S+) \((tcp|udp|unix)( \S+)?\)$`)

// startForward starts `jsn forward args…` in s and waits for its forwarding line. The test's
// end stops it if the test did not.
func startForward(t *testing.T, s *clitest.Session, args ...string) *forwarding {
	t.Helper()
	p := s.Background(clitest.Options{}, append([]string{"forward"}, args...)...)
	f := &forwarding{Proc: p, stderr: p.Stderr}
	testkit.CheckFor(t, 60*time.Second, func() error {
		if m := forwardingLine.FindStringSubmatch(p.Stderr.String()); m != nil {
			f.local = m[1]
			return nil
		}
		if p.Exited() {
			t.Fatalf("jsn forward %q ended: exit %d; stderr:\n%s", args, p.Stop(), p.Stderr)
		}
		return fmt.Errorf("jsn forward %q printed no forwarding line; stderr: %q", args, p.Stderr.String())
	})
	return f
}

// stop interrupts jsn forward (Ctrl-C) and returns the exit code.
func (f *forwarding) stop(t *testing.T) int { return f.Stop() }

func TestCLIForwardTCP(t *testing.T) {
	srv := serve(t, echo)
	s := clitest.Start(t, labConfig(fmt.Sprintf("  network: {type: network.TCP, config: {host: 127.0.0.1, port: %d}}\n", srv.port())))
	f := startForward(t, s, "0", "network")
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
	s := clitest.Start(t, labConfig(fmt.Sprintf("  network: {type: network.TCP, config: {host: 127.0.0.1, port: %d}}\n", freePort(t))))
	f := startForward(t, s) // the only network driver, any port
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
	s := clitest.Start(t, labConfig(fmt.Sprintf("  dns: {type: network.UDP, config: {host: 127.0.0.1, port: %d}}\n", srv.port())))
	f := startForward(t, s, "127.0.0.1:0", "dns")
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
	s := clitest.Start(t, labConfig(fmt.Sprintf("  qmp: {type: network.Unix, config: {path: %s}}\n", remote)))
	dir := t.TempDir()
	t.Chdir(dir)
	f := startForward(t, s, "./dut.sock", "qmp")
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
	f = startForward(t, s)
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
	s := clitest.Start(t, labConfig(fmt.Sprintf("  network: {type: network.TCP, config: {host: 127.0.0.1, port: 22}}\n  qmp: {type: network.Unix, config: {path: %s/qmp.sock}}\n", dir)))
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
			r := s.Run(append([]string{"forward"}, tt.args...)...)
			r.Want(t, tt.code)
			if !strings.Contains(r.Stderr, tt.want) {
				t.Fatalf("stderr: got %q, want it to contain %q", r.Stderr, tt.want)
			}
		})
	}
}
