package main

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/nats-io/nats.go"

	_ "jsn.dev/jsn/drivers/all"
	"jsn.dev/jsn/drivers/network"
	"jsn.dev/jsn/exporter"
)

// lab is a session (see session.go) serving power.Mock and a network.TCP to a TCP sink.
type lab struct {
	*session
	sink net.Listener
}

func startLab(ctx context.Context, t transport, sink net.Listener) (*lab, error) {
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
	s, err := startSession(ctx, t, cfg)
	if err != nil {
		return nil, err
	}
	return &lab{session: s, sink: sink}, nil
}

// startSink listens on loopback TCP and serves serveSink until closed.
func startSink() (net.Listener, error) {
	sink, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	go serveSink(sink)
	return sink, nil
}

// startLabs starts one lab per transport measured, sharing one sink; closeAll ends them.
func startLabs(ctx context.Context, s *suite) (labs []*lab, sink net.Listener, closeAll func(), err error) {
	if sink, err = startSink(); err != nil {
		return nil, nil, nil, err
	}
	closeAll = func() {
		for _, b := range labs {
			b.close()
		}
		sink.Close()
	}
	for _, t := range s.transports() {
		b, err := startLab(ctx, t, sink)
		if err != nil {
			closeAll()
			return nil, nil, nil, fmt.Errorf("%s: %w", t.label(), err)
		}
		labs = append(labs, b)
	}
	return labs, sink, closeAll, nil
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

func benchCall(ctx context.Context, s *suite) error {
	labs, sink, closeAll, err := startLabs(ctx, s)
	if err != nil {
		return err
	}
	defer closeAll()
	n := 20000
	if s.quick {
		n = 2000
	}
	payload := []byte{0x90} // an empty msgpack array, like a call with no arguments
	g, err := startGRPC(sink.Addr().String())
	if err != nil {
		return err
	}
	defer g.close()

	// Per transport: jsn's call and a raw NATS echo whose two ends are connected like jsn's
	// client and exporter. One gRPC echo for all.
	type callee struct {
		name string // "jsn" or "raw-nats-echo"
		t    transport
		fn   func() error
		ds   []time.Duration
		rate float64
	}
	var cs []*callee
	for _, b := range labs {
		power := b.driver("power")
		cs = append(cs, &callee{name: "jsn", t: b.t, fn: func() error { return power.CallInto(ctx, "on", nil) }})
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
		cs = append(cs, &callee{name: "raw-nats-echo", t: b.t, fn: func() error {
			_, err := cli.Request("bench.echo", payload, 5*time.Second)
			return err
		}})
	}
	grpcC := &callee{name: "grpc-unary-echo", fn: func() error { return g.echo(ctx, payload) }}
	cs = append(cs, grpcC)

	// Interleave them in rounds so none gets a warmer machine.
	for round := 0; round < 10; round++ {
		for _, c := range cs {
			for i := 0; i < 50; i++ { // warm
				if err := c.fn(); err != nil {
					return err
				}
			}
			for i := 0; i < n/10; i++ {
				t0 := time.Now()
				if err := c.fn(); err != nil {
					return err
				}
				c.ds = append(c.ds, time.Since(t0))
			}
		}
	}

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
	for _, c := range cs {
		if c.rate, err = conc(c.fn); err != nil {
			return err
		}
	}
	for _, b := range labs {
		var jsnC, rawC *callee
		for _, c := range cs {
			if c.t == b.t && c.name == "jsn" {
				jsnC = c
			} else if c.t == b.t {
				rawC = c
			}
		}
		tag := " — " + b.t.label()
		s.add(Result{Name: "call latency p50 (power.on, warm)" + tag, Unit: "µs", Value: percentile(jsnC.ds, 50),
			Baseline: map[string]float64{"raw-nats-echo": percentile(rawC.ds, 50), "grpc-unary-echo": percentile(grpcC.ds, 50)},
			RatioTo:  "raw-nats-echo", Target: "≤ 1.3×, < grpc"})
		s.add(Result{Name: "call latency p99 (power.on, warm)" + tag, Unit: "µs", Value: percentile(jsnC.ds, 99),
			Baseline: map[string]float64{"raw-nats-echo": percentile(rawC.ds, 99), "grpc-unary-echo": percentile(grpcC.ds, 99)},
			RatioTo:  "raw-nats-echo", Target: "≤ 1.3×"})
		s.add(Result{Name: "calls/s, 64 concurrent callers" + tag, Unit: "calls/s", Value: jsnC.rate,
			Baseline: map[string]float64{"raw-nats-echo": rawC.rate, "grpc-unary-echo": grpcC.rate}, RatioTo: "raw-nats-echo"})
	}
	return nil
}

func benchStream(ctx context.Context, s *suite) error {
	labs, sink, closeAll, err := startLabs(ctx, s)
	if err != nil {
		return err
	}
	defer closeAll()
	size := int64(1 << 30)
	if s.quick {
		size = 64 << 20
	}
	if s.streamMiB > 0 {
		size = s.streamMiB << 20
	}
	chunk := make([]byte, 64<<10)
	_, _ = rand.Read(chunk)
	g, err := startGRPC(sink.Addr().String())
	if err != nil {
		return err
	}
	defer g.close()

	// Each path moves the same bytes in rounds, interleaved, so a burst of load from elsewhere
	// on the machine hits all of them alike. Besides the rate, the CPU time the whole process
	// (sender, transport, receiver, sink: everything is in process) spent per GiB is recorded:
	// it is much less sensitive to other load than wall time.
	type path struct {
		name string // jsn, jsn-bus, raw-nats-pubsub (per transport), grpc-tunnel, direct-tcp
		t    transport
		run  func() error
		secs float64 // wall
		cpu  float64 // process CPU
	}
	var paths []path
	for _, b := range labs {
		paths = append(paths,
			// jsn forward through network.TCP to the sink, the stream going direct (the default
			// in local mode; directStreams.listen in distributed mode).
			path{name: "jsn", t: b.t, run: func() error {
				return viaListener(ctx, func(ctx context.Context, ln net.Listener) error {
					return network.NewClient(b.driver("network")).Forward(ctx, ln)
				}, size/2, chunk)
			}},
			// The same with the stream's frames through the broker (JSN_DIRECT_STREAMS=off).
			path{name: "jsn-bus", t: b.t, run: func() error {
				return viaListener(ctx, func(ctx context.Context, ln net.Listener) error {
					return network.NewClient(b.driverBus("network")).Forward(ctx, ln)
				}, size/2, chunk)
			}},
			// Raw NATS publish → subscribe of the same bytes on the same server, the publisher
			// connected like jsn's client and the subscriber like the exporter.
			path{name: "raw-nats-pubsub", t: b.t, run: func() error { _, err := b.rawPubSub(size/2, chunk); return err }})
	}
	paths = append(paths,
		// A gRPC bidirectional-stream tunnel over loopback TCP to the same sink.
		path{name: "grpc-tunnel", run: func() error { return viaListener(ctx, g.forward, size/2, chunk) }},
		// Direct loopback TCP to the same sink.
		path{name: "direct-tcp", run: func() error { _, err := tcpSend(sink.Addr().String(), size/2, chunk); return err }})
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
				return fmt.Errorf("%s %s: %w", p.name, p.t, err)
			}
			p.secs += time.Since(t0).Seconds()
			p.cpu += (cpuTime() - c0).Seconds()
		}
	}
	rate := func(p path) float64 { return float64(size) / p.secs / 1e6 }
	cpu := func(p path) float64 { return p.cpu * float64(1<<30) / float64(size) }
	shared, sharedCPU := map[string]float64{}, map[string]float64{}
	for _, p := range paths {
		if p.t == "" {
			shared[p.name], sharedCPU[p.name] = rate(p), cpu(p)
		}
	}
	reported := false
	for _, t := range s.transports() {
		var jsnP, busP, rawP *path
		for i := range paths {
			switch {
			case paths[i].t == t && paths[i].name == "jsn":
				jsnP = &paths[i]
			case paths[i].t == t && paths[i].name == "jsn-bus":
				busP = &paths[i]
			case paths[i].t == t:
				rawP = &paths[i]
			}
		}
		tag := " — " + t.label()
		if jsnP == nil { // -stream-paths without jsn: report the baselines alone
			if rawP != nil {
				s.add(Result{Name: "byte stream, raw-nats-pubsub" + tag, Unit: "MB/s", Value: rate(*rawP)})
				s.add(Result{Name: "byte stream CPU per GiB, raw-nats-pubsub" + tag, Unit: "cpu-s/GiB", Value: cpu(*rawP)})
			}
			continue
		}
		bl, blCPU := maps.Clone(shared), maps.Clone(sharedCPU)
		if rawP != nil {
			bl["raw-nats-pubsub"], blCPU["raw-nats-pubsub"] = rate(*rawP), cpu(*rawP)
		}
		s.add(Result{Name: fmt.Sprintf("byte stream, %d MiB, jsn forward + network.TCP", size>>20) + tag, Unit: "MB/s", Value: rate(*jsnP),
			Baseline: bl, RatioTo: "raw-nats-pubsub", Target: "≥ 0.7×, > grpc"})
		s.add(Result{Name: "byte stream CPU per GiB (whole process)" + tag, Unit: "cpu-s/GiB", Value: cpu(*jsnP),
			Baseline: blCPU, RatioTo: "raw-nats-pubsub", Note: "lower is better"})
		if busP != nil {
			s.add(Result{Name: "byte stream, frames through the broker (JSN_DIRECT_STREAMS=off)" + tag, Unit: "MB/s", Value: rate(*busP),
				Baseline: bl, RatioTo: "raw-nats-pubsub"})
		}
		reported = true
	}
	if !reported {
		for name := range shared {
			s.add(Result{Name: "byte stream, " + name, Unit: "MB/s", Value: shared[name]})
			s.add(Result{Name: "byte stream CPU per GiB, " + name, Unit: "cpu-s/GiB", Value: sharedCPU[name]})
		}
	}
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

func (b *session) rawPubSub(size int64, chunk []byte) (float64, error) {
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
