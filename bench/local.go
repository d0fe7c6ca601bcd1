package main

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/nats-io/nats.go"

	"jsn.dev/jsn/client"
	_ "jsn.dev/jsn/drivers/all"
	"jsn.dev/jsn/drivers/network"
	"jsn.dev/jsn/exporter"
)

// lab is a local session (embedded server + exporter + lease) with a TCP sink for streams.
type lab struct {
	l    *exporter.Local
	c    *client.Client
	ex   *client.Exporter
	sink net.Listener
}

func startLab(ctx context.Context) (*lab, error) {
	sink, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	go serveSink(sink)
	port := sink.Addr().(*net.TCPAddr).Port
	cfg, err := exporter.ParseConfig("bench.yaml", []byte(fmt.Sprintf(`apiVersion: jsn.dev/v1alpha1
kind: ExporterConfig
metadata: {name: bench}
export:
  power: {type: power.Mock}
  network:
    type: network.TCP
    config: {host: 127.0.0.1, port: %d}
`, port)))
	if err != nil {
		return nil, err
	}
	l, err := exporter.StartLocal(ctx, cfg, exporter.LocalOptions{})
	if err != nil {
		return nil, err
	}
	c, err := client.Connect(ctx, l.URL, "bench")
	if err != nil {
		l.Close()
		return nil, err
	}
	return &lab{l: l, c: c, ex: c.Exporter(l.Exporter, l.Lease), sink: sink}, nil
}

func (b *lab) close() {
	b.c.Close()
	b.l.Close()
	b.sink.Close()
}

// serveSink accepts connections, reads everything, and replies with the byte count on EOF.
func serveSink(ln net.Listener) {
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		go func() {
			defer c.Close()
			// Read in big chunks like a real service: io.Copy to io.Discard would read 8 KiB
			// at a time and make the sink, not the path measured, cost most of the CPU.
			buf := make([]byte, 256<<10)
			var n int64
			for {
				m, err := c.Read(buf)
				n += int64(m)
				if err != nil {
					break
				}
			}
			fmt.Fprintf(c, "%d\n", n)
		}()
	}
}

type unixDialer struct{ path string }

func (d unixDialer) Dial(_, _ string) (net.Conn, error) { return net.Dial("unix", d.path) }

// rawClient connects plain nats.go to the lab's server the way jsn clients do (Unix socket).
func (b *lab) rawClient() (*nats.Conn, error) {
	path := strings.TrimPrefix(b.l.URL, "unix://")
	return nats.Connect("nats://localhost", nats.SetCustomDialer(unixDialer{path}))
}

// rawServerSide connects plain nats.go in process, the way the exporter is connected.
func (b *lab) rawServerSide() (*nats.Conn, error) {
	return nats.Connect("", nats.InProcessServer(b.l))
}

func benchCall(ctx context.Context, s *suite) error {
	b, err := startLab(ctx)
	if err != nil {
		return err
	}
	defer b.close()
	n := 20000
	if s.quick {
		n = 2000
	}
	power := b.ex.Driver("power")
	jsnCall := func() error { return power.CallInto(ctx, "on", nil) }

	srv, err := b.rawServerSide()
	if err != nil {
		return err
	}
	defer srv.Close()
	if _, err := srv.Subscribe("bench.echo", func(m *nats.Msg) { _ = m.Respond(m.Data) }); err != nil {
		return err
	}
	_ = srv.Flush()
	cli, err := b.rawClient()
	if err != nil {
		return err
	}
	defer cli.Close()
	payload := []byte{0x90} // an empty msgpack array, like a call with no arguments
	rawCall := func() error { _, err := cli.Request("bench.echo", payload, 5*time.Second); return err }
	g, err := startGRPC(b.sink.Addr().String())
	if err != nil {
		return err
	}
	defer g.close()
	grpcCall := func() error { return g.echo(ctx, payload) }

	// Interleave them in rounds so none gets a warmer machine.
	var jsnD, rawD, grpcD []time.Duration
	for round := 0; round < 10; round++ {
		for _, v := range []struct {
			fn  func() error
			dst *[]time.Duration
		}{{jsnCall, &jsnD}, {rawCall, &rawD}, {grpcCall, &grpcD}} {
			for i := 0; i < 50; i++ { // warm
				if err := v.fn(); err != nil {
					return err
				}
			}
			for i := 0; i < n/10; i++ {
				t0 := time.Now()
				if err := v.fn(); err != nil {
					return err
				}
				*v.dst = append(*v.dst, time.Since(t0))
			}
		}
	}
	s.add(Result{Name: "call latency p50 (power.on, warm)", Unit: "µs", Value: percentile(jsnD, 50),
		Baseline: map[string]float64{"raw-nats-echo": percentile(rawD, 50), "grpc-unary-echo": percentile(grpcD, 50)},
		RatioTo:  "raw-nats-echo", Target: "≤ 1.3×, < grpc"})
	s.add(Result{Name: "call latency p99 (power.on, warm)", Unit: "µs", Value: percentile(jsnD, 99),
		Baseline: map[string]float64{"raw-nats-echo": percentile(rawD, 99), "grpc-unary-echo": percentile(grpcD, 99)},
		RatioTo:  "raw-nats-echo", Target: "≤ 1.3×"})

	// Throughput with 64 concurrent callers.
	conc := func(fn func() error) (float64, error) {
		per := n / 64
		if per < 20 {
			per = 20
		}
		var wg sync.WaitGroup
		errs := make(chan error, 64)
		t0 := time.Now()
		for w := 0; w < 64; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; i < per; i++ {
					if err := fn(); err != nil {
						errs <- err
						return
					}
				}
			}()
		}
		wg.Wait()
		close(errs)
		if err := <-errs; err != nil {
			return 0, err
		}
		return float64(per*64) / time.Since(t0).Seconds(), nil
	}
	jt, err := conc(jsnCall)
	if err != nil {
		return err
	}
	rt, err := conc(rawCall)
	if err != nil {
		return err
	}
	gt, err := conc(grpcCall)
	if err != nil {
		return err
	}
	s.add(Result{Name: "calls/s, 64 concurrent callers", Unit: "calls/s", Value: jt,
		Baseline: map[string]float64{"raw-nats-echo": rt, "grpc-unary-echo": gt}, RatioTo: "raw-nats-echo"})
	return nil
}

func benchStream(ctx context.Context, s *suite) error {
	b, err := startLab(ctx)
	if err != nil {
		return err
	}
	defer b.close()
	size := int64(1 << 30)
	if s.quick {
		size = 64 << 20
	}
	if s.streamMiB > 0 {
		size = s.streamMiB << 20
	}
	chunk := make([]byte, 64<<10)
	_, _ = rand.Read(chunk)
	g, err := startGRPC(b.sink.Addr().String())
	if err != nil {
		return err
	}
	defer g.close()

	// Each path moves the same bytes in two rounds, interleaved, so a burst of load from
	// elsewhere on the machine hits all of them alike. Besides the rate, the CPU time the whole
	// process (sender, transport, receiver, sink: everything is in process) spent per GiB is
	// recorded: it is much less sensitive to other load than wall time.
	type path struct {
		name string
		run  func() error
		secs float64 // wall
		cpu  float64 // process CPU
	}
	paths := []path{
		// jsn forward through network.TCP to the sink.
		{name: "jsn", run: func() error {
			return viaListener(ctx, func(ctx context.Context, ln net.Listener) error {
				return network.NewClient(b.ex.Driver("network")).Forward(ctx, ln)
			}, size/2, chunk)
		}},
		// Raw NATS publish → subscribe of the same bytes on the same server (client via the
		// Unix socket, like jsn's client; subscriber in process, like the exporter).
		{name: "raw-nats-pubsub", run: func() error { _, err := b.rawPubSub(size/2, chunk); return err }},
		// A gRPC bidirectional-stream tunnel over loopback TCP to the same sink.
		{name: "grpc-tunnel", run: func() error { return viaListener(ctx, g.forward, size/2, chunk) }},
		// Direct loopback TCP to the same sink.
		{name: "direct-tcp", run: func() error { _, err := tcpSend(b.sink.Addr().String(), size/2, chunk); return err }},
	}
	if s.streamPaths != "" {
		want := strings.Split(s.streamPaths, ",")
		paths = slices.DeleteFunc(paths, func(p path) bool { return !slices.Contains(want, p.name) })
		if len(paths) == 0 {
			return fmt.Errorf("-stream-paths %q names no path", s.streamPaths)
		}
	}
	for range 2 {
		for i := range paths {
			p := &paths[i]
			c0 := cpuTime()
			t0 := time.Now()
			if err := p.run(); err != nil {
				return fmt.Errorf("%s: %w", p.name, err)
			}
			p.secs += time.Since(t0).Seconds()
			p.cpu += (cpuTime() - c0).Seconds()
		}
	}
	rate, cpu := map[string]float64{}, map[string]float64{}
	for _, p := range paths {
		rate[p.name] = float64(size) / p.secs / 1e6
		cpu[p.name] = p.cpu * float64(1<<30) / float64(size)
	}
	jsnRate, jsnCPU := rate["jsn"], cpu["jsn"]
	delete(rate, "jsn")
	delete(cpu, "jsn")
	if jsnRate == 0 { // -stream-paths without jsn: report the baselines alone
		for name, r := range rate {
			s.add(Result{Name: "byte stream, " + name, Unit: "MB/s", Value: r})
			s.add(Result{Name: "byte stream CPU per GiB, " + name, Unit: "cpu-s/GiB", Value: cpu[name]})
		}
		return nil
	}
	s.add(Result{Name: fmt.Sprintf("byte stream, %d MiB through jsn forward + network.TCP", size>>20), Unit: "MB/s", Value: jsnRate,
		Baseline: rate, RatioTo: "raw-nats-pubsub", Target: "≥ 0.7×, > grpc"})
	s.add(Result{Name: "byte stream CPU per GiB (whole process)", Unit: "cpu-s/GiB", Value: jsnCPU,
		Baseline: cpu, RatioTo: "raw-nats-pubsub", Note: "lower is better"})
	return nil
}

// viaListener runs serve on a fresh loopback listener (a port forward) and sends size bytes
// through it to the sink.
func viaListener(ctx context.Context, serve func(context.Context, net.Listener) error, size int64, chunk []byte) error {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- serve(ctx, ln) }()
	_, err = tcpSend(ln.Addr().String(), size, chunk)
	cancel()
	if ferr := <-done; err == nil {
		err = ferr
	}
	return err
}

// cpuTime is the user plus system CPU time this process has used.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// tcpSend writes size bytes to addr, half-closes, and waits for the sink's byte count.
func tcpSend(addr string, size int64, chunk []byte) (float64, error) {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		return 0, err
	}
	defer c.Close()
	t0 := time.Now()
	for sent := int64(0); sent < size; sent += int64(len(chunk)) {
		if _, err := c.Write(chunk); err != nil {
			return 0, err
		}
	}
	if err := c.(*net.TCPConn).CloseWrite(); err != nil {
		return 0, err
	}
	reply, err := io.ReadAll(c)
	if err != nil {
		return 0, err
	}
	el := time.Since(t0)
	if got := strings.TrimSpace(string(reply)); got != fmt.Sprint(size) {
		return 0, fmt.Errorf("sink received %q bytes, want %d", got, size)
	}
	return float64(size) / el.Seconds() / 1e6, nil
}

func (b *lab) rawPubSub(size int64, chunk []byte) (float64, error) {
	sub, err := b.rawServerSide()
	if err != nil {
		return 0, err
	}
	defer sub.Close()
	pub, err := b.rawClient()
	if err != nil {
		return 0, err
	}
	defer pub.Close()
	var got int64
	finished := make(chan struct{})
	s, err := sub.Subscribe("bench.bytes", func(m *nats.Msg) {
		got += int64(len(m.Data))
		if got >= size {
			close(finished)
		}
	})
	if err != nil {
		return 0, err
	}
	_ = s.SetPendingLimits(-1, -1)
	_ = sub.Flush()
	t0 := time.Now()
	for sent := int64(0); sent < size; sent += int64(len(chunk)) {
		if err := pub.Publish("bench.bytes", chunk); err != nil {
			return 0, err
		}
	}
	_ = pub.Flush()
	select {
	case <-finished:
	case <-time.After(2 * time.Minute):
		return 0, errors.New("subscriber did not receive everything (slow consumer?)")
	}
	return float64(size) / time.Since(t0).Seconds() / 1e6, nil
}

// benchCLI times `jsn call power.on` as a whole process inside a session, next to the start of a
// trivial Go binary.
func benchCLI(ctx context.Context, s *suite) error {
	dir, err := os.MkdirTemp("", "jsn-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	jsn, err := buildJSN(dir)
	if err != nil {
		return err
	}
	trivial := filepath.Join(dir, "true")
	src := filepath.Join(dir, "true.go")
	if err := os.WriteFile(src, []byte("package main\nfunc main() {}\n"), 0o644); err != nil {
		return err
	}
	if out, err := exec.Command("go", "build", "-o", trivial, src).CombinedOutput(); err != nil {
		return fmt.Errorf("build true: %v\n%s", err, out)
	}
	b, err := startLab(ctx)
	if err != nil {
		return err
	}
	defer b.close()
	env := append(os.Environ(), "JSN_HOST="+b.l.URL, "JSN_EXPORTER="+b.l.Exporter, "JSN_LEASE="+b.l.Lease)
	n := 50
	if s.quick {
		n = 10
	}
	run := func(argv ...string) ([]time.Duration, error) {
		var ds []time.Duration
		for i := 0; i < n+2; i++ {
			cmd := exec.Command(argv[0], argv[1:]...)
			cmd.Env = env
			t0 := time.Now()
			if out, err := cmd.CombinedOutput(); err != nil {
				return nil, fmt.Errorf("%s: %v: %s", strings.Join(argv, " "), err, out)
			}
			if i >= 2 {
				ds = append(ds, time.Since(t0))
			}
		}
		return ds, nil
	}
	jd, err := run(jsn, "call", "power.on")
	if err != nil {
		return err
	}
	td, err := run(trivial)
	if err != nil {
		return err
	}
	s.add(Result{Name: "whole-process `jsn call power.on` p50", Unit: "ms", Value: percentile(jd, 50) / 1000,
		Baseline: map[string]float64{"go-binary-start": percentile(td, 50) / 1000}, Target: "≤ 30 ms"})
	return nil
}
