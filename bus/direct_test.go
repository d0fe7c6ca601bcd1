package bus

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"jsn.dev/jsn/bus/wire"
)

func listenDirect(t *testing.T, address, advertise string) *DirectListener {
	t.Helper()
	d, err := ListenDirect(address, advertise)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = d.Close() })
	return d
}

func unixDirect(t *testing.T) *DirectListener {
	return listenDirect(t, "unix:"+filepath.Join(t.TempDir(), "streams.sock"), "")
}

// waitDecided waits until the exporter end knows its path and returns the direct connection.
func waitDecided(t *testing.T, es *Stream) *directConn {
	t.Helper()
	select {
	case <-es.decided:
	case <-time.After(10 * time.Second):
		t.Fatal("exporter end never learned which path the client chose")
	}
	return es.dc.Load()
}

func TestDirectStreamCopiesBothWays(t *testing.T) {
	for _, tc := range []struct{ name, addr string }{
		{"unix", ""},
		{"tcp", "tcp:127.0.0.1:0"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := unixDirect(t)
			if tc.addr != "" {
				d = listenDirect(t, tc.addr, "")
			}
			cs, es, _ := streamPairWith(t, runServer(t), d, nil)
			if cs.dc.Load() == nil || waitDecided(t, es) == nil {
				t.Fatal("stream stayed on the bus although the exporter offered a direct connection")
			}
			checkEcho(t, cs, es)
		})
	}
}

func TestDirectStreamFallsBackToTheBus(t *testing.T) {
	// A closed port stands for an address the client cannot reach.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	unreachable := "tcp:" + ln.Addr().String()
	ln.Close()
	d := listenDirect(t, "tcp:127.0.0.1:0", unreachable)
	cs, es, _ := streamPairWith(t, runServer(t), d, nil)
	if cs.dc.Load() != nil || waitDecided(t, es) != nil {
		t.Fatal("stream went direct through an unreachable address")
	}
	checkEcho(t, cs, es)
}

func TestDirectStreamsDisabledByClient(t *testing.T) {
	d := unixDirect(t)
	cs, es, _ := streamPairWith(t, runServer(t), d, (*Conn).DisableDirectStreams)
	if cs.dc.Load() != nil || es.decided != nil {
		t.Fatal("a client that disabled direct streams was offered or used one")
	}
	checkEcho(t, cs, es)
}

func TestDirectStreamResetReachesPeer(t *testing.T) {
	cs, es, _ := streamPairWith(t, runServer(t), unixDirect(t), nil)
	waitDecided(t, es)
	es.Reset(wire.Errorf(wire.FailedPrecondition, "lease ended"))
	_, err := cs.Read(make([]byte, 10))
	if !errors.Is(err, wire.ErrFailedPrecondition) || !strings.Contains(err.Error(), "lease ended") {
		t.Fatalf("got %v, want FAILED_PRECONDITION lease ended", err)
	}
}

func TestDirectStreamClientCloseCancelsExporterSide(t *testing.T) {
	cs, es, _ := streamPairWith(t, runServer(t), unixDirect(t), nil)
	waitDecided(t, es)
	cs.Close()
	select {
	case <-es.Context().Done():
	case <-time.After(5 * time.Second):
		t.Fatal("exporter side not cancelled after client Close")
	}
}

func TestDirectStreamLostConnectionIsUnavailable(t *testing.T) {
	cs, es, _ := streamPairWith(t, runServer(t), unixDirect(t), nil)
	d := waitDecided(t, es)
	d.c.Close() // as if the exporter host vanished
	_, err := cs.Read(make([]byte, 10))
	if !errors.Is(err, wire.ErrUnavailable) || !strings.Contains(err.Error(), "direct connection lost") {
		t.Fatalf("got %v, want UNAVAILABLE direct connection lost", err)
	}
}

func TestDirectListenerRejectsUnknownToken(t *testing.T) {
	d := unixDirect(t)
	_, err := dialDirect(context.Background(), d.Address(), strings.Repeat("ab", directTokenLen/2), "")
	if err == nil {
		t.Fatal("a made-up token was accepted")
	}
}

func TestDirectStreamOversizedFrameResets(t *testing.T) {
	cs, es, _ := streamPairWith(t, runServer(t), unixDirect(t), nil)
	waitDecided(t, es)
	// The client end sends a length prefix far beyond any real frame.
	var l [4]byte
	binary.BigEndian.PutUint32(l[:], 1<<31)
	d := cs.dc.Load()
	d.lock()
	_, _ = d.c.Write(l[:])
	d.unlock()
	select {
	case <-es.Context().Done():
	case <-time.After(5 * time.Second):
		t.Fatal("oversized frame did not reset the stream")
	}
	if err := context.Cause(es.Context()); !errors.Is(err, wire.ErrInvalidArgument) {
		t.Fatalf("got %v, want INVALID_ARGUMENT", err)
	}
}

func TestListenDirectBadAddress(t *testing.T) {
	for _, a := range []string{"", "udp:1.2.3.4:5", "unix:", "tcp:127.0.0.1:99999"} {
		if _, err := ListenDirect(a, ""); err == nil {
			t.Errorf("ListenDirect(%q) succeeded", a)
		}
	}
	if _, err := ListenDirect("tcp:127.0.0.1:0", "http://x"); err == nil || !strings.Contains(err.Error(), "advertise") {
		t.Errorf("bad advertise address: got %v", err)
	}
}

// FuzzDirectFrames feeds arbitrary bytes to a stream's direct connection reader: it must end
// (never hang) without a panic, having reset the stream or applied valid frames.
func FuzzDirectFrames(f *testing.F) {
	frame := func(fr wire.Frame) []byte {
		b := wire.AppendFrame(nil, fr)
		return append(binary.BigEndian.AppendUint32(nil, uint32(len(b))), b...)
	}
	f.Add(frame(wire.Frame{Type: wire.FrameData, Offset: 0, Data: []byte("hello")}))
	f.Add(append(frame(wire.Frame{Type: wire.FrameData, Data: []byte("x")}), frame(wire.Frame{Type: wire.FrameFin, Offset: 1})...))
	f.Add(frame(wire.Frame{Type: wire.FrameReset, Code: wire.Unavailable, Message: "gone"}))
	f.Add([]byte{0, 0, 0, 3, 1, 2, 3})
	f.Add([]byte{0xff, 0xff, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, data []byte) {
		a, b := net.Pipe()
		m := &streamMux{m: map[string]*Stream{}}
		s := newStream(m, "fuzz", "", "", DefaultWindow)
		d := newDirectConn(a)
		s.dc.Store(d)
		done := make(chan struct{})
		go func() { s.readDirect(d); close(done) }()
		go func() {
			_, _ = b.Write(data)
			b.Close()
		}()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Fatal("reader did not end")
		}
		s.mu.Lock()
		defer s.mu.Unlock()
		for _, b := range s.bufs {
			if !bytes.Contains(data, b) {
				t.Fatalf("buffered %q that was never sent", b)
			}
		}
		if s.recvd > uint64(len(data)) {
			t.Fatalf("received %d bytes from %d of input", s.recvd, len(data))
		}
	})
}

func TestDirectOfferIgnoredFallsBackAfterTTL(t *testing.T) {
	old := directPendingTTL
	directPendingTTL = 200 * time.Millisecond
	t.Cleanup(func() { directPendingTTL = old })
	cli, accepted, _ := serveStreams(t, runServer(t), unixDirect(t), nil)
	// A client that asks for a direct path and then never takes it up nor says otherwise.
	reply := requestDirect(t, cli)
	if reply.Header.Get(HeaderStreamDirect) == "" || len(reply.Header.Get(HeaderStreamToken)) != directTokenLen {
		t.Fatalf("no direct offer in reply header %v", reply.Header)
	}
	es := <-accepted
	defer es.Close()
	// The exporter's write waits for the choice, then goes on the bus.
	done := make(chan error, 1)
	go func() { _, err := es.Write([]byte("hi")); done <- err }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("write still waiting after the offer expired")
	}
	if es.dc.Load() != nil {
		t.Fatal("expired offer left a direct path")
	}
}

func TestDirectTCPIsTLSPinnedByTheOffer(t *testing.T) {
	d := listenDirect(t, "tcp:127.0.0.1:0", "")
	if len(d.pin) != 64 {
		t.Fatalf("TCP listener has pin %q, want a hex SHA-256", d.pin)
	}
	// A listener whose certificate is not the one the offer names (an impostor on the
	// advertised address, say): the client refuses it and the stream stays on the bus.
	d.pin = strings.Repeat("00", 32)
	cs, es, _ := streamPairWith(t, runServer(t), d, nil)
	if cs.dc.Load() != nil || waitDecided(t, es) != nil {
		t.Fatal("client accepted a certificate that does not match the pin")
	}
	checkEcho(t, cs, es)
}

func TestDirectTCPRefusesPlaintext(t *testing.T) {
	d := listenDirect(t, "tcp:127.0.0.1:0", "")
	cli, accepted, _ := serveStreams(t, runServer(t), d, nil)
	reply := requestDirect(t, cli)
	defer (<-accepted).Close()
	// The right token, in the clear: no acknowledgement, the connection is closed.
	c, err := net.Dial("tcp", strings.TrimPrefix(reply.Header.Get(HeaderStreamDirect), "tcp:"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.Write([]byte(reply.Header.Get(HeaderStreamToken))); err != nil {
		t.Fatal(err)
	}
	var b [1]byte
	if n, _ := c.Read(b[:]); n == 1 && b[0] == directAck {
		t.Fatal("a plaintext connection was acknowledged on a TLS listener")
	}
	if d.Accepted() != 0 {
		t.Fatalf("%d streams went direct, want 0", d.Accepted())
	}
}

func TestDirectListenerBoundsHandshakes(t *testing.T) {
	d := unixDirect(t)
	addr := strings.TrimPrefix(d.Address(), "unix:")
	// Connections that never send a token take every handshake slot.
	var idle []net.Conn
	for range maxHandshakes {
		c, err := net.Dial("unix", addr)
		if err != nil {
			t.Fatal(err)
		}
		idle = append(idle, c)
	}
	s := runServer(t)
	cs, es, _ := streamPairWith(t, s, d, nil)
	if cs.dc.Load() != nil || waitDecided(t, es) != nil {
		t.Fatal("a stream went direct while every handshake slot was taken")
	}
	checkEcho(t, cs, es) // and works on the bus
	for _, c := range idle {
		c.Close()
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		cs, es, _ := streamPairWith(t, runServer(t), d, nil)
		direct := cs.dc.Load() != nil
		cs.Close()
		es.Close()
		if direct {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("streams never went direct again after the idle connections closed")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestDirectResetWhileWriting resets a direct stream while its other goroutine writes small
// frames as fast as it can (like a server-streaming call) and the client reads them: the client
// must see the reset (code and message), not "connection lost", which it would if the reset went
// on the bus while a frame was being written and the connection's end overtook it.
func TestDirectResetWhileWriting(t *testing.T) {
	d := unixDirect(t)
	item := make([]byte, 512)
	for i := range 30 {
		// A server per round: exporters of earlier rounds would answer the call too.
		cs, es, _ := streamPairWith(t, runServer(t), d, nil)
		waitDecided(t, es)
		go func() {
			for {
				if _, err := es.Write(item); err != nil {
					return
				}
			}
		}()
		got := make(chan error, 1)
		go func() {
			buf := make([]byte, 64<<10)
			for {
				if _, err := cs.Read(buf); err != nil {
					got <- err
					return
				}
			}
		}()
		time.Sleep(time.Duration(i%5) * time.Millisecond)
		es.Reset(wire.Errorf(wire.PermissionDenied, "lease ended"))
		if err := <-got; !errors.Is(err, wire.ErrPermissionDenied) || !strings.Contains(err.Error(), "lease ended") {
			t.Fatalf("round %d: got %v, want PERMISSION_DENIED lease ended", i, err)
		}
		cs.Close()
	}
}

// TestDirectResetWaitsForFrameInFlight: a reset waits for the data frame being written on the
// direct connection and follows it there, instead of racing it on the bus.
func TestDirectResetWaitsForFrameInFlight(t *testing.T) {
	cs, es, _ := streamPairWith(t, runServer(t), unixDirect(t), nil)
	d := waitDecided(t, es)
	d.lock() // as if a data frame were being written
	done := make(chan struct{})
	go func() {
		es.Reset(wire.Errorf(wire.PermissionDenied, "lease ended"))
		close(done)
	}()
	select {
	case <-done:
		t.Fatal("reset did not wait for the frame in flight")
	case <-time.After(100 * time.Millisecond):
	}
	d.unlock()
	<-done
	_, err := cs.Read(make([]byte, 10))
	if !errors.Is(err, wire.ErrPermissionDenied) || !strings.Contains(err.Error(), "lease ended") {
		t.Fatalf("got %v, want PERMISSION_DENIED lease ended", err)
	}
}

// requestDirect opens a stream on e1 by hand, asking for a direct path, and returns the reply
// without acting on it.
func requestDirect(t *testing.T, cli *Conn) *Msg {
	t.Helper()
	h := wire.Header{}
	h.Set(wire.HeaderStream, "abc123")
	h.Set(wire.HeaderStreamWindow, "65536")
	h.Set(HeaderStreamDirect, "1")
	reply, err := cli.Request(context.Background(), wire.CallSubject("e1", "net", "connect"), h, nil)
	if err != nil {
		t.Fatal(err)
	}
	return reply
}

// TestDirectHandshakesPerSource is the red team's "70 idle unauthenticated TCP connections fill
// the 64 direct-stream handshake slots (then the lease holder falls back to the bus)": idle
// connections from one source take only that source's share of the slots, and a lease holder
// elsewhere still goes direct.
func TestDirectHandshakesPerSource(t *testing.T) {
	d := listenDirect(t, "tcp:127.0.0.1:0", "")
	addr := strings.TrimPrefix(d.Address(), "tcp:")
	dialer := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 2)}}
	var idle []net.Conn
	for range 70 {
		c, err := dialer.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		idle = append(idle, c)
	}
	defer func() {
		for _, c := range idle {
			c.Close()
		}
	}()
	// The listener takes connections in the order they came: the lease holder's (127.0.0.1)
	// comes after every idle one.
	cs, es, _ := streamPairWith(t, runServer(t), d, nil)
	if cs.dc.Load() == nil || waitDecided(t, es) == nil {
		t.Fatal("the lease holder's stream fell back to the bus: idle connections of another source took every slot")
	}
	checkEcho(t, cs, es)
}

// TestDirectResetBeforeClientConnects is CI's TestWriteURL failure ("direct connection lost:
// closed by the peer" instead of the method's NOT_FOUND): the exporter resets a stream while its
// direct offer is pending; the client's connection that arrives next must carry the reset before
// its end, since the copy of the reset sent on the bus may reach the client after that end.
func TestDirectResetBeforeClientConnects(t *testing.T) {
	cli, accepted, _ := serveStreams(t, runServer(t), unixDirect(t), nil)
	reply := requestDirect(t, cli)
	es := <-accepted
	if reply.Header.Get(HeaderStreamDirect) == "" {
		t.Fatal("no direct offer")
	}
	// The listener has taken the client's token and acknowledged it (the client now reads from
	// the connection) when the method fails and resets the stream; then the listener hands the
	// connection to the stream.
	c, exporterEnd := net.Pipe()
	es.Reset(wire.Errorf(wire.NotFound, "write_url: GET /nope.img: 404 Not Found"))
	es.decide(exporterEnd)
	defer c.Close()
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	var l [4]byte
	if _, err := io.ReadFull(c, l[:]); err != nil {
		t.Fatalf("the connection ended without a frame: %v", err)
	}
	buf := make([]byte, binary.BigEndian.Uint32(l[:]))
	if _, err := io.ReadFull(c, buf); err != nil {
		t.Fatal(err)
	}
	f, err := wire.DecodeFrame(buf)
	if err != nil {
		t.Fatal(err)
	}
	if f.Type != wire.FrameReset || f.Code != wire.NotFound || !strings.Contains(f.Message, "/nope.img") {
		t.Fatalf("got frame %+v, want the NOT_FOUND reset", f)
	}
	if _, err := c.Read(l[:]); err != io.EOF {
		t.Fatalf("after the reset: got %v, want EOF", err)
	}
}

// TestDirectResetOnTheBusBeatsTheEnd: a reset that cannot get the direct connection's write slot
// goes on the bus, and the connection ends just after; the client reports the reset, not a lost
// connection (seen under load in TestDirectResetWhileWriting).
func TestDirectResetOnTheBusBeatsTheEnd(t *testing.T) {
	cs, es, _ := streamPairWith(t, runServer(t), unixDirect(t), nil)
	d := waitDecided(t, es)
	d.lock() // a data frame being written to a reader that does not read
	defer d.unlock()
	go es.Reset(wire.Errorf(wire.PermissionDenied, "lease ended"))
	_, err := cs.Read(make([]byte, 10))
	if !errors.Is(err, wire.ErrPermissionDenied) || !strings.Contains(err.Error(), "lease ended") {
		t.Fatalf("got %v, want PERMISSION_DENIED lease ended", err)
	}
}

// TestDirectResetWhileClientWrites: the exporter resets a stream whose client is writing (an
// upload found corrupt) and ends the direct connection; the client's Write reports the reset, not
// the broken pipe its write met first (seen under load in drivers/storage's failing-flash tests).
func TestDirectResetWhileClientWrites(t *testing.T) {
	d := unixDirect(t)
	item := make([]byte, 64<<10)
	for i := range 30 {
		cs, es, _ := streamPairWith(t, runServer(t), d, nil)
		waitDecided(t, es)
		got := make(chan error, 1)
		go func() {
			for {
				if _, err := cs.Write(item); err != nil {
					got <- err
					return
				}
			}
		}()
		buf := make([]byte, 1+i%3*1000)
		if _, err := io.ReadFull(es, buf); err != nil {
			t.Fatal(err)
		}
		es.Reset(wire.Errorf(wire.InvalidArgument, "image is not valid zstd"))
		if err := <-got; !errors.Is(err, wire.ErrInvalidArgument) || !strings.Contains(err.Error(), "not valid zstd") {
			t.Fatalf("round %d: Write got %v, want INVALID_ARGUMENT image is not valid zstd", i, err)
		}
		cs.Close()
	}
}
