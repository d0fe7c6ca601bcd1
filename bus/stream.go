package bus

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"jsn.dev/jsn/bus/wire"
)

// Stream tuning. The window bounds what a receiver buffers per stream; the chunk bounds a frame.
var (
	DefaultWindow   uint64 = 8 << 20
	maxChunk               = 128 << 10
	directChunk            = 256 << 10
	keepaliveEvery         = 10 * time.Second
	keepaliveMisses        = 3
	// probeEvery is how often a client with open streams asks the bus whether the exporter is
	// still there: its stream frames then go with a reply subject, and the server answers "no
	// responders" as soon as the exporter's connection (and so its subscription) is gone.
	probeEvery = 500 * time.Millisecond
)

// ErrStreamClosed is returned by Read and Write after the local side called Close.
var ErrStreamClosed = errors.New("stream closed")

// Stream is one end of a flow-controlled byte stream. One goroutine may Read while another
// Writes; concurrent Writes are serialized.
type Stream struct {
	id     string
	group  string // group the stream belongs to (exporter side: its lease, for ResetGroup)
	lease  string // stream token of its subjects (wire.StreamToken; exporter side: frames naming another are dropped)
	out    string // subject frames are published to
	conn   *Conn
	mux    *streamMux
	window uint64

	ctx    context.Context
	cancel context.CancelCauseFunc

	readable chan struct{} // signalled when data, FIN or a reset arrives
	writable chan struct{} // signalled when credit or a reset arrives

	wmu  sync.Mutex // serializes writers; held while publishing data
	wbuf []byte     // frame buffer reused by Write; guarded by wmu

	mu        sync.Mutex
	bufs      [][]byte  // received, unread payloads
	roff      int       // bytes of bufs[0] already read
	recvd     uint64    // offset of the next byte expected from the peer
	consumed  uint64    // bytes handed to Read
	granted   uint64    // credit limit we granted the peer
	finRecv   bool      // peer sent FIN
	sent      uint64    // bytes we sent
	limit     uint64    // credit the peer granted us
	finSent   bool      // we sent FIN
	rerr      error     // error Read returns once the buffer is drained
	werr      error     // error Write returns
	heard     time.Time // last frame from the peer
	opened    time.Time // when the stream was created
	done      bool      // unregistered
	peerReset bool
	acked     bool // client side: the exporter accepted the stream (its reply arrived)
	isDecided bool // the path is known (see decided)
	// resetFrame is the encoded reset this side sent, kept for a direct connection that arrives
	// after the stream ended: it gets the reset too, before its end, so the peer reports the
	// reset rather than a lost connection (the copy on the bus may arrive after that end).
	resetFrame []byte

	// Direct path (direct.go). dc is set at most once; frames then go over it instead of the bus.
	dc        atomic.Pointer[directConn]
	decided   chan struct{}   // exporter side with a pending offer: closed once the path is known
	offeredBy *DirectListener // the listener holding our token while it is pending
	token     string
}

func newStream(m *streamMux, id, out, group string, window uint64) *Stream {
	ctx, cancel := context.WithCancelCause(context.Background())
	return &Stream{
		id: id, out: out, group: group, conn: m.conn, mux: m, window: window,
		ctx: ctx, cancel: cancel,
		readable: make(chan struct{}, 1), writable: make(chan struct{}, 1),
		granted: window, heard: time.Now(), opened: time.Now(),
	}
}

// ID returns the stream id.
func (s *Stream) ID() string { return s.id }

// Context is cancelled, with the reason as cause, when the stream is reset or closed.
func (s *Stream) Context() context.Context { return s.ctx }

func signal(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

// Read reads received bytes. It returns io.EOF after the peer's FIN, and the reset error (an
// *Error) if the stream was reset.
func (s *Stream) Read(p []byte) (int, error) {
	for {
		s.mu.Lock()
		if len(s.bufs) > 0 {
			n := 0
			for n < len(p) && len(s.bufs) > 0 {
				b := s.bufs[0]
				c := copy(p[n:], b[s.roff:])
				n += c
				s.roff += c
				if s.roff == len(b) {
					s.bufs[0] = nil
					s.bufs = s.bufs[1:]
					s.roff = 0
					releaseDirectBuf(b)
				}
			}
			s.consumed += uint64(n)
			var grant uint64
			if !s.finRecv && s.rerr == nil && s.consumed+s.window-s.granted >= s.window/2 {
				s.granted = s.consumed + s.window
				grant = s.granted
			}
			s.mu.Unlock()
			if grant != 0 {
				s.sendControl(wire.Frame{Type: wire.FrameCredit, Offset: grant}, waitSlot)
			}
			return n, nil
		}
		if len(p) == 0 {
			s.mu.Unlock()
			return 0, nil
		}
		if s.finRecv {
			s.mu.Unlock()
			return 0, io.EOF
		}
		if s.rerr != nil {
			err := s.rerr
			s.mu.Unlock()
			return 0, err
		}
		s.mu.Unlock()
		<-s.readable
	}
}

// Write sends p, blocking while the peer's credit is used up.
func (s *Stream) Write(p []byte) (int, error) {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	d := s.path()
	written := 0
	for written < len(p) {
		s.mu.Lock()
		if s.werr != nil {
			err := s.werr
			s.mu.Unlock()
			return written, err
		}
		if s.finSent {
			s.mu.Unlock()
			return written, errors.New("write after CloseWrite")
		}
		avail := s.limit - s.sent
		if avail == 0 {
			s.mu.Unlock()
			<-s.writable
			continue
		}
		chunk := maxChunk
		if d != nil {
			chunk = directChunk
		}
		n := min(uint64(len(p)-written), avail, uint64(chunk))
		off := s.sent
		s.sent += n
		s.mu.Unlock()
		var err error
		if d != nil {
			// The data goes to the socket straight from p (writev), without a copy.
			s.wbuf = wire.AppendFrame(s.wbuf[:0], wire.Frame{Type: wire.FrameData, Offset: off})
			err = d.send(s.wbuf, p[written:written+int(n)])
		} else {
			s.wbuf = wire.AppendFrame(s.wbuf[:0], wire.Frame{Type: wire.FrameData, Offset: off, Data: p[written : written+int(n)]})
			err = s.conn.Publish(s.out, nil, s.wbuf)
		}
		if err != nil {
			if d != nil {
				// A peer that resets the stream ends the direct connection after the reset frame:
				// the write may fail first. The reader reports the reset (or, lacking one, the
				// lost connection within directResetGrace); that is the error to return.
				select {
				case <-s.ctx.Done():
				case <-time.After(2 * directResetGrace):
				}
				s.mu.Lock()
				werr := s.werr
				s.mu.Unlock()
				if werr != nil {
					return written, werr
				}
			}
			err = &wire.Error{Code: wire.Unavailable, Message: fmt.Sprintf("stream %s: send: %v", s.id, err)}
			s.fail(err, false)
			return written, err
		}
		written += int(n)
	}
	return written, nil
}

// CloseWrite half-closes the stream: the peer reads io.EOF after the bytes already written.
func (s *Stream) CloseWrite() error {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	d := s.path()
	s.mu.Lock()
	if s.finSent {
		s.mu.Unlock()
		return nil
	}
	if s.werr != nil {
		err := s.werr
		s.mu.Unlock()
		return err
	}
	s.finSent = true
	off := s.sent
	s.mu.Unlock()
	fin := wire.AppendFrame(nil, wire.Frame{Type: wire.FrameFin, Offset: off})
	if d != nil {
		return d.send(fin, nil)
	}
	return s.conn.Publish(s.out, nil, fin)
}

// path waits until the path of the stream's frames is known (an exporter that offered a direct
// connection waits for the client's choice) and returns the direct connection, or nil for the bus.
func (s *Stream) path() *directConn {
	if s.decided != nil {
		select {
		case <-s.decided:
		case <-s.ctx.Done():
		}
	}
	return s.dc.Load()
}

// decide ends a pending direct offer: c is the client's connection, or nil for the bus.
func (s *Stream) decide(c net.Conn) {
	s.mu.Lock()
	if s.decided == nil || s.isDecided {
		s.mu.Unlock()
		if c != nil {
			c.Close()
		}
		return
	}
	s.isDecided = true
	done := s.done
	if c != nil && !done {
		s.attach(c)
	}
	reset := s.resetFrame
	s.mu.Unlock()
	if c != nil && done {
		if reset != nil {
			go sendAndShut(newDirectConn(c), reset)
		} else {
			c.Close()
		}
	}
	close(s.decided)
}

// attach makes c the stream's path and starts reading frames from it.
func (s *Stream) attach(c net.Conn) {
	d := newDirectConn(c)
	s.dc.Store(d)
	go s.readDirect(d)
}

// Close ends the stream. If either direction is unfinished the peer sees a reset.
func (s *Stream) Close() error {
	s.mu.Lock()
	clean := s.finSent && s.finRecv
	s.mu.Unlock()
	if clean {
		s.fail(ErrStreamClosed, false)
		return nil
	}
	// CANCELLED: this side stops the stream early; the peer reads why.
	s.Reset(&wire.Error{Code: wire.Cancelled, Message: "stream closed by the other side"})
	s.mu.Lock()
	s.rerr, s.werr = ErrStreamClosed, ErrStreamClosed
	s.mu.Unlock()
	return nil
}

// Reset aborts the stream with err (its code and message reach the peer). Read and Write return
// err from then on, whatever the peer's answer to the reset does to the connection meanwhile.
func (s *Stream) Reset(err error) {
	s.mu.Lock()
	already := s.done
	if !already {
		// Before the reset goes out: the peer may close a direct connection on receiving it,
		// and that must not become the error this side reports.
		if s.rerr == nil {
			s.rerr = err
		}
		if s.werr == nil {
			s.werr = err
		}
	}
	s.mu.Unlock()
	if !already {
		msg := err.Error()
		if len(msg) > 1024 {
			msg = msg[:1024]
		}
		f := wire.AppendFrame(nil, wire.Frame{Type: wire.FrameReset, Code: wire.CodeOf(err), Message: msg})
		s.mu.Lock()
		s.resetFrame = f
		s.mu.Unlock()
		s.sendFrame(f, resetWait)
	}
	s.fail(err, false)
}

// fail records err for both directions, unregisters the stream and cancels its context.
func (s *Stream) fail(err error, fromPeer bool) {
	s.mu.Lock()
	if s.done {
		s.mu.Unlock()
		return
	}
	s.done = true
	if fromPeer {
		s.peerReset = true
	}
	if s.rerr == nil {
		s.rerr = err
	}
	if s.werr == nil {
		s.werr = err
	}
	s.mu.Unlock()
	s.mux.remove(s.id)
	if s.offeredBy != nil {
		s.offeredBy.take(s.token)
	}
	if d := s.dc.Load(); d != nil {
		d.shut()
	}
	s.cancel(err)
	signal(s.readable)
	signal(s.writable)
}

// How sendControl waits for the direct connection's write slot.
type controlWait int

const (
	waitSlot   controlWait = iota // as long as it takes (credit: the peer needs it)
	skipIfBusy                    // not at all: keepalives, which data in flight makes moot
	// resetWait bounds the wait of a reset: it must follow the data frame being written on the
	// same connection (sent on the bus, it could overtake the connection's end and the peer would
	// report the connection lost instead of the reset), but not wait on a peer that stopped reading.
	resetWait
)

// sendControl sends a control frame on the stream's path. A frame that cannot get the direct
// connection's write slot goes on the bus instead (the peer reads both).
func (s *Stream) sendControl(f wire.Frame, w controlWait) {
	s.sendFrame(wire.AppendFrame(make([]byte, 0, 16+len(f.Message)), f), w)
}

// sendFrame is sendControl of an encoded frame.
func (s *Stream) sendFrame(b []byte, w controlWait) {
	if d := s.dc.Load(); d != nil {
		var ok bool
		switch w {
		case waitSlot:
			_ = d.send(b, nil)
			return
		case skipIfBusy:
			ok = d.tryLock()
		case resetWait:
			ok = d.lockWithin(2 * time.Second)
		}
		if ok {
			_ = d.write(b, nil)
			d.unlock()
			return
		}
	}
	_ = s.conn.Publish(s.out, nil, b)
}

// handle applies a frame from the peer, received on the direct connection or on the bus. It
// blocks only to send a reset of a broken stream (at most 2 s, see resetWait). A frame on the bus
// while a direct offer is pending means the client chose the bus.
func (s *Stream) handle(f wire.Frame, direct bool) {
	if !direct && s.decided != nil {
		s.decide(nil)
	}
	s.mu.Lock()
	s.heard = time.Now()
	switch f.Type {
	case wire.FrameData:
		if s.finRecv || s.rerr != nil {
			s.mu.Unlock()
			return
		}
		if limit := frameLimit(direct); len(f.Data) > limit {
			s.mu.Unlock()
			s.Reset(&wire.Error{Code: wire.InvalidArgument, Message: fmt.Sprintf("stream %s: DATA frame of %d bytes exceeds the limit of %d", s.id, len(f.Data), limit)})
			return
		}
		if f.Offset != s.recvd {
			want := s.recvd
			s.mu.Unlock()
			s.Reset(&wire.Error{Code: wire.Unavailable, Message: fmt.Sprintf("stream %s lost data: expected offset %d, got %d (slow consumer or reconnect)", s.id, want, f.Offset)})
			return
		}
		if s.recvd+uint64(len(f.Data)) > s.granted {
			s.mu.Unlock()
			s.Reset(&wire.Error{Code: wire.InvalidArgument, Message: fmt.Sprintf("stream %s: peer sent beyond its credit of %d bytes", s.id, s.granted)})
			return
		}
		if len(f.Data) > 0 {
			s.bufs = append(s.bufs, f.Data)
			s.recvd += uint64(len(f.Data))
		}
		s.mu.Unlock()
		signal(s.readable)
	case wire.FrameCredit:
		s.mu.Unlock()
		s.credit(f.Offset)
	case wire.FrameFin:
		if s.finRecv {
			s.mu.Unlock()
			return
		}
		if f.Offset != s.recvd {
			want := s.recvd
			s.mu.Unlock()
			s.Reset(&wire.Error{Code: wire.Unavailable, Message: fmt.Sprintf("stream %s lost data: peer finished at offset %d, received %d", s.id, f.Offset, want)})
			return
		}
		s.finRecv = true
		s.mu.Unlock()
		signal(s.readable)
	case wire.FrameReset:
		err := &wire.Error{Code: f.Code, Message: f.Message}
		s.mu.Unlock()
		s.fail(err, true)
	default:
		s.mu.Unlock()
	}
}

// credit applies a CREDIT frame's offset (cumulative: only a larger one counts).
func (s *Stream) credit(off uint64) {
	s.mu.Lock()
	s.heard = time.Now()
	if off > s.limit {
		s.limit = off
		s.mu.Unlock()
		signal(s.writable)
		return
	}
	s.mu.Unlock()
}

// keepalive re-sends our credit so the peer knows we are alive, and reports whether the peer has
// been silent too long.
// silentAfter is how long a peer may stay silent: keepaliveMisses keepalives and half a period
// of slack (35 s). Keepalives are checked every keepaliveEvery, so a silent peer's stream is
// reset between silentAfter and silentAfter+keepaliveEvery after its last frame.
func silentAfter(every time.Duration) time.Duration {
	return time.Duration(keepaliveMisses)*every + every/2
}

// frameLimit is the largest DATA payload accepted on the bus or on a direct connection.
func frameLimit(direct bool) int {
	if direct {
		return directChunk
	}
	return maxChunk
}

// keepalive re-sends the credit and returns how long the peer has been silent, if longer than
// silentAfter (else 0).
func (s *Stream) keepalive(now time.Time) (silent time.Duration) {
	s.mu.Lock()
	g := s.granted
	if d := now.Sub(s.heard); d > silentAfter(s.mux.every) {
		silent = d
	}
	s.mu.Unlock()
	s.sendControl(wire.Frame{Type: wire.FrameCredit, Offset: g}, skipIfBusy)
	return silent
}

// streamMux routes incoming frames to streams by id.
type streamMux struct {
	conn   *Conn
	sub    *Subscription
	mu     sync.Mutex
	m      map[string]*Stream // guarded by mu
	closed bool               // guarded by mu
	stop   chan struct{}
	wg     sync.WaitGroup
	every  time.Duration // keepaliveEvery when the mux was made (tests change the variable)
	probeN time.Duration // probeEvery when the mux was made

	// Client side (exporter != ""): probes of the exporter's presence.
	exporter  string
	probes    *Subscription // "no responders" answers to probes
	probeInbx string
	probeSent time.Time // the last probe; guarded by mu
	// Exporter side (server): frames of a stream it does not know are answered with a reset,
	// except for streams that ended here lately (see ended).
	serverOf string
	// ended holds the ids of streams that ended on this side in the last one or two keepalive
	// periods (two generations, rotated by keepalives; guarded by mu). The peer's frames that
	// crossed the end (a client's probe or credit sent as the exporter finished) are dropped:
	// answered with a reset on the bus, that reset could overtake the stream's last frames on a
	// direct connection and fail a stream that ended cleanly.
	ended, endedOld map[string]struct{}
}

// maxEnded bounds one generation of ended: past it the generations rotate early.
const maxEnded = 1 << 16

func newStreamMux(c *Conn, subject string) (*streamMux, error) {
	m := &streamMux{conn: c, m: map[string]*Stream{}, stop: make(chan struct{}), every: keepaliveEvery, probeN: probeEvery}
	sub, err := c.Subscribe(subject, "", m.dispatch)
	if err != nil {
		return nil, err
	}
	m.sub = sub
	return m, nil
}

// start starts the keepalives (and a client's probes).
func (m *streamMux) start() {
	m.wg.Add(1)
	go m.keepalives()
}

// watchExporter makes a client mux probe exporter's presence (see probeEvery).
func (m *streamMux) watchExporter(exporter string) error {
	m.exporter = exporter
	m.probeInbx = m.conn.prefix + ".gone." + randomToken(6)
	sub, err := m.conn.Subscribe(m.probeInbx, "", func(msg *Msg) {
		if msg.Header.Get("Status") == "503" {
			m.gone()
		}
	})
	if err != nil {
		return err
	}
	m.probes = sub
	return nil
}

// gone resets the streams open when the last probe was sent: nobody received it, so the
// exporter's connection is gone (and its end of every stream with it).
func (m *streamMux) gone() {
	m.mu.Lock()
	sent := m.probeSent
	m.mu.Unlock()
	for _, s := range m.snapshot("") {
		if s.opened.Before(sent) {
			s.fail(&wire.Error{Code: wire.Unavailable, Message: fmt.Sprintf("exporter %s gone: its connection to the bus closed (stream %s ended)", m.exporter, s.id)}, true)
		}
	}
}

// probe sends the current credit of one open stream with a reply subject (see probeEvery). Only
// a stream the exporter accepted is probed: one whose opening call is still on its way is not
// known there yet, and the exporter would answer its frame with a reset.
func (m *streamMux) probe() {
	var s *Stream
	var g uint64
	for _, o := range m.snapshot("") {
		o.mu.Lock()
		ok := o.acked && !o.done
		g = o.granted
		o.mu.Unlock()
		if ok {
			s = o
			break
		}
	}
	if s == nil {
		return
	}
	m.mu.Lock()
	m.probeSent = time.Now()
	m.mu.Unlock()
	_ = m.conn.PublishRequest(s.out, m.probeInbx, wire.AppendFrame(nil, wire.Frame{Type: wire.FrameCredit, Offset: g}))
}

func (m *streamMux) dispatch(msg *Msg) {
	i := strings.LastIndexByte(msg.Subject, '.')
	id := msg.Subject[i+1:]
	m.mu.Lock()
	s := m.m[id]
	m.mu.Unlock()
	if s == nil {
		if m.recentlyEnded(id) {
			return
		}
		if m.serverOf != "" && wire.ValidName(id) {
			// A client's frame for a stream this exporter does not have (it restarted, or the
			// stream ended): say so, or the client would wait for its silence timeout.
			if f, err := wire.DecodeFrame(msg.Data); err == nil && f.Type != wire.FrameReset {
				rst := wire.Frame{Type: wire.FrameReset, Code: wire.Unavailable, Message: fmt.Sprintf("stream %s is not open on exporter %s (it ended, or the exporter restarted)", id, m.serverOf)}
				// jsn.x.E.stream.<lease>.<id> → jsn.x.E.out.<lease>.<id>
				out := strings.Replace(msg.Subject, ".stream.", ".out.", 1)
				_ = m.conn.Publish(out, nil, wire.AppendFrame(nil, rst))
			}
		}
		return
	}
	if s.lease != "" {
		// Exporter side: the subject's lease token must be the stream's own, so that only the
		// credential of the lease that opened it may write to it.
		j := strings.LastIndexByte(msg.Subject[:i], '.')
		if j < 0 || msg.Subject[j+1:i] != s.lease {
			return
		}
	}
	f, err := wire.DecodeFrame(msg.Data)
	if err != nil {
		s.Reset(err)
		return
	}
	if msg.Reply != "" {
		// A client's presence probe: it goes on the bus whatever the stream's path, so it must
		// not decide a pending direct offer (the client may be connecting). Only its credit counts.
		if f.Type == wire.FrameCredit {
			s.credit(f.Offset)
		}
		return
	}
	s.handle(f, false)
}

func (m *streamMux) add(s *Stream) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return &wire.Error{Code: wire.Unavailable, Message: "connection closed"}
	}
	if _, dup := m.m[s.id]; dup {
		return &wire.Error{Code: wire.InvalidArgument, Message: fmt.Sprintf("stream id %q already in use", s.id)}
	}
	m.m[s.id] = s
	return nil
}

func (m *streamMux) remove(id string) {
	m.mu.Lock()
	delete(m.m, id)
	if m.serverOf != "" {
		if m.ended == nil {
			m.ended = map[string]struct{}{}
		} else if len(m.ended) >= maxEnded {
			m.endedOld, m.ended = m.ended, map[string]struct{}{}
		}
		m.ended[id] = struct{}{}
	}
	m.mu.Unlock()
}

// recentlyEnded reports whether stream id ended on this (exporter) side lately.
func (m *streamMux) recentlyEnded(id string) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	_, a := m.ended[id]
	_, b := m.endedOld[id]
	return a || b
}

// rotateEnded forgets the older generation of ended streams (called every keepalive period).
func (m *streamMux) rotateEnded() {
	m.mu.Lock()
	if len(m.ended) > 0 || len(m.endedOld) > 0 {
		m.endedOld, m.ended = m.ended, map[string]struct{}{}
	}
	m.mu.Unlock()
}

func (m *streamMux) snapshot(group string) []*Stream {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]*Stream, 0, len(m.m))
	for _, s := range m.m {
		if group == "" || s.group == group {
			out = append(out, s)
		}
	}
	return out
}

func (m *streamMux) keepalives() {
	defer m.wg.Done()
	t := time.NewTicker(m.every)
	defer t.Stop()
	var probe <-chan time.Time
	if m.probes != nil {
		pt := time.NewTicker(m.probeN)
		defer pt.Stop()
		probe = pt.C
	}
	for {
		select {
		case <-m.stop:
			return
		case <-probe:
			m.probe()
		case now := <-t.C:
			m.rotateEnded()
			for _, s := range m.snapshot("") {
				if d := s.keepalive(now); d > 0 {
					s.Reset(&wire.Error{Code: wire.Unavailable, Message: fmt.Sprintf("stream %s: peer silent for %s (the limit is %s), assumed gone",
						s.id, d.Round(100*time.Millisecond), silentAfter(m.every))})
				}
			}
		}
	}
}

// close resets every stream with err and stops the mux.
func (m *streamMux) close(err error) {
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return
	}
	m.closed = true
	m.mu.Unlock()
	for _, s := range m.snapshot("") {
		s.Reset(err)
	}
	close(m.stop)
	m.wg.Wait()
	_ = m.sub.Unsubscribe()
	if m.probes != nil {
		_ = m.probes.Unsubscribe()
	}
}

// OpenStream sends a call that opens a stream (subject is the call subject of exporter) and
// returns the client's end once the exporter accepted it. The exporter's error reply is returned
// as an *Error.
func (c *Conn) OpenStream(ctx context.Context, exporter, subject string, hdr wire.Header, body []byte) (*Stream, error) {
	lease := hdr.Get(wire.HeaderLease)
	// The exporter names the stream by the lease and the holder its reply inbox names (Accept):
	// this connection's own, below the lease's inbox for a lease credential.
	tok := wire.StreamToken(lease, InboxHolder(c.prefix, exporter, lease))
	mux, err := c.clientMux(exporter, tok)
	if err != nil {
		return nil, err
	}
	id := randomToken(12)
	s := newStream(mux, id, wire.StreamSubject(exporter, tok, id), "", DefaultWindow)
	if err := mux.add(s); err != nil {
		return nil, err
	}
	h := wire.Header{}
	for k, v := range hdr {
		h[k] = v
	}
	h.Set(wire.HeaderStream, id)
	h.Set(wire.HeaderStreamWindow, strconv.FormatUint(DefaultWindow, 10))
	if !c.noDirect.Load() {
		h.Set(HeaderStreamDirect, "1")
	}
	reply, err := c.Request(ctx, subject, h, body)
	if err != nil {
		s.fail(err, false)
		return nil, err
	}
	w, perr := strconv.ParseUint(reply.Header.Get(wire.HeaderStreamWindow), 10, 64)
	if perr != nil || w == 0 {
		err := &wire.Error{Code: wire.Internal, Message: fmt.Sprintf("%s: stream accepted without a valid %s header", subject, wire.HeaderStreamWindow)}
		s.Reset(err)
		return nil, err
	}
	s.handle(wire.Frame{Type: wire.FrameCredit, Offset: w}, true)
	s.mu.Lock()
	s.acked = true
	s.mu.Unlock()
	if addr := reply.Header.Get(HeaderStreamDirect); addr != "" {
		if dc, err := dialDirect(ctx, addr, reply.Header.Get(HeaderStreamToken), reply.Header.Get(HeaderStreamPin)); err == nil {
			s.mu.Lock()
			s.attach(dc)
			s.mu.Unlock()
		} else {
			// Tell the exporter to use the bus: any frame of ours there does.
			s.sendControl(wire.Frame{Type: wire.FrameCredit, Offset: DefaultWindow}, waitSlot)
		}
	}
	return s, nil
}

// DisableDirectStreams makes streams opened from now on stay on the bus even where the exporter
// offers a direct connection.
func (c *Conn) DisableDirectStreams() { c.noDirect.Store(true) }

// clientMux returns the mux receiving the stream frames of token (a wire.StreamToken) on
// exporter, subscribing on first use.
func (c *Conn) clientMux(exporter, token string) (*streamMux, error) {
	key := exporter + "." + token
	c.muxMu.Lock()
	defer c.muxMu.Unlock()
	if m := c.muxes[key]; m != nil {
		return m, nil
	}
	if c.nc.IsClosed() {
		return nil, &wire.Error{Code: wire.Unavailable, Message: "connection closed"}
	}
	m, err := newStreamMux(c, wire.StreamOutWildcard(exporter, token))
	if err != nil {
		return nil, err
	}
	if err := m.watchExporter(exporter); err != nil {
		_ = m.sub.Unsubscribe()
		return nil, err
	}
	m.start()
	if err := c.Flush(context.Background()); err != nil {
		m.close(err)
		return nil, err
	}
	if c.muxes == nil {
		c.muxes = map[string]*streamMux{}
	}
	c.muxes[key] = m
	return m, nil
}

// StreamServer accepts streams opened by calls to one exporter.
type StreamServer struct {
	mux      *streamMux
	exporter string
	direct   atomic.Pointer[DirectListener]
}

// OfferDirect makes the server offer direct connections through d to clients that can use them.
func (ss *StreamServer) OfferDirect(d *DirectListener) { ss.direct.Store(d) }

// ServeStreams starts receiving client → exporter frames for exporter.
func (c *Conn) ServeStreams(exporter string) (*StreamServer, error) {
	m, err := newStreamMux(c, wire.StreamWildcard(exporter))
	if err != nil {
		return nil, err
	}
	m.serverOf = exporter
	m.start()
	return &StreamServer{mux: m, exporter: exporter}, nil
}

// Opens reports whether call message m asks to open a stream.
func Opens(m *Msg) bool { return m.Header.Get(wire.HeaderStream) != "" }

// Accept creates the exporter's end of the stream that call m opens, in group (the lease, for
// ResetGroup). Its subjects carry the lease m presents (Jsn-Lease; wire.NoLease if none) and the
// holder m's reply subject names (wire.StreamToken): only frames on its own subject reach it, so
// another client sharing the lease can neither write to it nor read it. Reply to m with the
// returned header to tell the client the stream is open.
func (ss *StreamServer) Accept(m *Msg, group string) (*Stream, wire.Header, error) {
	id := m.Header.Get(wire.HeaderStream)
	if !wire.ValidName(id) {
		return nil, nil, &wire.Error{Code: wire.InvalidArgument, Message: fmt.Sprintf("%s %q is not a valid stream id", wire.HeaderStream, id)}
	}
	w, err := strconv.ParseUint(m.Header.Get(wire.HeaderStreamWindow), 10, 64)
	if err != nil || w == 0 {
		return nil, nil, &wire.Error{Code: wire.InvalidArgument, Message: fmt.Sprintf("%s %q must be a positive number of bytes", wire.HeaderStreamWindow, m.Header.Get(wire.HeaderStreamWindow))}
	}
	lease := m.Header.Get(wire.HeaderLease)
	tok := wire.StreamToken(lease, InboxHolder(m.Reply, ss.exporter, lease))
	s := newStream(ss.mux, id, wire.StreamOutSubject(ss.exporter, tok, id), group, DefaultWindow)
	s.lease = tok
	s.limit = w
	d := ss.direct.Load()
	if d != nil && m.Header.Get(HeaderStreamDirect) == "1" {
		s.decided = make(chan struct{})
		s.offeredBy, s.token = d, randomToken(directTokenLen/2)
	}
	if err := ss.mux.add(s); err != nil {
		return nil, nil, err
	}
	h := wire.Header{wire.HeaderStreamWindow: {strconv.FormatUint(DefaultWindow, 10)}}
	if s.offeredBy != nil {
		if d.offer(s) {
			h.Set(HeaderStreamDirect, d.Address())
			h.Set(HeaderStreamToken, s.token)
			if d.pin != "" {
				h.Set(HeaderStreamPin, d.pin)
			}
		} else {
			s.decide(nil)
		}
	}
	return s, h, nil
}

// ResetGroup resets every stream of group (a lease) with err, concurrently: a reset may wait a
// little for a frame in flight on a direct connection.
func (ss *StreamServer) ResetGroup(group string, err error) {
	var wg sync.WaitGroup
	for _, s := range ss.mux.snapshot(group) {
		wg.Go(func() { s.Reset(err) })
	}
	wg.Wait()
}

// ResetHolder resets, like ResetGroup, every stream of group (a lease) opened by holder (its
// stream token is wire.StreamToken(group, holder)): a client the lease is no longer shared
// with, or its previous holder.
func (ss *StreamServer) ResetHolder(group, holder string, err error) {
	tok := wire.StreamToken(group, holder)
	var wg sync.WaitGroup
	for _, s := range ss.mux.snapshot(group) {
		if s.lease == tok {
			wg.Go(func() { s.Reset(err) })
		}
	}
	wg.Wait()
}

// Count returns how many streams are open.
func (ss *StreamServer) Count() int {
	ss.mux.mu.Lock()
	defer ss.mux.mu.Unlock()
	return len(ss.mux.m)
}

// Close resets every stream and stops receiving.
func (ss *StreamServer) Close() {
	ss.mux.close(&wire.Error{Code: wire.Unavailable, Message: "exporter shutting down"})
}
