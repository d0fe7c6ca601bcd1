package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/nats-io/nats.go"

	"jsn.dev/jsn/drivers/can"
	"jsn.dev/jsn/drivers/gpio"
	"jsn.dev/jsn/internal/kerneltest"
)

// benchKernel measures a GPIO toggle and a CAN frame round trip on real kernel devices in a
// QEMU guest (gpio-sim, vcan; see internal/kerneltest), through jsn from the host — client, bus,
// the exporter in the guest, the ioctl or socket, and back — next to, in the same run:
//   - direct: the same driver code called in-process in the guest (internal/kbench), no bus;
//   - nats: a bare NATS request-reply between the host and a responder in the guest, the floor
//     of any call through the bus to that guest (QEMU user networking included).
//
// The guest runs under TCG (no KVM here), so every figure is slower than on hardware; the
// ratios are what carry over.
func benchKernel(ctx context.Context, s *suite) error {
	n := 2000
	if s.quick {
		n = 300
	}
	dir, err := os.MkdirTemp("", "jsn-bench-kernel-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	kb := filepath.Join(dir, "kbench")
	build := exec.CommandContext(ctx, "go", "build", "-o", kb, "./internal/kbench")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		return fmt.Errorf("build kbench: %v\n%s", err, out)
	}
	var log strings.Builder
	start := time.Now()
	g, err := kerneltest.Boot(ctx, kerneltest.Options{GPIO: true, CAN: true, Files: map[string]string{"bin/kbench": kb}, Log: &log})
	if errors.Is(err, kerneltest.ErrSkip) {
		return skipped{err.Error()}
	}
	if err != nil {
		return fmt.Errorf("%v\n%s", err, log.String())
	}
	defer g.Close()
	fmt.Fprintf(os.Stderr, "  guest %s booted in %s\n", g.Kernel.Release, time.Since(start).Round(100*time.Millisecond))
	ex, err := g.Export(ctx, "kbench", `apiVersion: jsn.dev/v1alpha1
kind: ExporterConfig
metadata: {name: kbench}
export:
  out: {type: gpio.Output, config: {device: jsn-sim, line: 0}}
  bus: {type: can.Raw, config: {channel: vcan0}}
`)
	if err != nil {
		return err
	}
	defer ex.Stop(context.Background())

	// The three round trips are measured interleaved (one of each per iteration), so that they
	// see the same load on this shared machine.
	out := gpio.NewClient(ex.Driver("out"))
	gpioOp := func(i int) error { return out.Set(ctx, i%2 == 0) }

	// CAN: send a frame, wait for it on a dump stream (the kernel loops it back to the stream's
	// socket, as it would deliver a frame from another node).
	bus := can.NewClient(ex.Driver("bus"))
	dctx, stopDump := context.WithCancel(ctx)
	defer stopDump()
	frames := make(chan can.Frame, 1024)
	go bus.Dump(dctx, "123:7FF", 0, func(f can.Frame) error { frames <- f; return nil })
	ready := false
	for i := 0; i < 200 && !ready; i++ { // the stream is open once a frame comes through
		if err := bus.Send(ctx, can.Frame{ID: 0x123}); err != nil {
			return err
		}
		select {
		case <-frames:
			ready = true
		case <-time.After(100 * time.Millisecond):
		}
	}
	if !ready {
		return errors.New("can: the dump stream saw no frame")
	}
	time.Sleep(100 * time.Millisecond)
	for len(frames) > 0 {
		<-frames
	}
	canOp := func(i int) error {
		want := byte(i)
		if err := bus.Send(ctx, can.Frame{ID: 0x123, Data: []byte{want}}); err != nil {
			return err
		}
		timeout := time.NewTimer(10 * time.Second)
		defer timeout.Stop()
		for {
			select {
			case f := <-frames:
				if len(f.Data) == 1 && f.Data[0] == want {
					return nil
				}
			case <-timeout.C:
				return errors.New("frame lost")
			}
		}
	}

	// nats: request-reply with a responder in the guest.
	if _, err := g.MustRun(ctx, "kbench -echo "+g.GuestURL()+" >/tmp/kbench-echo.log 2>&1 &"); err != nil {
		return err
	}
	nc, err := nats.Connect(g.URL)
	if err != nil {
		return err
	}
	defer nc.Close()
	payload := make([]byte, 64)
	deadline := time.Now().Add(30 * time.Second)
	for {
		if _, err := nc.Request("kbench.echo", payload, time.Second); err == nil {
			break
		} else if time.Now().After(deadline) {
			echoLog, _, _ := g.Run(ctx, "cat /tmp/kbench-echo.log")
			return fmt.Errorf("kbench echo does not answer: %v\n%s", err, echoLog)
		}
	}
	natsOp := func(int) error { _, err := nc.Request("kbench.echo", payload, 10*time.Second); return err }

	times, err := timeInterleaved(n, 50, gpioOp, canOp, natsOp)
	stopDump()
	if err != nil {
		return err
	}
	gpioJSN, canJSN, natsRT := times[0], times[1], times[2]

	// direct, in the guest.
	res, err := g.MustRun(ctx, fmt.Sprintf("kbench -gpio-chip jsn-sim -gpio-line 1 -can vcan1 -n %d", n))
	if err != nil {
		return err
	}
	var direct map[string]float64
	if err := json.Unmarshal([]byte(res[strings.LastIndex(strings.TrimSpace(res), "\n")+1:]), &direct); err != nil {
		return fmt.Errorf("kbench output %q: %v", res, err)
	}

	note := fmt.Sprintf("QEMU TCG guest (kernel %s), %d iterations; direct = the same driver code in the guest without the bus", g.Kernel.Release, n)
	for _, m := range []struct {
		name string
		p    float64
		jsn  []time.Duration
		key  string
	}{
		{"gpio toggle round trip p50", 50, gpioJSN, "gpio_p50"},
		{"gpio toggle round trip p99", 99, gpioJSN, "gpio_p99"},
		{"can frame round trip p50", 50, canJSN, "can_p50"},
		{"can frame round trip p99", 99, canJSN, "can_p99"},
	} {
		s.add(Result{
			Name: m.name, Unit: "µs", Value: percentile(m.jsn, m.p),
			Baseline: map[string]float64{"direct in guest": direct[m.key], "nats req-reply host↔guest": percentile(natsRT, m.p)},
			RatioTo:  "nats req-reply host↔guest", Target: "≤ 2× nats req-reply", Note: note,
		})
	}
	return nil
}

// timeInterleaved runs each op warm times unmeasured, then n rounds of one call of each op in
// turn, and returns each op's durations.
func timeInterleaved(n, warm int, ops ...func(i int) error) ([][]time.Duration, error) {
	ds := make([][]time.Duration, len(ops))
	for i := 0; i < warm+n; i++ {
		for k, op := range ops {
			t := time.Now()
			if err := op(i); err != nil {
				return nil, err
			}
			if i >= warm {
				ds[k] = append(ds[k], time.Since(t))
			}
		}
	}
	return ds, nil
}
