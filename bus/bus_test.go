package bus

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"jsn.dev/jsn/bus/wire"
	"jsn.dev/jsn/internal/testkit"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// runServer starts an embedded server with a Unix socket in a private temp dir.
func runServer(t *testing.T) *Server {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	dir := filepath.Join(t.TempDir(), "s")
	s, err := StartServer(ctx, ServerOptions{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Shutdown)
	return s
}

func dial(t *testing.T, s *Server, name string) *Conn {
	t.Helper()
	c, err := Connect(context.Background(), s.URL(), name)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

func TestServerUnixSocketIsPrivate(t *testing.T) {
	s := runServer(t)
	if !strings.HasPrefix(s.URL(), "unix://") {
		t.Fatalf("got URL %q, want unix://", s.URL())
	}
	path := strings.TrimPrefix(s.URL(), "unix://")
	fi, err := os.Stat(filepath.Dir(path))
	if err != nil {
		t.Fatal(err)
	}
	if got := fi.Mode().Perm(); got != 0o700 {
		t.Fatalf("got dir mode %o, want 700", got)
	}
	fi, err = os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if got := fi.Mode().Perm(); got&0o077 != 0 {
		t.Fatalf("got socket mode %o, want no group/other access", got)
	}
}

func TestServerRefusesSharedDir(t *testing.T) {
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	_, err := StartServer(context.Background(), ServerOptions{Dir: dir})
	if err == nil || !strings.Contains(err.Error(), "private") {
		t.Fatalf("got %v, want an error saying the directory must be private", err)
	}
}

func TestServerPortInUseIsAnError(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	s, err := StartServer(ctx, ServerOptions{TCP: ln.Addr().String()})
	if err == nil {
		s.Shutdown()
		t.Fatal("got nil error, want address in use")
	}
	if !strings.Contains(err.Error(), "start bus") {
		t.Fatalf("got %v, want a start bus error", err)
	}
}

func TestServerTCPAndInProcess(t *testing.T) {
	s, err := StartServer(context.Background(), ServerOptions{TCP: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Shutdown()
	if !strings.HasPrefix(s.URL(), "nats://127.0.0.1:") {
		t.Fatalf("got %q, want nats://127.0.0.1:port", s.URL())
	}
	in, err := s.Connect(context.Background(), "inproc")
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	out, err := Connect(context.Background(), s.URL(), "tcp")
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	sub, err := in.Subscribe("echo", "", func(m *Msg) { _ = m.Respond(nil, m.Data) })
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()
	_ = in.Flush(context.Background())
	r, err := out.Request(context.Background(), "echo", nil, []byte("hi"))
	if err != nil {
		t.Fatal(err)
	}
	if string(r.Data) != "hi" {
		t.Fatalf("got %q, want hi", r.Data)
	}
}

func TestRequestErrors(t *testing.T) {
	s := runServer(t)
	a, b := dial(t, s, "a"), dial(t, s, "b")
	sub, err := a.Subscribe("svc", "", func(m *Msg) {
		_ = m.RespondError(wire.Errorf(wire.FailedPrecondition, "power is\nbroken"))
	})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()
	_ = a.Flush(context.Background())
	_, err = b.Request(context.Background(), "svc", nil, nil)
	if !errors.Is(err, wire.ErrFailedPrecondition) || err.Error() != "power is | broken" {
		t.Fatalf("got %v, want FAILED_PRECONDITION 'power is | broken'", err)
	}
	_, err = b.Request(context.Background(), "nobody", nil, nil)
	if !errors.Is(err, wire.ErrUnavailable) {
		t.Fatalf("got %v, want UNAVAILABLE for no responders", err)
	}
	if !strings.HasPrefix(a.InboxPrefix(), "_INBOX_a.") {
		t.Fatalf("got inbox prefix %q, want _INBOX_a.*", a.InboxPrefix())
	}
}

// streamPair opens a stream from a client conn to an exporter conn and returns both ends.
func streamPair(t *testing.T, s *Server) (client, exporter *Stream, ss *StreamServer) {
	return streamPairWith(t, s, nil, nil)
}

// streamPairWith is streamPair with the exporter offering direct connections through d (if not
// nil) and setup applied to the client's connection.
func streamPairWith(t *testing.T, s *Server, d *DirectListener, setup func(*Conn)) (client, exporter *Stream, ss *StreamServer) {
	t.Helper()
	cli, accepted, ss := serveStreams(t, s, d, setup)
	cs, err := cli.OpenStream(context.Background(), "e1", wire.CallSubject("e1", "net", "connect"), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	return cs, <-accepted, ss
}

// serveStreams connects an exporter "e1" that accepts every call as a stream (offering direct
// connections through d if not nil) and a client (setup applied to its connection). The
// exporter's ends arrive on accepted.
func serveStreams(t *testing.T, s *Server, d *DirectListener, setup func(*Conn)) (cli *Conn, accepted <-chan *Stream, ss *StreamServer) {
	t.Helper()
	exp, cli := dial(t, s, "exp"), dial(t, s, "cli")
	if setup != nil {
		setup(cli)
	}
	ss, err := exp.ServeStreams("e1")
	if err != nil {
		t.Fatal(err)
	}
	if d != nil {
		ss.OfferDirect(d)
	}
	t.Cleanup(ss.Close)
	acc := make(chan *Stream, 1)
	sub, err := exp.Subscribe(wire.CallWildcard("e1"), "", func(m *Msg) {
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
	t.Cleanup(func() { _ = sub.Unsubscribe() })
	_ = exp.Flush(context.Background())
	return cli, acc, ss
}

func TestStreamCopiesBothWaysWithHalfClose(t *testing.T) {
	s := runServer(t)
	cs, es, _ := streamPair(t, s)
	checkEcho(t, cs, es)
}

// checkEcho sends 24 MiB through the client end cs, echoed by the exporter end es, and checks
// every byte comes back and both half-closes arrive.
func checkEcho(t *testing.T, cs, es *Stream) {
	t.Helper()
	defer cs.Close()
	defer es.Close()
	const size = 24 << 20 // well over the window, so credit must flow
	data := make([]byte, size)
	_, _ = rand.Read(data)
	want := sha256.Sum256(data)

	var wg sync.WaitGroup
	wg.Add(1)
	var echoErr error
	go func() { // exporter: echo everything back, then half-close
		defer wg.Done()
		if _, err := io.Copy(es, es); err != nil {
			echoErr = err
			return
		}
		echoErr = es.CloseWrite()
	}()
	go func() {
		_, _ = cs.Write(data)
		_ = cs.CloseWrite()
	}()
	h := sha256.New()
	n, err := io.Copy(h, cs)
	if err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	if echoErr != nil {
		t.Fatal(echoErr)
	}
	if n != size || !bytes.Equal(h.Sum(nil), want[:]) {
		t.Fatalf("got %d bytes (hash match %v), want %d identical bytes", n, bytes.Equal(h.Sum(nil), want[:]), size)
	}
}

func TestStreamResetReachesPeer(t *testing.T) {
	s := runServer(t)
	cs, es, _ := streamPair(t, s)
	es.Reset(wire.Errorf(wire.Unavailable, "serial port unplugged"))
	_, err := cs.Read(make([]byte, 10))
	if !errors.Is(err, wire.ErrUnavailable) || !strings.Contains(err.Error(), "unplugged") {
		t.Fatalf("got %v, want UNAVAILABLE serial port unplugged", err)
	}
	if _, err := cs.Write([]byte("x")); err == nil {
		t.Fatal("write after reset succeeded")
	}
	select {
	case <-es.Context().Done():
	default:
		t.Fatal("exporter stream context not cancelled by reset")
	}
}

func TestStreamClientCloseCancelsExporterSide(t *testing.T) {
	s := runServer(t)
	cs, es, _ := streamPair(t, s)
	cs.Close()
	select {
	case <-es.Context().Done():
	case <-time.After(5 * time.Second):
		t.Fatal("exporter side not cancelled after client Close")
	}
}

func TestStreamGapResets(t *testing.T) {
	s := runServer(t)
	cs, es, _ := streamPair(t, s)
	// Forge a data frame with a wrong offset on the exporter's incoming subject.
	raw := dial(t, s, "attacker")
	if err := raw.Publish(wire.StreamSubject("e1", wire.NoLease, es.ID()), nil, wire.AppendFrame(nil, wire.Frame{Type: wire.FrameData, Offset: 100, Data: []byte("x")})); err != nil {
		t.Fatal(err)
	}
	_, err := es.Read(make([]byte, 1))
	if !errors.Is(err, wire.ErrUnavailable) || !strings.Contains(err.Error(), "expected offset 0, got 100") {
		t.Fatalf("got %v, want a lost-data reset", err)
	}
	_, err = cs.Read(make([]byte, 1))
	if err == nil || !strings.Contains(err.Error(), "lost data") {
		t.Fatalf("client got %v, want the reset", err)
	}
}

func TestStreamCreditViolationResets(t *testing.T) {
	s := runServer(t)
	_, es, _ := streamPair(t, s)
	raw := dial(t, s, "attacker")
	big := make([]byte, 64<<10)
	var err error
	for off := uint64(0); off <= DefaultWindow; off += uint64(len(big)) {
		if err = raw.Publish(wire.StreamSubject("e1", wire.NoLease, es.ID()), nil, wire.AppendFrame(nil, wire.Frame{Type: wire.FrameData, Offset: off, Data: big})); err != nil {
			t.Fatal(err)
		}
	}
	<-es.Context().Done()
	if got := context.Cause(es.Context()); !strings.Contains(got.Error(), "beyond its credit") {
		t.Fatalf("got %v, want a credit violation", got)
	}
}

func TestResetGroup(t *testing.T) {
	s := runServer(t)
	cs, _, ss := streamPair(t, s)
	ss.ResetGroup("lease1", wire.Errorf(wire.PermissionDenied, "lease lease1 ended"))
	_, err := cs.Read(make([]byte, 1))
	if !errors.Is(err, wire.ErrPermissionDenied) {
		t.Fatalf("got %v, want PERMISSION_DENIED", err)
	}
	if n := ss.Count(); n != 0 {
		t.Fatalf("got %d open streams, want 0", n)
	}
}

func TestStreamKeepaliveDetectsSilentPeer(t *testing.T) {
	old := keepaliveEvery
	keepaliveEvery = 20 * time.Millisecond
	defer func() { keepaliveEvery = old }()
	s := runServer(t)
	exp := dial(t, s, "exp")
	ss, err := exp.ServeStreams("e2")
	if err != nil {
		t.Fatal(err)
	}
	defer ss.Close()
	// A client that asks for a stream and then vanishes: nobody sends frames.
	m := &Msg{Subject: wire.CallSubject("e2", "a", "b"), Header: wire.Header{
		wire.HeaderStream: {"abc"}, wire.HeaderStreamWindow: {"1024"}}, conn: exp}
	st, _, err := ss.Accept(m, "l")
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-st.Context().Done():
		if !strings.Contains(context.Cause(st.Context()).Error(), "silent") {
			t.Fatalf("got %v, want peer silent", context.Cause(st.Context()))
		}
	case <-time.After(10 * time.Second):
		t.Fatal("silent peer not detected")
	}
}

func TestAcceptRejectsBadHeaders(t *testing.T) {
	s := runServer(t)
	exp := dial(t, s, "exp")
	ss, err := exp.ServeStreams("e3")
	if err != nil {
		t.Fatal(err)
	}
	defer ss.Close()
	for _, h := range []wire.Header{
		{wire.HeaderStream: {"a.b"}, wire.HeaderStreamWindow: {"10"}},
		{wire.HeaderStream: {"*"}, wire.HeaderStreamWindow: {"10"}},
		{wire.HeaderStream: {"ok"}, wire.HeaderStreamWindow: {"-1"}},
		{wire.HeaderStream: {"ok"}},
	} {
		if _, _, err := ss.Accept(&Msg{Header: h, conn: exp}, ""); !errors.Is(err, wire.ErrInvalidArgument) {
			t.Errorf("headers %v: got %v, want INVALID_ARGUMENT", h, err)
		}
	}
}

// TestStreamExporterGone: a client's streams end with UNAVAILABLE "exporter … gone" when the
// exporter's connection closes without a word (a process killed), and with "not open" when an
// exporter that does not know the stream (restarted) receives its frames — not after the
// silence timeout, which is made too long here to be the cause.
func TestStreamExporterGone(t *testing.T) {
	old := keepaliveEvery
	keepaliveEvery = time.Hour
	defer func() { keepaliveEvery = old }()
	for _, restarted := range []bool{false, true} {
		s := runServer(t)
		cs, es, _ := streamPair(t, s)
		if restarted {
			again := dial(t, s, "exp2")
			ss2, err := again.ServeStreams("e1")
			if err != nil {
				t.Fatal(err)
			}
			defer ss2.Close()
			if err := again.Flush(context.Background()); err != nil {
				t.Fatal(err)
			}
		}
		es.conn.nc.Close() // the exporter's process dies: no reset, no goodbye
		done := make(chan error, 1)
		go func() {
			_, err := io.Copy(io.Discard, cs)
			done <- err
		}()
		want := "gone"
		if restarted {
			want = "not open on exporter e1"
		}
		select {
		case err := <-done:
			if !errors.Is(err, wire.ErrUnavailable) || !strings.Contains(err.Error(), want) {
				t.Errorf("restarted %v: stream ended with %v, want UNAVAILABLE …%s…", restarted, err, want)
			}
		case <-time.After(30 * time.Second):
			t.Fatalf("restarted %v: the stream did not end", restarted)
		}
	}
}

// TestEndedStreamFramesDropped: a client frame that crosses the end of a stream on the exporter
// (a probe or credit sent as the exporter finished) is dropped, not answered with a reset — on a
// direct connection that reset, going on the bus, could overtake the stream's last frames and
// fail a stream that ended cleanly. A frame for a stream the exporter never had still gets
// "not open". The frames are sent in that order on one connection, so the reset of the second
// arriving alone shows the first got none.
func TestEndedStreamFramesDropped(t *testing.T) {
	s := runServer(t)
	cs, es, _ := streamPair(t, s)
	go func() {
		_, _ = es.Write([]byte("bye"))
		_ = es.CloseWrite()
	}()
	if b, err := io.ReadAll(cs); err != nil || string(b) != "bye" {
		t.Fatalf("read %q, %v", b, err)
	}
	if err := cs.CloseWrite(); err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadAll(es); err != nil {
		t.Fatal(err)
	}
	if err := es.Close(); err != nil {
		t.Fatal(err)
	}
	testkit.CheckFor(t, 10*time.Second, func() error {
		es.mux.mu.Lock()
		open := es.mux.m[es.id] != nil
		es.mux.mu.Unlock()
		if open || !es.mux.recentlyEnded(es.id) {
			return fmt.Errorf("stream %s still registered on the exporter", es.id)
		}
		return nil
	})
	resets := make(chan string, 4)
	out := strings.Replace(cs.out, ".stream.", ".out.", 1)
	prefix := out[:strings.LastIndexByte(out, '.')+1]
	sub, err := cs.conn.Subscribe(prefix+"*", "", func(m *Msg) {
		if f, err := wire.DecodeFrame(m.Data); err == nil && f.Type == wire.FrameReset {
			resets <- m.Subject[len(prefix):] + ": " + f.Message
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()
	credit := wire.AppendFrame(nil, wire.Frame{Type: wire.FrameCredit, Offset: 1 << 20})
	stream := cs.out[:strings.LastIndexByte(cs.out, '.')+1]
	for _, id := range []string{es.id, "neverseen"} {
		if err := cs.conn.Publish(stream+id, nil, credit); err != nil {
			t.Fatal(err)
		}
	}
	select {
	case r := <-resets:
		if !strings.HasPrefix(r, "neverseen: ") || !strings.Contains(r, "not open on exporter e1") {
			t.Fatalf("got reset %q, want one for the unknown stream only", r)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no reset for a stream the exporter never had")
	}
}
