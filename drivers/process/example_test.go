package process_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"jsn.dev/jsn/cmd/jsn/jsntest"
	"jsn.dev/jsn/exporter/exportertest"
)

// TestExample runs what examples/python-driver.yaml promises, with the jsn binary, from the
// repository root as a fresh clone would.
func TestExample(t *testing.T) {
	needPython(t)
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	o := jsntest.Options{Dir: root}
	r := jsntest.Shell(t, "examples/python-driver.yaml", o, "jsn", "call", "relay.on")
	r.Want(t, 0)
	r = jsntest.Shell(t, "examples/python-driver.yaml", o, "sh", "-c", "jsn call relay.set 2 true && jsn call relay.status && jsn describe")
	r.Want(t, 0)
	for _, want := range []string{"0010\n", "set(channel int, closed bool)", "Close or open one relay.", "status() -> string",
		"pulse(channel int, [seconds float])", "scan() => string…", "loopback() <=> bytes"} {
		if !strings.Contains(r.Stdout, want) {
			t.Errorf("output lacks %q:\n%s", want, r.Stdout)
		}
	}
	r = jsntest.Shell(t, "examples/python-driver.yaml", o, "jsn", "call", "relay.set", "7", "true")
	r.Want(t, 4)
	if !strings.Contains(r.Stderr, "relay.set: ValueError: no relay 7: the board has 4 (0 to 3)") {
		t.Errorf("stderr: %s", r.Stderr)
	}
}

// TestExampleByteStream moves 64 MiB through the example's Python byte stream and back.
func TestExampleByteStream(t *testing.T) {
	needPython(t)
	cfg, err := os.ReadFile("../../examples/python-driver.yaml")
	if err != nil {
		t.Fatal(err)
	}
	script, err := filepath.Abs("../../examples/drivers/relay.py")
	if err != nil {
		t.Fatal(err)
	}
	l := exportertest.Start(t, strings.Replace(string(cfg), "jsn_driver, drivers/relay.py", "jsn_driver, "+script, 1))
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	s, err := l.Driver("relay").Open(ctx, "loopback")
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	src := make([]byte, 64<<20)
	_, _ = rand.Read(src)
	werr := make(chan error, 1)
	go func() {
		_, err := s.Write(src)
		if err == nil {
			err = s.CloseWrite()
		}
		werr <- err
	}()
	got, err := io.ReadAll(s)
	if err != nil {
		t.Fatal(err)
	}
	if err := <-werr; err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, src) {
		t.Fatalf("loopback returned %d bytes, want the %d sent", len(got), len(src))
	}
}

// TestRawProtocolExample serves examples/drivers/raw_counter.py, which speaks the protocol of
// docs/external-drivers.md without the SDK.
func TestRawProtocolExample(t *testing.T) {
	needPython(t)
	script, err := filepath.Abs("../../examples/drivers/raw_counter.py")
	if err != nil {
		t.Fatal(err)
	}
	l := exportertest.Start(t, `apiVersion: jsn.dev/v1alpha1
kind: ExporterConfig
metadata: {name: raw}
export:
  counter:
    type: process
    config:
      command: [/usr/bin/python3, `+script+`]
      options: {step: 3}
`)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	d := l.Driver("counter")
	if got, err := d.Call(ctx, "inc"); err != nil || got != int64(3) {
		t.Fatalf("inc = %v, %v", got, err)
	}
	if got, err := d.Call(ctx, "add", 4); err != nil || got != int64(7) {
		t.Fatalf("add(4) = %v, %v", got, err)
	}
	items, err := d.Stream(ctx, "upto", 3)
	if err != nil {
		t.Fatal(err)
	}
	var got []int64
	for {
		var v int64
		if err := items.Next(&v); err == io.EOF {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		got = append(got, v)
	}
	if len(got) != 3 || got[2] != 2 {
		t.Fatalf("upto(3) = %v", got)
	}
}
