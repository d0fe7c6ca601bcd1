package fileserver

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"strconv"
	"sync"
	"time"

	"jsn.dev/jsn/bus/wire"
	"jsn.dev/jsn/drivers/driver"
)

func init() {
	driver.MustRegister(driver.Info{
		Type: "fileserver.TFTP", Interface: Interface,
		Doc:     "read-only TFTP server of an exporter directory; files uploaded through jsn",
		New:     NewTFTP,
		Aliases: []string{"jumpstarter_driver_tftp.driver.Tftp"},
	})
}

// Common is the config every file server has (Jumpstarter's Tftp and HttpServer keys).
type Common struct {
	RootDir              string `yaml:"root_dir"`
	Host                 string `yaml:"host"`
	Port                 int    `yaml:"port"`
	RemoveCreatedOnClose bool   `yaml:"remove_created_on_close"`
	// Advertise is the host put in URLs, for devices that reach the exporter by another address
	// than the one it listens on (QEMU user networking: 10.0.2.2). Default: host, or the
	// exporter's outbound address when host is empty or a wildcard.
	Advertise string `yaml:"advertise"`
	// ListenHint is added to the reason shown when the port cannot be bound, by a driver that
	// makes this server itself (a flasher: "set the flasher's tftp_port …").
	ListenHint string `yaml:"-"`

	dir *Dir // the served directory while open
}

// Put stores a file to serve.
func (c *Common) Put(ctx context.Context, name string, r io.Reader) (FileInfo, error) {
	if c.dir == nil {
		return FileInfo{}, wire.Errorf(wire.Unavailable, "put: server not open")
	}
	return c.dir.Put(ctx, name, r)
}

// Get reads a served file.
func (c *Common) Get(ctx context.Context, name string, w io.Writer) error {
	if c.dir == nil {
		return wire.Errorf(wire.Unavailable, "get: server not open")
	}
	return c.dir.Get(ctx, name, w)
}

// List lists the served files.
func (c *Common) List(ctx context.Context) ([]FileInfo, error) {
	if c.dir == nil {
		return nil, wire.Errorf(wire.Unavailable, "list: server not open")
	}
	return c.dir.List(ctx)
}

// Delete removes a served file.
func (c *Common) Delete(ctx context.Context, name string) error {
	if c.dir == nil {
		return wire.Errorf(wire.Unavailable, "delete: server not open")
	}
	return c.dir.Delete(ctx, name)
}

// Watch reports transfers of name.
func (c *Common) Watch(name string, fn Progress) func() {
	if c.dir == nil {
		return func() {}
	}
	return c.dir.Watch(name, fn)
}

// listenFailed is the reason shown when addr cannot be bound.
func (c *Common) listenFailed(proto, addr string, err error) string {
	msg := fmt.Sprintf("listen on %s %s: %v", proto, addr, err)
	if c.ListenHint != "" {
		msg += "; " + c.ListenHint
	}
	return msg
}

func (c *Common) validate(errs *[]error) {
	if c.RootDir == "" {
		*errs = append(*errs, driver.FieldErrorf("root_dir", "must not be empty"))
	}
	if c.Port < 0 || c.Port > 65535 {
		*errs = append(*errs, driver.FieldErrorf("port", "%d is out of range (0..65535; 0 picks a free port)", c.Port))
	}
	if c.Host != "" && net.ParseIP(c.Host) == nil {
		*errs = append(*errs, driver.FieldErrorf("host", "want an IP address to listen on, got %q", c.Host))
	}
	if c.Advertise != "" && (len(c.Advertise) > 253 || url.PathEscape(c.Advertise) != c.Advertise) {
		*errs = append(*errs, driver.FieldErrorf("advertise", "want a host name or IP address, got %q", c.Advertise))
	}
}

// advertised is the host of URLs given the listener's address.
func (c *Common) advertised(bound net.IP) string {
	if c.Advertise != "" {
		return c.Advertise
	}
	if bound != nil && !bound.IsUnspecified() {
		return bound.String()
	}
	return outboundIP()
}

// outboundIP is the address the exporter's default route leaves from (no packet is sent), or
// 127.0.0.1 without a route.
func outboundIP() string {
	c, err := net.Dial("udp4", "192.0.2.1:9") // TEST-NET-1: only the route is looked up
	if err != nil {
		return "127.0.0.1"
	}
	defer c.Close()
	return c.LocalAddr().(*net.UDPAddr).IP.String()
}

// TFTP is a read-only TFTP server (RFC 1350 with the blksize, timeout, tsize and windowsize
// options) of root_dir. Write requests are refused: files arrive through `put`.
//
// Config (Jumpstarter's Tftp keys, plus jsn's):
//
//	root_dir: /var/lib/tftpboot      # created when absent
//	host: ""                         # IP address to listen on; "" = every address
//	port: 69                         # 0 picks a free one
//	remove_created_on_close: true    # files uploaded in a lease are removed when it ends
//	advertise: ""                    # host in URLs (default: host, or the outbound address)
//	timeout: 1s                      # retransmission timeout when the client asks none
//	retries: 5                       # retransmissions before a transfer is given up
//	max_blksize: 1468                # largest block accepted (fits an Ethernet frame)
//	max_windowsize: 1                # RFC 7440 windows up to this many blocks (1: no windows)
type TFTP struct {
	Common        `yaml:",inline"`
	Timeout       time.Duration `yaml:"timeout"`
	Retries       int           `yaml:"retries"`
	MaxBlksize    int           `yaml:"max_blksize"`
	MaxWindowsize int           `yaml:"max_windowsize"`

	log *slog.Logger

	mu     sync.Mutex
	conn   net.PacketConn // nil while not listening; guarded by mu
	down   string         // why not listening; guarded by mu
	cancel context.CancelFunc
	wg     sync.WaitGroup // the serve loop and the transfers
}

// NewTFTP is the fileserver.TFTP constructor: defaults only, no side effects.
func NewTFTP(env driver.Env) driver.Driver {
	return &TFTP{Common: Common{RootDir: "/var/lib/tftpboot", Port: 69, RemoveCreatedOnClose: true},
		Timeout: time.Second, Retries: 5, MaxBlksize: 1468, MaxWindowsize: 1, log: env.Log}
}

// Validate checks the config.
func (t *TFTP) Validate() error {
	var errs []error
	t.validate(&errs)
	if t.Timeout <= 0 || t.Timeout > 255*time.Second {
		errs = append(errs, driver.FieldErrorf("timeout", "want 1ms..255s, got %s", t.Timeout))
	}
	if t.Retries < 0 || t.Retries > 100 {
		errs = append(errs, driver.FieldErrorf("retries", "%d is out of range (0..100)", t.Retries))
	}
	if t.MaxBlksize < tftpMinBlksize || t.MaxBlksize > tftpMaxBlksize {
		errs = append(errs, driver.FieldErrorf("max_blksize", "%d is out of range (%d..%d)", t.MaxBlksize, tftpMinBlksize, tftpMaxBlksize))
	}
	if t.MaxWindowsize < 1 || t.MaxWindowsize > tftpMaxWindow {
		errs = append(errs, driver.FieldErrorf("max_windowsize", "%d is out of range (1..%d)", t.MaxWindowsize, tftpMaxWindow))
	}
	return errors.Join(errs...)
}

// Open makes root_dir and starts listening. A port that cannot be bound does not fail Open: the
// driver is unavailable with the reason, and tries again at each reset.
func (t *TFTP) Open(ctx context.Context) error {
	t.dir = NewDir(t.RootDir, t.RemoveCreatedOnClose)
	if err := t.dir.Open(); err != nil {
		return err
	}
	t.listen()
	return nil
}

func (t *TFTP) listen() {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.conn != nil {
		return
	}
	addr := net.JoinHostPort(t.Host, strconv.Itoa(t.Port))
	c, err := net.ListenPacket("udp", addr)
	if err != nil {
		t.down = t.listenFailed("udp", addr, err)
		t.log.Warn("tftp server not listening", "reason", t.down)
		return
	}
	t.conn, t.down = c, ""
	ctx, cancel := context.WithCancel(context.Background())
	t.cancel = cancel
	t.wg.Add(1)
	go t.serve(ctx, c)
	t.log.Info("tftp server listening", "addr", c.LocalAddr().String(), "root", t.RootDir)
}

// Addr is the address the server listens on, nil when it does not.
func (t *TFTP) Addr() *net.UDPAddr {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.conn == nil {
		return nil
	}
	return t.conn.LocalAddr().(*net.UDPAddr)
}

// Unavailable says why the server is not listening.
func (t *TFTP) Unavailable() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.down
}

// Reset removes what the ended lease uploaded (remove_created_on_close) and listens again if
// the port could not be bound before.
func (t *TFTP) Reset(ctx context.Context) error {
	if t.dir == nil {
		return nil
	}
	t.listen()
	return t.dir.RemoveCreated()
}

// Close stops the server and waits for the transfers to end.
func (t *TFTP) Close() error {
	t.mu.Lock()
	c := t.conn
	t.conn = nil
	if t.cancel != nil {
		t.cancel()
	}
	t.mu.Unlock()
	if c != nil {
		c.Close()
	}
	t.wg.Wait()
	if t.dir != nil {
		return t.dir.RemoveCreated()
	}
	return nil
}

func (t *TFTP) serve(ctx context.Context, c net.PacketConn) {
	defer t.wg.Done()
	buf := make([]byte, 2048)
	for {
		n, from, err := c.ReadFrom(buf)
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		req, err := parseRequest(buf[:n])
		if err != nil {
			_, _ = c.WriteTo(errorPacket(errIllegalOp, "bad request: "+err.Error()), from)
			continue
		}
		if req.op == opWRQ {
			_, _ = c.WriteTo(errorPacket(errAccess, "this server is read-only: upload files with jsn (jsn fileserver put)"), from)
			continue
		}
		t.wg.Add(1)
		go func() {
			defer t.wg.Done()
			t.send(ctx, from, req)
		}()
	}
}

// send serves one read request from a socket of its own (the transfer's TID).
func (t *TFTP) send(ctx context.Context, to net.Addr, req tftpRequest) {
	host := t.Host
	c, err := net.ListenPacket("udp", net.JoinHostPort(host, "0"))
	if err != nil {
		t.log.Warn("tftp transfer socket", "err", err)
		return
	}
	defer c.Close()
	stop := context.AfterFunc(ctx, func() { c.Close() })
	defer stop()
	log := t.log.With("file", req.filename, "client", to.String())
	f, size, err := t.dir.OpenFile(req.filename)
	if err != nil {
		code := uint16(errAccess)
		if wire.CodeOf(err) == wire.NotFound {
			code = errNotFound
		}
		log.Info("tftp refused", "err", err)
		_, _ = c.WriteTo(errorPacket(code, err.Error()), to)
		return
	}
	defer f.Close()
	name, _ := CleanName(req.filename)
	p, acked := negotiate(req, t.MaxBlksize, t.MaxWindowsize)
	timeout := t.Timeout
	if p.timeout > 0 {
		timeout = time.Duration(p.timeout) * time.Second
	}
	x := &transfer{c: c, to: to, timeout: timeout, retries: t.Retries}
	start := time.Now()
	if len(acked) > 0 {
		if err := x.exchange(oack(p, acked, size), 0); err != nil {
			log.Info("tftp transfer failed", "err", err)
			return
		}
	}
	blocks := uint64(size/int64(p.blksize)) + 1 // the last block is short, possibly empty
	buf := make([]byte, 4+p.blksize)
	base := uint64(1) // first block not acknowledged
	tries := 0
	for base <= blocks {
		end := min(base+uint64(p.window)-1, blocks)
		for k := base; k <= end; k++ {
			n, err := f.ReadAt(buf[4:], int64(k-1)*int64(p.blksize))
			if err != nil && !errors.Is(err, io.EOF) {
				_, _ = c.WriteTo(errorPacket(errUndefined, "read error"), to)
				log.Warn("tftp read", "err", err)
				return
			}
			binary.BigEndian.PutUint16(buf, opDATA)
			binary.BigEndian.PutUint16(buf[2:], uint16(k))
			if _, err := c.WriteTo(buf[:4+n], to); err != nil {
				log.Info("tftp send", "err", err)
				return
			}
		}
		acked, err := x.waitAck(base-1, end)
		if err != nil {
			if errors.Is(err, errTimeout) && tries < t.Retries {
				tries++
				continue
			}
			log.Info("tftp transfer failed", "err", err, "block", base)
			return
		}
		if acked >= base {
			tries = 0
			base = acked + 1
			t.dir.progress(name, min(int64(acked)*int64(p.blksize), size), size)
		}
	}
	log.Info("tftp transfer done", "bytes", size, "blksize", p.blksize, "windowsize", p.window, "took", time.Since(start).Round(time.Millisecond))
}

var errTimeout = errors.New("timed out waiting for the client")

// transfer is one transfer's socket and peer.
type transfer struct {
	c       net.PacketConn
	to      net.Addr
	timeout time.Duration
	retries int
}

// exchange sends p until block is acknowledged.
func (x *transfer) exchange(p []byte, block uint64) error {
	for try := 0; ; try++ {
		if _, err := x.c.WriteTo(p, x.to); err != nil {
			return err
		}
		_, err := x.waitAck(block, block)
		if err == nil {
			return nil
		}
		if !errors.Is(err, errTimeout) || try >= x.retries {
			return err
		}
	}
}

// waitAck waits for an ACK of a block in [lo, hi] (16-bit block numbers matched against that
// window) and returns which; an ACK outside is ignored.
func (x *transfer) waitAck(lo, hi uint64) (uint64, error) {
	buf := make([]byte, 1024)
	deadline := time.Now().Add(x.timeout)
	for {
		if err := x.c.SetReadDeadline(deadline); err != nil {
			return 0, err
		}
		n, from, err := x.c.ReadFrom(buf)
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				return 0, errTimeout
			}
			return 0, err
		}
		if from.String() != x.to.String() {
			_, _ = x.c.WriteTo(errorPacket(errUnknownTID, "unknown transfer id"), from)
			continue
		}
		op, block, msg, err := parseReply(buf[:n])
		if err != nil {
			continue
		}
		if op == opERROR {
			return 0, fmt.Errorf("the client gave up: error %d: %s", block, msg)
		}
		for k := hi; k+1 > lo; k-- { // the newest matching block
			if uint16(k) == block {
				return k, nil
			}
			if k == 0 {
				break
			}
		}
	}
}

// URL is tftp://host:port/name.
func (t *TFTP) URL(name string) (string, error) {
	n, err := CleanName(name)
	if err != nil {
		return "", bad("url", err)
	}
	a := t.Addr()
	if a == nil {
		return "", wire.Errorf(wire.Unavailable, "url: %s", t.Unavailable())
	}
	return (&url.URL{Scheme: "tftp", Host: net.JoinHostPort(t.advertised(a.IP), strconv.Itoa(a.Port)), Path: "/" + n}).String(), nil
}

// RootDir is the served directory.
func (t *TFTP) Root() string { return t.RootDir }

// Methods serves jsn.fileserver.v1.
func (t *TFTP) Methods() []driver.Method { return Methods(t, Options{}) }

var (
	_ Device              = (*TFTP)(nil)
	_ Watcher             = (*TFTP)(nil)
	_ driver.Validator    = (*TFTP)(nil)
	_ driver.Availability = (*TFTP)(nil)
	_ driver.Methoder     = (*TFTP)(nil)
)
