package bus

import (
	"context"
	"io"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"jsn.dev/jsn/bus/wire"
)

// fastProbes makes client muxes made from now on probe every 2 ms.
func fastProbes(t *testing.T) {
	old := probeEvery
	probeEvery = 2 * time.Millisecond
	t.Cleanup(func() { probeEvery = old })
}

// TestProbeOnlyAcceptedStreams: a client's presence probes go only to streams the exporter
// accepted. Stream B is opened while stream A is open (so probes run) and the exporter answers B's
// opening call only after 20 probes went by; had a probe named B, the exporter — which does not
// know B yet — would have reset it with "not open".
func TestProbeOnlyAcceptedStreams(t *testing.T) {
	fastProbes(t)
	s := runServer(t)
	exp, cli := dial(t, s, "exp"), dial(t, s, "cli")
	ss, err := exp.ServeStreams("e1")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(ss.Close)
	var probes atomic.Int64
	wc := dial(t, s, "watch")
	watch, err := wc.Subscribe(wire.StreamWildcard("e1"), "", func(m *Msg) {
		if m.Reply != "" {
			probes.Add(1)
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	defer watch.Unsubscribe()
	acc := make(chan *Stream, 2)
	second := false
	sub, err := exp.Subscribe(wire.CallWildcard("e1"), "", func(m *Msg) {
		if second {
			from := probes.Load()
			for probes.Load() < from+20 {
				time.Sleep(time.Millisecond) // let probes go by while B is unknown here
			}
		}
		second = true
		st, hdr, err := ss.Accept(m, "lease1")
		if err != nil {
			_ = m.RespondError(err)
			return
		}
		_ = m.Respond(hdr, nil)
		acc <- st
	})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()
	ctx := context.Background()
	for _, c := range []*Conn{exp, wc} {
		if err := c.Flush(ctx); err != nil {
			t.Fatal(err)
		}
	}
	a, err := cli.OpenStream(ctx, "e1", wire.CallSubject("e1", "net", "connect"), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	ea := <-acc
	defer ea.Close()
	b, err := cli.OpenStream(ctx, "e1", wire.CallSubject("e1", "net", "connect"), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	eb := <-acc
	go func() {
		_, _ = eb.Write([]byte("ok"))
		_ = eb.CloseWrite()
	}()
	if got, err := io.ReadAll(b); err != nil || string(got) != "ok" {
		t.Fatalf("stream B read %q, %v; want \"ok\" (a probe reached the exporter before B was accepted)", got, err)
	}
}

// TestProbeDoesNotDecideDirectPath: a probe that reaches the exporter while its direct-connection
// offer is pending (the client is connecting) leaves the offer pending: taken as the client's
// choice of the bus, it would close the client's connection as it arrives.
func TestProbeDoesNotDecideDirectPath(t *testing.T) {
	s := runServer(t)
	d := unixDirect(t)
	cli, accepted, _ := serveStreams(t, s, d, nil)
	h := wire.Header{}
	h.Set(wire.HeaderStream, "probeme")
	h.Set(wire.HeaderStreamWindow, strconv.Itoa(1<<20))
	h.Set(HeaderStreamDirect, "1")
	reply, err := cli.Request(context.Background(), wire.CallSubject("e1", "net", "connect"), h, nil)
	if err != nil {
		t.Fatal(err)
	}
	es := <-accepted
	defer es.Close()
	if reply.Header.Get(HeaderStreamDirect) == "" {
		t.Fatal("the exporter offered no direct connection")
	}
	// The probe, then a frame for a stream the exporter never had: its reset, which follows the
	// probe on the same subscription, shows the probe was handled.
	resets := make(chan string, 2)
	out := wire.StreamOutWildcard("e1", wire.NoLease)
	sub, err := cli.Subscribe(out, "", func(m *Msg) {
		if f, err := wire.DecodeFrame(m.Data); err == nil && f.Type == wire.FrameReset {
			resets <- m.Subject
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()
	if err := cli.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	prefix := strings.TrimSuffix(wire.StreamSubject("e1", wire.NoLease, "x"), "x")
	credit := wire.AppendFrame(nil, wire.Frame{Type: wire.FrameCredit, Offset: 1 << 20})
	if err := cli.PublishRequest(prefix+"probeme", "_INBOX.cli.probe", credit); err != nil {
		t.Fatal(err)
	}
	if err := cli.Publish(prefix+"neverseen", nil, credit); err != nil {
		t.Fatal(err)
	}
	select {
	case <-resets:
	case <-time.After(10 * time.Second):
		t.Fatal("no reset for a stream the exporter never had")
	}
	select {
	case <-es.decided:
		t.Fatal("a probe decided the stream's path while the direct offer was pending")
	default:
	}
	// The client's connection still becomes the stream's path.
	dc, err := dialDirect(context.Background(), reply.Header.Get(HeaderStreamDirect), reply.Header.Get(HeaderStreamToken), reply.Header.Get(HeaderStreamPin))
	if err != nil {
		t.Fatal(err)
	}
	defer dc.Close()
	if waitDecided(t, es) == nil {
		t.Fatal("the client's direct connection did not become the stream's path")
	}
}
