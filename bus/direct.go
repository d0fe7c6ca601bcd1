package bus

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"jsn.dev/jsn/bus/wire"
)

// Direct streams. The broker copies every frame twice more than a socket would (publisher →
// server → subscriber), which makes bulk streams CPU-bound on small machines. An exporter that
// has a DirectListener offers, in its reply to a stream-opening call, an address and a one-time
// token; the client dials the address, presents the token, and from then on both ends send that
// stream's frames over the connection, in the same format as on the bus, each prefixed by its
// length. The token only travels in the reply to the lease holder's call, so the direct
// connection is authorised by the lease like the bus path. A client that cannot reach the
// address (another network, a firewall) says so by sending its frames on the bus: the stream
// then works as if no direct path had been offered. docs/protocol.md describes the exchange.

// Header names of the direct stream offer.
const (
	HeaderStreamDirect = "Jsn-Stream-Direct"       // client: "1" if it can use a direct path; exporter: where to dial
	HeaderStreamToken  = "Jsn-Stream-Direct-Token" // exporter: the one-time token to present there
	HeaderStreamPin    = "Jsn-Stream-Direct-Pin"   // exporter, TCP: SHA-256 of its TLS certificate
)

const (
	directTokenLen   = 64 // hex characters
	directAck        = 'K'
	maxDirectFrame   = wire.FrameHeaderLen + 1<<20 // larger than any frame a peer of ours sends
	directHandshake  = 5 * time.Second             // dial, token and acknowledgement
	directDrain      = 5 * time.Second             // how long a finished stream waits for the peer's end
	directResetGrace = time.Second                 // how long a lost connection waits for a reset on the bus
)

// directPendingTTL is how long an offer waits for the client before the exporter assumes the bus
// path (a client that vanished between its call and its choice).
var directPendingTTL = 10 * time.Second

// DirectListener accepts direct stream connections for the streams its StreamServers offer.
type DirectListener struct {
	ln        net.Listener
	advertise string      // "unix:/path" or "tcp:host:port"
	tls       *tls.Config // TCP: the listener's TLS, with a certificate made at start
	pin       string      // TCP: hex SHA-256 of that certificate

	mu      sync.Mutex
	pending map[string]*Stream // token → stream awaiting its client; guarded by mu
	closed  bool
	wg      sync.WaitGroup
	taken   atomic.Int64   // streams that went direct
	slots   chan struct{}  // handshakes in progress
	sources map[string]int // TCP: handshakes in progress per source (sourceKey); guarded by mu
}

// Handshake bounds: a listener authenticates at most maxHandshakes connections at once, and at
// most maxHandshakesPerSource of them from one TCP source (an address; an IPv6 /64), so that one
// machine opening idle connections cannot take every slot from the lease holders.
const (
	maxHandshakes          = 64
	maxHandshakesPerSource = 8
)

// sourceKey names the source of a TCP connection for maxHandshakesPerSource: its IPv4 address,
// or the /64 of its IPv6 address (one host's share of addresses); "" for other connections.
func sourceKey(a net.Addr) string {
	ta, ok := a.(*net.TCPAddr)
	if !ok {
		return ""
	}
	if v4 := ta.IP.To4(); v4 != nil {
		return v4.String()
	}
	return ta.IP.Mask(net.CIDRMask(64, 128)).String() + "/64"
}

// Accepted is how many streams have gone direct through d.
func (d *DirectListener) Accepted() int64 { return d.taken.Load() }

// ListenDirect listens for direct stream connections. address is "unix:/path/to.sock" or
// "tcp:host:port"; advertise is what clients dial ("" means the address listened on, which for
// a TCP wildcard address such as 0.0.0.0:7400 is not dialable from elsewhere).
//
// TCP connections are TLS 1.3 with a self-signed certificate made here; its SHA-256 travels in
// the offer (on the caller's private inbox), and the client accepts that certificate only. So a
// direct TCP stream is as private as the bus, with no certificate to issue or renew. A Unix
// socket is plain: its directory's permissions are what protect it.
func ListenDirect(address, advertise string) (*DirectListener, error) {
	network, addr, ok := strings.Cut(address, ":")
	if !ok || (network != "unix" && network != "tcp") || addr == "" {
		return nil, fmt.Errorf("direct streams: address %q: want unix:/path or tcp:host:port", address)
	}
	ln, err := net.Listen(network, addr)
	if err != nil {
		return nil, fmt.Errorf("direct streams: %w", err)
	}
	if network == "unix" {
		// Like bus.sock: only the session's user may connect (its directory is 0700 too).
		if err := os.Chmod(addr, 0o600); err != nil {
			ln.Close()
			return nil, fmt.Errorf("direct streams: %w", err)
		}
	}
	if advertise == "" {
		advertise = network + ":" + ln.Addr().String()
	} else if n, a, ok := strings.Cut(advertise, ":"); !ok || (n != "unix" && n != "tcp") || a == "" {
		ln.Close()
		return nil, fmt.Errorf("direct streams: advertise %q: want unix:/path or tcp:host:port", advertise)
	}
	d := &DirectListener{ln: ln, advertise: advertise, pending: map[string]*Stream{}, slots: make(chan struct{}, maxHandshakes),
		sources: map[string]int{}}
	if network == "tcp" {
		if d.tls, d.pin, err = selfSigned(); err != nil {
			ln.Close()
			return nil, fmt.Errorf("direct streams: %w", err)
		}
	}
	d.wg.Add(1)
	go d.accept()
	return d, nil
}

// Address is what clients are told to dial.
func (d *DirectListener) Address() string { return d.advertise }

// Close stops accepting; streams already direct keep their connections.
func (d *DirectListener) Close() error {
	d.mu.Lock()
	d.closed = true
	pend := d.pending
	d.pending = map[string]*Stream{}
	d.mu.Unlock()
	err := d.ln.Close()
	for _, s := range pend {
		s.decide(nil)
	}
	d.wg.Wait()
	return err
}

// offer registers s, whose token is set, as waiting for a direct connection. The stream falls back
// to the bus if nobody presents the token within directPendingTTL.
func (d *DirectListener) offer(s *Stream) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return false
	}
	d.pending[s.token] = s
	token := s.token
	time.AfterFunc(directPendingTTL, func() {
		if d.take(token) != nil {
			s.decide(nil)
		}
	})
	return true
}

// take removes and returns the stream waiting for token.
func (d *DirectListener) take(token string) *Stream {
	d.mu.Lock()
	defer d.mu.Unlock()
	s := d.pending[token]
	delete(d.pending, token)
	return s
}

func (d *DirectListener) accept() {
	defer d.wg.Done()
	for {
		c, err := d.ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			time.Sleep(10 * time.Millisecond) // e.g. out of file descriptors
			continue
		}
		// Handshakes are bounded: a peer that opens connections and sends nothing holds a slot
		// for at most directHandshake, and one source holds at most maxHandshakesPerSource.
		src := sourceKey(c.RemoteAddr())
		if !d.enter(src) {
			c.Close()
			continue
		}
		select {
		case d.slots <- struct{}{}:
			go func() {
				defer func() { <-d.slots; d.leave(src) }()
				d.handshake(c)
			}()
		default:
			d.leave(src)
			c.Close()
		}
	}
}

// enter counts a handshake from src, unless src has maxHandshakesPerSource in progress.
func (d *DirectListener) enter(src string) bool {
	if src == "" {
		return true
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.sources[src] >= maxHandshakesPerSource {
		return false
	}
	d.sources[src]++
	return true
}

// leave ends a handshake from src.
func (d *DirectListener) leave(src string) {
	if src == "" {
		return
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.sources[src]--; d.sources[src] <= 0 {
		delete(d.sources, src)
	}
}

// handshake reads the token and attaches c to the stream it names, or closes c.
func (d *DirectListener) handshake(c net.Conn) {
	_ = c.SetDeadline(time.Now().Add(directHandshake))
	if d.tls != nil {
		c = tls.Server(c, d.tls)
	}
	var tok [directTokenLen]byte
	if _, err := io.ReadFull(c, tok[:]); err != nil {
		c.Close()
		return
	}
	s := d.take(string(tok[:]))
	if s == nil {
		c.Close() // unknown, used or expired token: the client falls back to the bus
		return
	}
	if _, err := c.Write([]byte{directAck}); err != nil {
		c.Close()
		s.decide(nil)
		return
	}
	_ = c.SetDeadline(time.Time{})
	bigSocketBuffers(c)
	d.taken.Add(1)
	s.decide(c)
}

// dialDirect connects to an exporter's direct address and presents token. A TCP address needs
// pin, the SHA-256 of the certificate the exporter's TLS must show.
func dialDirect(ctx context.Context, address, token, pin string) (net.Conn, error) {
	network, addr, ok := strings.Cut(address, ":")
	if !ok || (network != "unix" && network != "tcp") || len(token) != directTokenLen {
		return nil, fmt.Errorf("direct stream offer %q is malformed", address)
	}
	if network == "tcp" && len(pin) != 2*sha256.Size {
		return nil, fmt.Errorf("direct stream offer %q has no certificate pin", address)
	}
	ctx, cancel := context.WithTimeout(ctx, directHandshake)
	defer cancel()
	var dl net.Dialer
	c, err := dl.DialContext(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	if dl, ok := ctx.Deadline(); ok {
		_ = c.SetDeadline(dl)
	}
	if network == "tcp" {
		c = tls.Client(c, &tls.Config{
			MinVersion: tls.VersionTLS13,
			// The certificate is self-signed: what vouches for it is the pin from the offer.
			InsecureSkipVerify: true,
			VerifyConnection: func(cs tls.ConnectionState) error {
				if len(cs.PeerCertificates) == 0 {
					return errors.New("no certificate")
				}
				sum := sha256.Sum256(cs.PeerCertificates[0].Raw)
				if hex.EncodeToString(sum[:]) != pin {
					return errors.New("certificate does not match the offer's pin")
				}
				return nil
			},
		})
	}
	var ack [1]byte
	if _, err = io.WriteString(c, token); err == nil {
		_, err = io.ReadFull(c, ack[:])
	}
	if err != nil || ack[0] != directAck {
		c.Close()
		if err == nil {
			err = errors.New("bad acknowledgement")
		}
		return nil, fmt.Errorf("direct stream %s: %w", address, err)
	}
	_ = c.SetDeadline(time.Time{})
	bigSocketBuffers(c)
	return c, nil
}

// selfSigned makes the TLS configuration of a TCP direct listener: an ECDSA P-256 key and a
// certificate for it, and the certificate's hex SHA-256.
func selfSigned() (*tls.Config, string, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, "", err
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "jsn direct streams"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().AddDate(10, 0, 0),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, "", err
	}
	sum := sha256.Sum256(der)
	cfg := &tls.Config{
		MinVersion:   tls.VersionTLS13,
		Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}},
	}
	return cfg, hex.EncodeToString(sum[:]), nil
}

// directConn is a stream's direct connection. Writes of whole frames are serialized by holding
// its write slot (lock/unlock), which a reset can also wait for with a bound (lockWithin).
type directConn struct {
	c    net.Conn
	slot chan struct{} // capacity 1: full while a frame is being written
	buf  []byte        // TLS: the frame being written, in one piece; guarded by the slot
}

func newDirectConn(c net.Conn) *directConn {
	return &directConn{c: c, slot: make(chan struct{}, 1)}
}

func (d *directConn) lock()   { d.slot <- struct{}{} }
func (d *directConn) unlock() { <-d.slot }

// tryLock takes the write slot if it is free.
func (d *directConn) tryLock() bool {
	select {
	case d.slot <- struct{}{}:
		return true
	default:
		return false
	}
}

// lockWithin waits at most max for the write slot: a data frame being written ends when the peer
// reads, and a peer that stopped reading must not hold a reset forever.
func (d *directConn) lockWithin(max time.Duration) bool {
	if d.tryLock() {
		return true
	}
	t := time.NewTimer(max)
	defer t.Stop()
	select {
	case d.slot <- struct{}{}:
		return true
	case <-t.C:
		return false
	}
}

type closeWriter interface{ CloseWrite() error }

// send writes one frame (see write) holding the write slot.
func (d *directConn) send(head, data []byte) error {
	d.lock()
	defer d.unlock()
	return d.write(head, data)
}

// write sends one frame, whose encoding is head followed by data (which may be nil).
func (d *directConn) write(head, data []byte) error {
	var l [4]byte
	binary.BigEndian.PutUint32(l[:], uint32(len(head)+len(data)))
	if _, ok := d.c.(*tls.Conn); ok {
		// Three writes would be three TLS records: send one.
		d.buf = append(append(append(d.buf[:0], l[:]...), head...), data...)
		_, err := d.c.Write(d.buf)
		return err
	}
	bufs := net.Buffers{l[:], head}
	if len(data) > 0 {
		bufs = append(bufs, data)
	}
	_, err := bufs.WriteTo(d.c)
	return err
}

// shut ends our side of the connection: blocked writes fail, the peer reads EOF after the frames
// already sent, and the reader gets directDrain to see the peer's end before the connection closes
// (closing with unread data would make the kernel discard what the peer has not read yet).
func (d *directConn) shut() {
	now := time.Now()
	_ = d.c.SetWriteDeadline(now)
	if cw, ok := d.c.(closeWriter); ok {
		_ = cw.CloseWrite()
	}
	_ = d.c.SetReadDeadline(now.Add(directDrain))
}

// sendAndShut gives a direct connection that arrived after its stream ended the stream's reset
// frame, then ends it as shut does and closes it once the peer has closed its side (or after
// directDrain).
func sendAndShut(d *directConn, frame []byte) {
	defer d.c.Close()
	_ = d.c.SetWriteDeadline(time.Now().Add(directDrain))
	_ = d.send(frame, nil)
	d.shut()
	_, _ = io.Copy(io.Discard, d.c)
}

// readDirect reads frames from the direct connection until it ends, then closes it.
func (s *Stream) readDirect(d *directConn) {
	defer d.c.Close()
	br := bufio.NewReaderSize(d.c, 64<<10)
	var hdr [4 + wire.FrameHeaderLen]byte
	for {
		if _, err := io.ReadFull(br, hdr[:4]); err != nil {
			s.directEnded(err)
			return
		}
		n := binary.BigEndian.Uint32(hdr[:4])
		if n > maxDirectFrame {
			s.Reset(&wire.Error{Code: wire.InvalidArgument, Message: fmt.Sprintf("stream %s: direct frame of %d bytes exceeds %d", s.id, n, maxDirectFrame)})
			_, _ = io.Copy(io.Discard, br)
			return
		}
		var f wire.Frame
		var err error
		if n >= wire.FrameHeaderLen {
			if _, err := io.ReadFull(br, hdr[4:]); err != nil {
				s.directEnded(err)
				return
			}
		}
		if n >= wire.FrameHeaderLen && wire.FrameType(hdr[4]) == wire.FrameData && n-wire.FrameHeaderLen <= uint32(directChunk) {
			// Data is read straight into a pooled buffer that Read gives back once consumed.
			data := directBuf(int(n - wire.FrameHeaderLen))
			if _, err := io.ReadFull(br, data); err != nil {
				s.directEnded(err)
				return
			}
			f = wire.Frame{Type: wire.FrameData, Offset: binary.BigEndian.Uint64(hdr[5:]), Data: data}
		} else {
			buf := make([]byte, n)
			copy(buf, hdr[4:4+min(n, wire.FrameHeaderLen)])
			if n > wire.FrameHeaderLen {
				if _, err := io.ReadFull(br, buf[wire.FrameHeaderLen:]); err != nil {
					s.directEnded(err)
					return
				}
			}
			if f, err = wire.DecodeFrame(buf); err != nil {
				s.Reset(err)
				_, _ = io.Copy(io.Discard, br)
				return
			}
		}
		s.handle(f, true)
	}
}

// directBufs holds buffers (of directChunk bytes) that direct data frames are read into.
var directBufs sync.Pool

// directBuf returns a buffer of n bytes (n ≤ directChunk), pooled when possible.
func directBuf(n int) []byte {
	if p, ok := directBufs.Get().(*[]byte); ok {
		return (*p)[:n]
	}
	return make([]byte, n, directChunk)
}

// releaseDirectBuf gives a fully read buffer back to the pool if it came from it.
func releaseDirectBuf(b []byte) {
	if cap(b) != directChunk {
		return
	}
	b = b[:directChunk]
	directBufs.Put(&b)
}

// directEnded handles the end of the direct connection: after a clean exchange of FINs it is the
// peer closing; otherwise the connection was lost.
func (s *Stream) directEnded(err error) {
	s.mu.Lock()
	clean := s.finSent && s.finRecv
	s.mu.Unlock()
	if clean {
		s.fail(ErrStreamClosed, true)
		return
	}
	// A peer that resets a stream while its write slot is held (a long data frame to a slow
	// reader) sends the reset on the bus and then ends the connection: that reset, not the
	// end, is what this side must report. Give the bus a moment to deliver it.
	select {
	case <-s.ctx.Done():
		return
	case <-time.After(directResetGrace):
	}
	if errors.Is(err, io.EOF) {
		err = errors.New("closed by the peer")
	}
	s.fail(&wire.Error{Code: wire.Unavailable, Message: fmt.Sprintf("stream %s: direct connection lost: %v", s.id, err)}, true)
}
