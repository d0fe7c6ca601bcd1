package main

import (
	"context"
	_ "embed"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/nats-io/nats.go"

	"jsn.dev/jsn/client"
	"jsn.dev/jsn/drivers/driver"
	"jsn.dev/jsn/exporter"
)

// The process benchmark: a call to a Python driver (drivers/process + the SDK) next to the same
// call to a Go driver and a raw NATS request/reply in the same session, and a byte stream out of
// the Python driver next to the same stream out of a Go driver.

//go:embed process_driver.py
var processDriverPy []byte

const python = "/usr/bin/python3"

// goBench is the Go twin of process_driver.py's Bench.
type goBench struct{ on bool }

func (*goBench) Open(context.Context) error  { return nil }
func (*goBench) Reset(context.Context) error { return nil }
func (*goBench) Close() error                { return nil }

func (g *goBench) Methods() []driver.Method {
	return []driver.Method{
		{Name: "on", Doc: "switch on", Kind: driver.KindCall,
			Call: func(context.Context, driver.Args) (any, error) { g.on = true; return nil, nil }},
		{Name: "source", Doc: "n bytes", Kind: driver.KindByteStream,
			Args: []driver.Arg{{Name: "n", Type: driver.TypeInt}},
			Bytes: func(ctx context.Context, a driver.Args, s driver.Stream) error {
				block := make([]byte, 512<<10)
				for i := range block {
					block[i] = 0x5a
				}
				for left := a.Int(0); left > 0; {
					k := min(left, int64(len(block)))
					if _, err := s.Write(block[:k]); err != nil {
						return err
					}
					left -= k
				}
				return nil
			}},
	}
}

func init() {
	driver.MustRegister(driver.Info{Type: "bench.Go", Doc: "the Go twin of the Python bench driver",
		New: func(driver.Env) driver.Driver { return &goBench{} }})
}

func benchProcess(ctx context.Context, s *suite) error {
	if err := exec.Command(python, "-c", "import msgpack").Run(); err != nil {
		return skipped{fmt.Sprintf("%s with msgpack is not installed (apt-get install python3 python3-msgpack)", python)}
	}
	dir, err := os.MkdirTemp("", "jsn-bench-process-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	script := filepath.Join(dir, "bench_driver.py")
	if err := os.WriteFile(script, processDriverPy, 0o644); err != nil {
		return err
	}
	cfg, err := exporter.ParseConfig(filepath.Join(dir, "bench.yaml"), []byte(fmt.Sprintf(`apiVersion: jsn.dev/v1alpha1
kind: ExporterConfig
metadata: {name: bench}
export:
  py:
    type: process
    config: {command: [%s, -m, jsn_driver, %s]}
  go: {type: bench.Go}
`, python, script)))
	if err != nil {
		return err
	}
	sess, err := startSession(ctx, local, cfg)
	if err != nil {
		return err
	}
	defer sess.close()

	srv, err := sess.rawServerSide()
	if err != nil {
		return err
	}
	defer srv.Close()
	if _, err := srv.Subscribe("bench.echo", func(m *nats.Msg) { _ = m.Respond(m.Data) }); err != nil {
		return err
	}
	_ = srv.Flush()
	cli, err := sess.rawClient()
	if err != nil {
		return err
	}
	defer cli.Close()

	n := 20000
	if s.quick {
		n = 2000
	}
	py, gd := sess.driver("py"), sess.driver("go")
	type callee struct {
		name string
		fn   func() error
		ds   []time.Duration
	}
	cs := []*callee{
		{name: "python", fn: func() error { return py.CallInto(ctx, "on", nil) }},
		{name: "go-driver", fn: func() error { return gd.CallInto(ctx, "on", nil) }},
		{name: "raw-nats-echo", fn: func() error { _, err := cli.Request("bench.echo", []byte{0x90}, 5*time.Second); return err }},
	}
	for round := 0; round < 10; round++ { // interleaved rounds: none gets a warmer machine
		for _, c := range cs {
			for i := 0; i < 50; i++ {
				if err := c.fn(); err != nil {
					return fmt.Errorf("%s: %w", c.name, err)
				}
			}
			for i := 0; i < n/10; i++ {
				t0 := time.Now()
				if err := c.fn(); err != nil {
					return fmt.Errorf("%s: %w", c.name, err)
				}
				c.ds = append(c.ds, time.Since(t0))
			}
		}
	}
	s.add(Result{Name: "call latency p50, Python driver (process)", Unit: "µs", Value: percentile(cs[0].ds, 50),
		Baseline: map[string]float64{"go-driver": percentile(cs[1].ds, 50), "raw-nats-echo": percentile(cs[2].ds, 50)},
		RatioTo:  "go-driver", Target: "≤ 2×", Note: machineNote()})
	s.add(Result{Name: "call latency p99, Python driver (process)", Unit: "µs", Value: percentile(cs[0].ds, 99),
		Baseline: map[string]float64{"go-driver": percentile(cs[1].ds, 99), "raw-nats-echo": percentile(cs[2].ds, 99)},
		RatioTo:  "go-driver"})

	size := int64(1 << 30)
	if s.quick {
		size = 128 << 20
	}
	if s.streamMiB > 0 {
		size = s.streamMiB << 20
	}
	secs := map[string]float64{}
	for range 2 {
		for _, d := range []struct {
			name string
			drv  *client.Driver
		}{{"python", py}, {"go-driver", gd}} {
			t0 := time.Now()
			st, err := d.drv.Open(ctx, "source", size/2)
			if err != nil {
				return fmt.Errorf("%s: %w", d.name, err)
			}
			_ = st.CloseWrite()
			buf := make([]byte, 512<<10)
			var got int64
			for {
				k, err := st.Read(buf)
				got += int64(k)
				if err == io.EOF {
					break
				}
				if err != nil {
					return fmt.Errorf("%s: %w", d.name, err)
				}
			}
			_ = st.Close()
			if got != size/2 {
				return fmt.Errorf("%s: got %d bytes, want %d", d.name, got, size/2)
			}
			secs[d.name] += time.Since(t0).Seconds()
		}
	}
	mbps := func(name string) float64 { return float64(size) / secs[name] / 1e6 }
	s.add(Result{Name: fmt.Sprintf("byte stream out of a Python driver (%d MiB)", size>>20), Unit: "MB/s", Value: mbps("python"),
		Baseline: map[string]float64{"go-driver": mbps("go-driver")}, RatioTo: "go-driver", Target: "≥ 0.5×",
		Note: machineNote()})
	return nil
}

// machineNote records what the figures depend on most on a shared machine: the Go scheduler's
// processors and the load (the Python process competes with everything else for a core).
func machineNote() string {
	load := "?"
	if b, err := os.ReadFile("/proc/loadavg"); err == nil {
		if f := strings.Fields(string(b)); len(f) > 0 {
			load = f[0]
		}
	}
	return fmt.Sprintf("GOMAXPROCS=%d, %d CPUs, load average %s (compare with GOMAXPROCS=1: docs/performance.md)", runtime.GOMAXPROCS(0), runtime.NumCPU(), load)
}
