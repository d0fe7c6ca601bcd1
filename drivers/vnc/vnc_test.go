package vnc

import (
	"fmt"
	"io"
	"net"
	"regexp"
	"strings"
	"testing"
	"time"

	"jsn.dev/jsn/cmd/jsn/cli/clitest"
	"jsn.dev/jsn/exporter"
	"jsn.dev/jsn/internal/testkit"
)

// TestVNCThroughJSN: a Jumpstarter Vnc node with a tcp child; `jsn vnc` forwards a local port
// to the server behind it. The server here sends an RFB greeting and echoes the client's
// version (the start of every RFB session); QEMU's own VNC server is exercised in
// drivers/qemu (TestGDBAndStream).
func TestVNCThroughJSN(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				io.WriteString(c, "RFB 003.008\n")
				b := make([]byte, 12)
				if _, err := io.ReadFull(c, b); err == nil {
					c.Write(b)
				}
			}()
		}
	}()
	port := ln.Addr().(*net.TCPAddr).Port
	s := clitest.Start(t, fmt.Sprintf(`apiVersion: jumpstarter.dev/v1alpha1
kind: ExporterConfig
metadata: {name: vnclab}
export:
  vnc:
    type: jumpstarter_driver_vnc.driver.Vnc
    config: {default_encrypt: true}
    children:
      tcp:
        type: jumpstarter_driver_network.driver.TcpNetwork
        config: {host: 127.0.0.1, port: %d}
`, port))
	if r := s.Run("call", "vnc.default_encrypt"); strings.TrimSpace(r.Stdout) != "true" {
		t.Errorf("default_encrypt: %q %q", r.Stdout, r.Stderr)
	}
	p := s.Background(clitest.Options{}, "vnc", "-d", "vnc")
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
	defer c.Close()
	c.SetDeadline(time.Now().Add(30 * time.Second))
	b := make([]byte, 12)
	if _, err := io.ReadFull(c, b); err != nil || string(b) != "RFB 003.008\n" {
		t.Fatalf("greeting %q %v", b, err)
	}
	io.WriteString(c, "RFB 003.008\n")
	if _, err := io.ReadFull(c, b); err != nil || string(b) != "RFB 003.008\n" {
		t.Fatalf("echo %q %v", b, err)
	}
	if code := p.Stop(); code != 0 {
		t.Errorf("exit %d", code)
	}
}

func TestVNCNeedsTCP(t *testing.T) {
	_, err := exporter.ParseConfig("x.yaml", []byte("apiVersion: jumpstarter.dev/v1alpha1\nkind: ExporterConfig\nexport:\n  vnc: {type: jumpstarter_driver_vnc.driver.Vnc}\n"))
	if err == nil || !strings.Contains(err.Error(), `a "tcp" child is required`) {
		t.Errorf("got %v", err)
	}
}
