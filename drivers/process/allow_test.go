package process_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"jsn.dev/jsn/client"
	"jsn.dev/jsn/cmd/jsn/cli/clitest"
	"jsn.dev/jsn/exporter/exportertest"
)

const allowLab = `apiVersion: jsn.dev/v1alpha1
kind: ExporterConfig
metadata: {name: lab}
export:
  power:
    type: power.Mock
  relay:
    type: process
    config: {command: [/usr/bin/python3, -m, jsn_driver, %s]}
  alias:
    ref: relay
`

// TestClientDriverAllow: a client whose config lists drivers.allow refuses to call drivers of
// other types, before sending anything, naming the type and the key.
func TestClientDriverAllow(t *testing.T) {
	needPython(t)
	cfg := strings.Replace(allowLab, "%s", testdata(t)+":Relay", 1)
	s := clitest.Start(t, cfg)
	file := filepath.Join(t.TempDir(), "client.yaml")
	err := os.WriteFile(file, []byte(`apiVersion: jsn.dev/v1alpha1
kind: ClientConfig
metadata: {name: alice}
endpoint: nats://127.0.0.1:4222
credentials: "-----BEGIN NATS USER JWT-----\nx\n------END NATS USER JWT------\n"
drivers:
  allow: [jsn.power.*]
`), 0o600)
	if err != nil {
		t.Fatal(err)
	}
	env := map[string]string{client.EnvClientConfig: file}
	r := s.RunWith(clitest.Options{Env: env}, "call", "relay.on")
	r.Want(t, 5)
	want := "jsn: driver relay is of type process (interface none), which drivers.allow of client config " + file +
		" does not allow (jsn.power.*); nothing was sent\n"
	if r.Stderr != want {
		t.Fatalf("stderr %q, want %q", r.Stderr, want)
	}
	// Through a ref, the type of the driver it reaches counts.
	s.RunWith(clitest.Options{Env: env}, "call", "alias.on").Want(t, 5)
	s.RunWith(clitest.Options{Env: env}, "power", "on").Want(t, 0)
	// The refused call never reached the driver: the relay is still open.
	if got, err := s.Lab.Driver("relay").Call(context.Background(), "get", 0); err != nil || got != false {
		t.Fatalf("relay state %v, %v: the refused call was sent", got, err)
	}
	// Without the key, everything goes (today's behaviour).
	s.Run("call", "relay.on").Want(t, 0)
}

func TestRestrictDriversAPI(t *testing.T) {
	needPython(t)
	l := exportertest.Start(t, strings.Replace(allowLab, "%s", testdata(t)+":Relay", 1))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	l.Exporter.RestrictDrivers([]string{"process"}, "the test's list")
	if _, err := l.Driver("relay").Call(ctx, "on"); err != nil {
		t.Fatal(err)
	}
	_, err := l.Driver("power").Call(ctx, "on")
	if !errors.Is(err, client.ErrPermissionDenied) || err.Error() != "driver power is of type power.Mock (interface jsn.power.v1), which the test's list does not allow (process); nothing was sent" {
		t.Fatalf("power.on = %v", err)
	}
	if _, err := l.Driver("power").Open(ctx, "read"); !errors.Is(err, client.ErrPermissionDenied) {
		t.Fatalf("power.read stream = %v", err)
	}
}

// TestInterfaceVerbs: a Python driver that declares jsn.power.v1 is driven by `jsn power`.
func TestInterfaceVerbs(t *testing.T) {
	needPython(t)
	s := clitest.Start(t, `apiVersion: jsn.dev/v1alpha1
kind: ExporterConfig
metadata: {name: lab}
export:
  psu:
    type: process
    config: {command: [/usr/bin/python3, -m, jsn_driver, `+testdata(t)+`:PowerSwitch]}
`)
	s.Run("power", "on").Want(t, 0)
	r := s.Run("power", "status")
	r.Want(t, 0)
	if strings.TrimSpace(r.Stdout) != "on" {
		t.Fatalf("jsn power status: %q", r.Stdout)
	}
	r = s.Run("describe")
	if !strings.Contains(r.Stdout, "psu  process  jsn.power.v1") {
		t.Fatalf("describe:\n%s", r.Stdout)
	}
}
