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
//
// The figures with targets are measured as users run drivers: the session (embedded server,
// exporter, Python process) in one process, as `jsn shell` is, and the client in another, as
// `jsn call` or a test program is; the raw NATS echo's responder sits in the session's process
// too. The call is also split into its parts (a bare Go↔Python socket round trip without the SDK,
// drivers/process + the SDK without the bus), and measured once more with the client inside the
// exporter's process (a topology only a Go program embedding both has), for comparison.

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
	file := filepath.Join(dir, "bench.yaml")
	if err := os.WriteFile(file, []byte(fmt.Sprintf(`apiVersion: jsn.dev/v1alpha1
kind: ExporterConfig
metadata: {name: bench}
export:
  py:
    type: process
    config: {command: [%s, -m, jsn_driver, %s]}
  go: {type: bench.Go}
`, python, script)), 0o644); err != nil {
		return err
	}
	n := 20000
	if s.quick {
		n = 2000
	}

	// As users run it: `jsn shell` (embedded server + exporter + the Python process) in one
	// process, the client (`jsn call`, a test program) in another.
	sh, err := startShellProcess(ctx, file)
	if err != nil {
		return err
	}
	defer sh.close()
	o := client.Options{Host: sh.info.URL, Exporter: sh.info.Exporter, Lease: sh.info.Lease, Name: "bench"}
	cl, err := client.ConnectWith(ctx, o)
	if err != nil {
		return err
	}
	defer cl.Close()
	raw, err := nats.Connect("nats://localhost", nats.SetCustomDialer(unixDialer{strings.TrimPrefix(sh.info.URL, "unix://")}))
	if err != nil {
		return err
	}
	defer raw.Close()
	ex := cl.Exporter(sh.info.Exporter, sh.info.Lease)
	py, gd := ex.Driver("py"), ex.Driver("go")
	ds, err := measureCalls(ctx, py, gd, raw, n)
	if err != nil {
		return err
	}
	s.add(Result{Name: "call latency p50, Python driver (process; client in its own process)", Unit: "µs", Value: percentile(ds[0], 50),
		Baseline: map[string]float64{"go-driver": percentile(ds[1], 50), "raw-nats-echo": percentile(ds[2], 50)},
		RatioTo:  "go-driver", Target: "≤ 2×", Note: machineNote()})
	echo, alone, err := measureSplit(ctx, script, n)
	if err != nil {
		return fmt.Errorf("split: %w", err)
	}
	s.add(Result{Name: "call latency p50, Python driver: its parts", Unit: "µs", Value: percentile(ds[0], 50),
		Baseline: map[string]float64{"1-socket-echo-no-sdk": percentile(echo, 50), "2-driver-alone-no-bus": percentile(alone, 50),
			"3-go-driver": percentile(ds[1], 50)}, Note: "end to end next to: a bare Go↔Python socket round trip; drivers/process + the SDK without the bus; the Go driver end to end"})
	s.add(Result{Name: "call latency p99, Python driver (process; client in its own process)", Unit: "µs", Value: percentile(ds[0], 99),
		Baseline: map[string]float64{"go-driver": percentile(ds[1], 99), "raw-nats-echo": percentile(ds[2], 99)},
		RatioTo:  "go-driver"})

	size := int64(1 << 30)
	if s.quick {
		size = 128 << 20
	}
	if s.streamMiB > 0 {
		size = s.streamMiB << 20
	}
	pyRate, goRate, err := measureStream(ctx, py, gd, size)
	if err != nil {
		return err
	}
	s.add(Result{Name: fmt.Sprintf("byte stream out of a Python driver (%d MiB; client in its own process)", size>>20), Unit: "MB/s", Value: pyRate,
		Baseline: map[string]float64{"go-driver": goRate}, RatioTo: "go-driver", Target: "≥ 0.5×", Note: machineNote()})

	// For comparison: everything in the benchmark's process (server, exporter, client), a
	// topology only a Go program embedding both exporter and client has.
	sess, err := startSession(ctx, local, mustParse(file))
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
	ds, err = measureCalls(ctx, sess.driver("py"), sess.driver("go"), cli, n)
	if err != nil {
		return err
	}
	s.add(Result{Name: "call latency p50, Python driver (process; client in the exporter's process)", Unit: "µs", Value: percentile(ds[0], 50),
		Baseline: map[string]float64{"go-driver": percentile(ds[1], 50), "raw-nats-echo": percentile(ds[2], 50)},
		RatioTo:  "go-driver", Note: machineNote()})
	pyRate, goRate, err = measureStream(ctx, sess.driver("py"), sess.driver("go"), size)
	if err != nil {
		return err
	}
	s.add(Result{Name: fmt.Sprintf("byte stream out of a Python driver (%d MiB; client in the exporter's process)", size>>20), Unit: "MB/s", Value: pyRate,
		Baseline: map[string]float64{"go-driver": goRate}, RatioTo: "go-driver", Note: machineNote()})
	return nil
}

// measureStream moves size bytes out of the Python driver's source and as many out of the Go
// driver's, in two interleaved halves each after a warm-up, and returns both rates in MB/s.
func measureStream(ctx context.Context, py, gd *client.Driver, size int64) (pyRate, goRate float64, err error) {
	secs := map[string]float64{}
	buf := make([]byte, 512<<10)
	// A first, untimed pass of 8 MiB each warms both paths (the direct stream connection, buffer
	// pools, the Python process's stream thread and socket buffers), as the calls' warm-up does:
	// the figures are the steady-state rates.
	for pass := range 3 {
		half := size / 2
		if pass == 0 {
			half = 8 << 20
		}
		for _, d := range []struct {
			name string
			drv  *client.Driver
		}{{"python", py}, {"go-driver", gd}} {
			t0 := time.Now()
			st, err := d.drv.Open(ctx, "source", half)
			if err != nil {
				return 0, 0, fmt.Errorf("%s: %w", d.name, err)
			}
			_ = st.CloseWrite()
			var got int64
			for {
				k, err := st.Read(buf)
				got += int64(k)
				if err == io.EOF {
					break
				}
				if err != nil {
					return 0, 0, fmt.Errorf("%s: %w", d.name, err)
				}
			}
			_ = st.Close()
			if got != half {
				return 0, 0, fmt.Errorf("%s: got %d bytes, want %d", d.name, got, half)
			}
			if pass > 0 {
				secs[d.name] += time.Since(t0).Seconds()
			}
		}
	}
	return float64(size) / secs["python"] / 1e6, float64(size) / secs["go-driver"] / 1e6, nil
}

func mustParse(file string) *exporter.Config {
	data, err := os.ReadFile(file)
	if err != nil {
		panic(err)
	}
	cfg, err := exporter.ParseConfig(file, data)
	if err != nil {
		panic(err)
	}
	return cfg
}

// measureCalls times n calls each of the Python driver's on, the Go driver's on and a raw NATS
// request/reply, in interleaved rounds so that none gets a warmer machine.
func measureCalls(ctx context.Context, py, gd *client.Driver, raw *nats.Conn, n int) ([3][]time.Duration, error) {
	fns := [3]func() error{
		func() error { return py.CallInto(ctx, "on", nil) },
		func() error { return gd.CallInto(ctx, "on", nil) },
		func() error { _, err := raw.Request("bench.echo", []byte{0x90}, 5*time.Second); return err },
	}
	names := [3]string{"python", "go-driver", "raw-nats-echo"}
	var ds [3][]time.Duration
	for round := 0; round < 10; round++ {
		for i, fn := range fns {
			for range 50 {
				if err := fn(); err != nil {
					return ds, fmt.Errorf("%s: %w", names[i], err)
				}
			}
			for range n / 10 {
				t0 := time.Now()
				if err := fn(); err != nil {
					return ds, fmt.Errorf("%s: %w", names[i], err)
				}
				ds[i] = append(ds[i], time.Since(t0))
			}
		}
	}
	return ds, nil
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
