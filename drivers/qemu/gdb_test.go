package qemu

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"testing"
	"time"

	"jsn.dev/jsn/cmd/jsn/cli/clitest"
	"jsn.dev/jsn/internal/testkit"
)

// TestGDBAndStream: a real gdb reads the registers of a real QEMU guest through `jsn debug gdb`
// (the board's gdbstub, the exporter, NATS, a local port), and the board's screen is streamed as
// MJPEG and reached by VNC (`jsn vnc`, QEMU's own VNC server). The guest needs no kernel: the firmware runs, and that is enough to stop and read.
func TestGDBAndStream(t *testing.T) {
	gdb, err := exec.LookPath("gdb-multiarch")
	if err != nil {
		gdb, err = exec.LookPath("gdb")
	}
	if err != nil {
		if os.Getenv("CI") != "" || os.Geteuid() == 0 {
			t.Fatal("gdb is not installed (apt-get install gdb)")
		}
		t.Skip("gdb is not installed (apt-get install gdb); .ci/run installs it")
	}
	if _, err := exec.LookPath("qemu-system-x86_64"); err != nil {
		t.Skip("qemu-system-x86_64 is not installed")
	}
	s := clitest.Start(t, `apiVersion: jsn.dev/v1alpha1
kind: ExporterConfig
metadata: {name: gdb-test}
export:
  vmg:
    type: qemu.QEMU
    config: {arch: x86_64, memory: 128MiB, stop_timeout: 5s}
`)
	s.Run("power", "on").Want(t, 0)
	r := s.Run("debug", "gdb", "--", gdb, "-batch", "-nx", "-ex", "info registers rip", "-ex", "info registers cs")
	r.Want(t, 0)
	if !regexp.MustCompile(`(?m)^rip\s+0x[0-9a-f]+`).MatchString(r.Stdout) || !regexp.MustCompile(`(?m)^cs\s+0x`).MatchString(r.Stdout) {
		t.Fatalf("gdb read no registers:\nstdout:\n%s\nstderr:\n%s", r.Stdout, r.Stderr)
	}
	out := filepath.Join(t.TempDir(), "screen.mjpeg")
	s.Run("video", "stream", out, "--frames", "2", "--fps", "10").Want(t, 0)
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if n := bytes.Count(b, []byte{0xff, 0xd8, 0xff}); n != 2 {
		t.Errorf("got %d JPEG frames of the screen, want 2", n)
	}
	// The board's VNC server through `jsn vnc`: a client reads the RFB greeting.
	p := s.Background(clitest.Options{}, "vnc")
	var addr string
	testkit.CheckFor(t, 60*time.Second, func() error {
		m := regexp.MustCompile(`vnc://(\S+)`).FindStringSubmatch(p.Stderr.String())
		if m == nil {
			if p.Exited() {
				t.Fatalf("jsn vnc ended: %s", p.Stderr)
			}
			return fmt.Errorf("no vnc:// line yet: %q", p.Stderr.String())
		}
		addr = m[1]
		return nil
	})
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	c.SetDeadline(time.Now().Add(30 * time.Second))
	greeting := make([]byte, 12)
	if _, err := io.ReadFull(c, greeting); err != nil || !regexp.MustCompile(`^RFB 003\.00[3-8]\n$`).Match(greeting) {
		t.Fatalf("RFB greeting: %q %v", greeting, err)
	}
	c.Close()
	if code := p.Stop(); code != 0 {
		t.Errorf("jsn vnc exit %d: %s", code, p.Stderr)
	}

	s.Run("power", "off").Want(t, 0)
	r = s.Run("debug", "gdb", "--", gdb, "-batch", "-nx", "-ex", "info registers rip")
	if r.Code == 0 {
		t.Errorf("gdb attached to a board that is off:\n%s", r.Stdout)
	}
}
