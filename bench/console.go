package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"time"

	"github.com/creack/pty"
	"golang.org/x/term"

	"jsn.dev/jsn/client"
	"jsn.dev/jsn/drivers/serial"
	"jsn.dev/jsn/exporter"
)

// echoPty is a pseudo-terminal whose master end is served by `cat` (an echo device in its own
// process); Path is the slave end, opened like /dev/ttyUSB0.
type echoPty struct {
	Path          string
	master, slave *os.File
	cmd           *exec.Cmd
}

func startEchoPty() (*echoPty, error) {
	if _, err := exec.LookPath("cat"); err != nil {
		return nil, skipped{"no cat to serve as the echo device"}
	}
	master, slave, err := pty.Open()
	if err != nil {
		return nil, skipped{fmt.Sprintf("no pseudo-terminals here: %v", err)}
	}
	if _, err := term.MakeRaw(int(slave.Fd())); err != nil {
		master.Close()
		slave.Close()
		return nil, err
	}
	cmd := exec.Command("cat")
	cmd.Stdin, cmd.Stdout = master, master
	if err := cmd.Start(); err != nil {
		master.Close()
		slave.Close()
		return nil, err
	}
	return &echoPty{Path: slave.Name(), master: master, slave: slave, cmd: cmd}, nil
}

func (p *echoPty) close() {
	_ = p.cmd.Process.Kill()
	_ = p.cmd.Wait()
	p.master.Close()
	p.slave.Close()
}

// roundTrips writes one byte and reads its echo n times (after a warm-up) and returns the
// latencies.
func roundTrips(rw io.ReadWriter, n int) ([]time.Duration, error) {
	key, echo := []byte{'k'}, make([]byte, 1)
	ds := make([]time.Duration, 0, n)
	for i := 0; i < n+20; i++ {
		t0 := time.Now()
		if _, err := rw.Write(key); err != nil {
			return nil, err
		}
		if _, err := io.ReadFull(rw, echo); err != nil {
			return nil, err
		}
		if i >= 20 {
			ds = append(ds, time.Since(t0))
		}
	}
	return ds, nil
}

// benchConsole times a keystroke round trip through serial.Port on a real pty (client → bus →
// exporter → pty → echo process → pty → exporter → bus → client) next to the same round trip
// written straight to the pty.
func benchConsole(ctx context.Context, s *suite) error {
	dev, err := startEchoPty()
	if err != nil {
		return err
	}
	defer dev.close()
	cfg, err := exporter.ParseConfig("console.yaml", []byte(fmt.Sprintf(`apiVersion: jsn.dev/v1alpha1
kind: ExporterConfig
metadata: {name: bench-console}
export:
  console:
    type: serial.Port
    config: {url: %q}
`, dev.Path)))
	if err != nil {
		return err
	}
	l, err := exporter.StartLocal(ctx, cfg, exporter.LocalOptions{})
	if err != nil {
		return err
	}
	defer l.Close()
	c, err := client.Connect(ctx, l.URL, "bench")
	if err != nil {
		return err
	}
	defer c.Close()
	n := 5000
	if s.quick {
		n = 1000
	}
	var jd, dd []time.Duration
	for round := 0; round < 5; round++ {
		st, err := serial.NewClient(c.Exporter(l.Exporter, l.Lease).Driver("console")).Connect(ctx)
		if err != nil {
			return err
		}
		d, err := roundTrips(st, n/5)
		st.Close()
		if err != nil {
			return fmt.Errorf("jsn console: %w", err)
		}
		jd = append(jd, d...)
		// The baseline: the same echo device on a pty of its own, written and read directly.
		direct, err := startEchoPty()
		if err != nil {
			return err
		}
		d, err = roundTrips(direct.slave, n/5)
		direct.close()
		if err != nil {
			return fmt.Errorf("direct pty: %w", err)
		}
		dd = append(dd, d...)
	}
	s.add(Result{Name: "console keystroke round trip p50 (serial.Port on a pty)", Unit: "µs", Value: percentile(jd, 50),
		Baseline: map[string]float64{"direct-pty": percentile(dd, 50)}, RatioTo: "direct-pty"})
	s.add(Result{Name: "console keystroke round trip p99 (serial.Port on a pty)", Unit: "µs", Value: percentile(jd, 99),
		Baseline: map[string]float64{"direct-pty": percentile(dd, 99)}, RatioTo: "direct-pty", Target: "≤ 2000 µs"})
	return nil
}
