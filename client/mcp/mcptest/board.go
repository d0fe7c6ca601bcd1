// Package mcptest is a board for tests of the MCP server: a serial console on a Unix socket
// that answers like U-Boot, a screen served over HTTP, an SD-card mux and a power switch, all
// behind the real drivers (serial.Port, video.HTTP, storage.MockMux, power.Mock).
package mcptest

import (
	"bufio"
	"bytes"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
)

// Banner is what the console prints when the exporter connects to it.
const Banner = "U-Boot 2024.01-jsn\nHit any key to stop autoboot\n=> "

// Config starts the board's console and screen and returns an exporter config (named name) of
// a board using them; they stop when t ends.
func Config(t testing.TB, name string) string {
	t.Helper()
	dir := t.TempDir()
	sock := filepath.Join(dir, "console.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go console(c)
		}
	}()
	img := image.NewRGBA(image.Rect(0, 0, 64, 48))
	for x := range 64 {
		img.Set(x, x%48, color.RGBA{R: 255, A: 255})
	}
	var shot bytes.Buffer
	if err := png.Encode(&shot, img); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/snapshot" {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "image/png")
		_, _ = w.Write(shot.Bytes())
	}))
	t.Cleanup(srv.Close)
	return fmt.Sprintf(`apiVersion: jsn.dev/v1alpha1
kind: ExporterConfig
metadata:
  name: %s
  labels: {board: mcp}
export:
  power:
    type: power.Mock
  console:
    type: serial.Port
    config: {url: "unix://%s"}
  sd:
    type: storage.MockMux
    config: {size: 4MiB}
  screen:
    type: video.HTTP
    config: {url: "%s/stream", snapshot_url: "%s/snapshot"}
`, name, sock, srv.URL, srv.URL)
}

// console talks like U-Boot: a banner, then a prompt after each line it answers.
func console(c net.Conn) {
	defer c.Close()
	_, _ = c.Write([]byte(Banner))
	sc := bufio.NewScanner(c)
	for sc.Scan() {
		cmd := strings.TrimSpace(sc.Text())
		var out string
		switch {
		case cmd == "":
		case cmd == "version":
			out = "U-Boot 2024.01-jsn (Dec 03 2026 - 02:00:00 +0000)\n"
		case strings.HasPrefix(cmd, "echo "):
			out = strings.TrimPrefix(cmd, "echo ") + "\n"
		default:
			out = fmt.Sprintf("Unknown command '%s' - try 'help'\n", cmd)
		}
		if _, err := c.Write([]byte(out + "=> ")); err != nil {
			return
		}
	}
}
