package power

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"jsn.dev/jsn/client"
	"jsn.dev/jsn/cmd/jsn/cli/clitest"
	"jsn.dev/jsn/exporter"
)

// backendsConfig is an exporter config with one driver of each backend; %[1]s is the relay
// script's state dir, %[2]s the HTTP emulator's host, %[3]d the broker's port.
const backendsConfig = `apiVersion: jsn.dev/v1alpha1
kind: ExporterConfig
metadata: {name: backends}
export:
  cmd:
    type: power.Command
    config:
      on: %[4]s/relay.sh on
      off: %[4]s/relay.sh off
      status: %[4]s/relay.sh status
      status_on: is on
      env: {RELAY_STATE: %[1]s}
  hub:
    type: power.Ykush
    config: {port: 1, ykushcmd: %[4]s/ykushcmd}
  plug:
    type: power.HTTP
    config: {preset: shelly, generation: 2, host: "%[2]s"}
  mqtt:
    type: power.Tasmota
    config: {host: 127.0.0.1, port: %[3]d, tls: false, cmnd_topic: cmnd/t9/POWER, stat_topic: stat/t9/POWER}
`

// TestBackendsEndToEnd drives every backend through a real exporter, bus and client.
func TestBackendsEndToEnd(t *testing.T) {
	state := t.TempDir()
	t.Setenv("YKUSH_STATE", state)
	e := newRelayEmulator(t)
	port := startMosquitto(t, "", "")
	newFakeTasmota(t, port, "t9", "", "")
	src := fmt.Sprintf(backendsConfig, state, strings.TrimPrefix(e.URL, "http://"), port, backendsDir(t))
	cfg, err := exporter.ParseConfig("backends.yaml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	l, err := exporter.StartLocal(ctx, cfg, exporter.LocalOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	c, err := client.Connect(ctx, l.URL, "tester")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ex := c.Exporter(l.Exporter, l.Lease)
	for _, path := range []string{"cmd", "hub", "plug", "mqtt"} {
		p := NewClient(ex.Driver(path))
		if err := p.Cycle(ctx, time.Millisecond); err != nil {
			t.Fatalf("%s: cycle: %v", path, err)
		}
		if s, err := p.Status(ctx); err != nil || s != On {
			t.Fatalf("%s: status after cycle: got %q, %v, want on", path, s, err)
		}
		if err := p.Off(ctx); err != nil {
			t.Fatalf("%s: off: %v", path, err)
		}
		if s, err := p.Status(ctx); err != nil || s != Off {
			t.Fatalf("%s: status after off: got %q, %v, want off", path, s, err)
		}
		err := p.Read(ctx, 1, func(Reading) error { return nil })
		if path == "plug" {
			if err != nil {
				t.Fatalf("plug: read: %v", err)
			}
		} else if !errors.Is(err, client.ErrUnimplemented) {
			t.Fatalf("%s: read: got %v, want UNIMPLEMENTED", path, err)
		}
	}
}

// TestBackendsCLI runs the `jsn power` verbs in-process (clitest) on each backend.
func TestBackendsCLI(t *testing.T) {
	state := t.TempDir()
	t.Setenv("YKUSH_STATE", state) // for the command backends the exporter runs
	e := newRelayEmulator(t)
	port := startMosquitto(t, "", "")
	newFakeTasmota(t, port, "t9", "", "")
	src := fmt.Sprintf(backendsConfig, state, strings.TrimPrefix(e.URL, "http://"), port, backendsDir(t))
	for _, path := range []string{"cmd", "hub", "plug", "mqtt"} {
		t.Run(path, func(t *testing.T) {
			s := clitest.Start(t, src)
			var stdout, stderr strings.Builder
			for _, verb := range [][]string{{"cycle", "--wait", "10ms"}, {"status"}, {"off"}, {"status"}} {
				r := s.Run(append(append([]string{"power"}, verb...), "-d", path)...)
				r.Want(t, 0)
				stdout.WriteString(r.Stdout)
			}
			r := s.Run("power", "read", "-n", "1", "-d", path)
			stdout.WriteString(r.Stdout)
			stderr.WriteString(r.Stderr)
			if got := stdout.String(); got != "on\noff\n" && !(path == "plug" && strings.HasPrefix(got, "on\noff\n237.50 V")) {
				t.Fatalf("stdout: got %q, want %q; stderr:\n%s", got, "on\noff\n", stderr.String())
			}
			if path == "plug" {
				if r.Code != 0 {
					t.Fatalf("exit %d, want 0; stderr:\n%s", r.Code, r.Stderr)
				}
				return
			}
			if r.Code == 0 || !strings.Contains(r.Stderr, "measure") {
				t.Fatalf("read on %s: got exit %d, stderr %q, want a failure saying it cannot measure", path, r.Code, r.Stderr)
			}
		})
	}
}
