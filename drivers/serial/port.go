package serial

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"syscall"
	"time"

	bugserial "go.bug.st/serial"

	"jsn.dev/jsn/bus/wire"
	"jsn.dev/jsn/drivers/driver"
)

func init() {
	driver.MustRegister(driver.Info{
		Type:      "serial.Port",
		Interface: Interface,
		Doc:       "a serial console, recorded and shared: a device path or socket://host:port",
		New:       NewPort,
		Aliases:   []string{"jumpstarter_driver_pyserial.driver.PySerial"},
	})
}

// StandardBaudrates are the usual rates; any other positive rate up to MaxBaudrate is accepted
// too (Linux sets it exactly).
var StandardBaudrates = []int{50, 75, 110, 134, 150, 200, 300, 600, 1200, 1800, 2400, 4800, 9600,
	19200, 38400, 57600, 115200, 230400, 460800, 500000, 576000, 921600, 1000000, 1152000,
	1500000, 2000000, 2500000, 3000000, 3500000, 4000000}

// Port is the serial.Port driver. The exporter keeps the device open all the time; a reader
// goroutine records its output into a ring buffer, broadcasts it on the tap subject and fans it
// out to every open connect stream.
//
// Config (url and baudrate as in Jumpstarter's PySerial):
//
//	url: /dev/ttyUSB0     # required: a device path, or socket://host:port (raw TCP, ser2net)
//	baudrate: 115200      # 1..4000000
//	parity: none          # none|even|odd|mark|space
//	stopbits: 1           # 1|1.5|2
//	databits: 8           # 5..8
//	flow: none            # none|rtscts|xonxoff
//	buffer: 1048576       # ring buffer bytes, 4 KiB..64 MiB
//	reconnect: 1s         # how often to retry an absent device
//	check_present: true   # accepted for Jumpstarter configs; jsn always tolerates absence
//	cps: 0                # characters per second written to the device (0 = full speed), for
//	                      # consoles that drop typed-ahead input (pyserial's cps)
//	disable_hupcl: false  # keep DTR/RTS up when the device is closed (clears HUPCL)
//
// url may also be loop:// (pyserial's loopback: what is written is read back), for tests and
// for Jumpstarter configs that use it.
type Port struct {
	URL          string        `yaml:"url" jsn:"required"`
	Baudrate     int           `yaml:"baudrate"`
	Parity       string        `yaml:"parity"`
	StopBits     float64       `yaml:"stopbits"`
	DataBits     int           `yaml:"databits"`
	Flow         string        `yaml:"flow"`
	Buffer       int           `yaml:"buffer"`
	Reconnect    time.Duration `yaml:"reconnect"`
	CheckPresent bool          `yaml:"check_present"`
	CPS          float64       `yaml:"cps"`
	DisableHUPCL bool          `yaml:"disable_hupcl"`

	path string
	log  *slog.Logger
	tap  func([]byte)

	target target // set by Open
	ring   *ring  // set by Open

	cancel context.CancelFunc // ends run; set by Open
	wg     sync.WaitGroup     // run

	wmu sync.Mutex // serialises writes to the device

	mu      sync.Mutex
	dev     io.ReadWriteCloser // the open device; nil while absent; guarded by mu
	sp      bugserial.Port     // dev as a serial port; nil for socket:// or absent; guarded by mu
	why     string             // why the device is unusable; "" while dev != nil; guarded by mu
	baud    int                // current baud rate; guarded by mu
	conns   map[*conn]struct{} // open connect streams; guarded by mu
	closed  bool               // Close ran; guarded by mu
	noModem bool               // the device has no modem lines (a pty); guarded by mu
}

// conn is one open connect stream.
type conn struct {
	out    chan []byte             // output to send; never closed
	queued int                     // bytes in out; guarded by Port.mu
	cancel context.CancelCauseFunc // ends the stream with a cause
	done   chan struct{}           // closed when the handler returned
}

// NewPort is the serial.Port constructor: defaults only, no side effects.
func NewPort(env driver.Env) driver.Driver {
	return &Port{
		Baudrate: DefaultBaudrate, Parity: "none", StopBits: 1, DataBits: 8, Flow: "none",
		Buffer: DefaultBuffer, Reconnect: DefaultReconnect, CheckPresent: true,
		path: env.Path, log: env.Log, tap: env.Tap,
		why: "not open", conns: map[*conn]struct{}{},
	}
}

// ValidBaudrate reports whether rate is acceptable: 1..MaxBaudrate.
func ValidBaudrate(rate int64) bool { return rate >= 1 && rate <= MaxBaudrate }

var parities = map[string]bugserial.Parity{
	"none": bugserial.NoParity, "even": bugserial.EvenParity, "odd": bugserial.OddParity,
	"mark": bugserial.MarkParity, "space": bugserial.SpaceParity,
}

var stopBits = map[float64]bugserial.StopBits{
	1: bugserial.OneStopBit, 1.5: bugserial.OnePointFiveStopBits, 2: bugserial.TwoStopBits,
}

// Validate checks the config.
func (p *Port) Validate() error {
	var errs []error
	if _, err := parseURL(p.URL); err != nil {
		errs = append(errs, driver.FieldErrorf("url", "%v", err))
	}
	if !ValidBaudrate(int64(p.Baudrate)) {
		errs = append(errs, driver.FieldErrorf("baudrate", "must be 1..%d, got %d", MaxBaudrate, p.Baudrate))
	}
	if _, ok := parities[p.Parity]; !ok {
		errs = append(errs, driver.FieldErrorf("parity", "must be none, even, odd, mark or space, got %q", p.Parity))
	}
	if _, ok := stopBits[p.StopBits]; !ok {
		errs = append(errs, driver.FieldErrorf("stopbits", "must be 1, 1.5 or 2, got %v", p.StopBits))
	}
	if !(p.CPS >= 0 && p.CPS <= 1e6) {
		errs = append(errs, driver.FieldErrorf("cps", "must be 0 (full speed) .. 1000000 characters per second, got %v", p.CPS))
	}
	if p.DataBits < 5 || p.DataBits > 8 {
		errs = append(errs, driver.FieldErrorf("databits", "must be 5..8, got %d", p.DataBits))
	}
	switch p.Flow {
	case "none", "rtscts", "xonxoff":
	default:
		errs = append(errs, driver.FieldErrorf("flow", "must be none, rtscts or xonxoff, got %q", p.Flow))
	}
	if p.Buffer < MinBuffer || p.Buffer > MaxBuffer {
		errs = append(errs, driver.FieldErrorf("buffer", "must be %d..%d bytes, got %d", MinBuffer, MaxBuffer, p.Buffer))
	}
	if p.Reconnect <= 0 {
		errs = append(errs, driver.FieldErrorf("reconnect", "must be positive, got %s", p.Reconnect))
	}
	return errors.Join(errs...)
}

// Open tries the device once and starts the goroutine that reads it and reopens it whenever it
// is absent. An absent device is not an error: the driver is unavailable until it appears.
func (p *Port) Open(ctx context.Context) error {
	t, err := parseURL(p.URL)
	if err != nil {
		return fmt.Errorf("open: url: %w", err)
	}
	p.target = t
	p.ring = newRing(p.Buffer)
	p.mu.Lock()
	p.baud = p.Baudrate
	p.mu.Unlock()
	rctx, cancel := context.WithCancel(context.Background())
	p.cancel = cancel
	dev := p.tryOpen(ctx)
	p.wg.Add(1)
	go p.run(rctx, dev)
	return nil
}

// tryOpen opens the device and attaches it, or records why it could not. It returns the
// attached device or nil.
func (p *Port) tryOpen(ctx context.Context) io.ReadWriteCloser {
	dev, sp, err := p.dial(ctx)
	p.mu.Lock()
	defer p.mu.Unlock()
	if err != nil {
		why := err.Error()
		if why != p.why {
			p.log.Info("serial device unavailable", "url", p.target.String(), "err", err)
		}
		p.why = why
		return nil
	}
	if p.closed {
		dev.Close()
		return nil
	}
	p.dev, p.sp, p.why = dev, sp, ""
	p.log.Info("serial device open", "url", p.target.String())
	return dev
}

// dial opens the device at the current baud rate.
func (p *Port) dial(ctx context.Context) (io.ReadWriteCloser, bugserial.Port, error) {
	if p.target.loop {
		return newLoopback(), nil, nil
	}
	if p.target.isSocket() {
		ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		var d net.Dialer
		c, err := d.DialContext(ctx, p.target.network(), p.target.addr)
		if err != nil {
			return nil, nil, fmt.Errorf("%s: %w", p.target, err)
		}
		return c, nil, nil
	}
	p.mu.Lock()
	mode := p.mode(p.baud)
	p.mu.Unlock()
	fc, err := openFlow(p.target.path, p.Flow, p.DisableHUPCL)
	if err != nil {
		return nil, nil, describeOpenErr(p.target.path, err)
	}
	sp, err := bugserial.Open(p.target.path, mode)
	if err != nil {
		fc.close()
		return nil, nil, describeOpenErr(p.target.path, err)
	}
	if err := fc.apply(p.Flow, p.DisableHUPCL); err != nil {
		sp.Close()
		return nil, nil, fmt.Errorf("%s: %w", p.target.path, err)
	}
	return sp, sp, nil
}

// describeOpenErr turns an open error into the reason shown by describe:
// "/dev/ttyUSB0: no such file".
func describeOpenErr(path string, err error) error {
	if errors.Is(err, syscall.ENOENT) {
		return fmt.Errorf("%s: no such file", path)
	}
	return fmt.Errorf("%s: %w", path, err)
}

// mode returns the serial settings at baud.
func (p *Port) mode(baud int) *bugserial.Mode {
	return &bugserial.Mode{BaudRate: baud, DataBits: p.DataBits, Parity: parities[p.Parity], StopBits: stopBits[p.StopBits]}
}

// run reads dev (nil if absent) until it fails, then retries every Reconnect, until ctx ends.
func (p *Port) run(ctx context.Context, dev io.ReadWriteCloser) {
	defer p.wg.Done()
	t := time.NewTimer(p.Reconnect)
	defer t.Stop()
	for {
		if dev == nil {
			t.Reset(p.Reconnect)
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			if dev = p.tryOpen(ctx); dev == nil {
				continue
			}
		}
		err := p.read(dev)
		if ctx.Err() != nil {
			return
		}
		p.detach(dev, err)
		dev = nil
	}
}

// errClosedByPeer is a clean end of a socket's input.
var errClosedByPeer = errors.New("closed by the other end")

// read copies the device's output to the ring, the tap and the streams until a read fails.
func (p *Port) read(dev io.Reader) error {
	buf := make([]byte, 4096)
	for {
		n, err := dev.Read(buf)
		if n > 0 {
			p.publish(time.Now(), append([]byte(nil), buf[:n]...))
		}
		if err != nil {
			if errors.Is(err, io.EOF) {
				return errClosedByPeer
			}
			return err
		}
	}
}

// publish records one chunk of output and hands it to every stream; a stream too far behind is
// dropped rather than let it stall the port.
func (p *Port) publish(t time.Time, b []byte) {
	p.ring.write(t, b)
	p.tap(b)
	p.mu.Lock()
	defer p.mu.Unlock()
	for c := range p.conns {
		if c.queued+len(b) <= MaxBacklog {
			select {
			case c.out <- b:
				c.queued += len(b)
				continue
			default:
			}
		}
		delete(p.conns, c)
		c.cancel(wire.Errorf(wire.Unavailable, "serial %s: console stream dropped: the client fell more than %d bytes behind the device", p.target, MaxBacklog))
	}
}

// detach forgets a device that failed and resets every stream with UNAVAILABLE.
func (p *Port) detach(dev io.ReadWriteCloser, err error) {
	dev.Close()
	why := fmt.Sprintf("serial %s disconnected: %v", p.target, err)
	if p.target.unix && errors.Is(err, errClosedByPeer) {
		// A local console socket (a QEMU board's) closes when its owner stops: expected.
		p.log.Info("serial socket closed by its owner", "url", p.target.String())
	} else {
		p.log.Warn("serial device lost", "url", p.target.String(), "err", err)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.dev == dev {
		p.dev, p.sp = nil, nil
	}
	p.why = why
	p.dropAll(wire.Errorf(wire.Unavailable, "%s", why))
}

// dropAll ends every stream with cause and returns them. Call with mu held.
func (p *Port) dropAll(cause error) []*conn {
	var out []*conn
	for c := range p.conns {
		c.cancel(cause)
		delete(p.conns, c)
		out = append(out, c)
	}
	return out
}

// Unavailable returns why the device cannot be used, "" when it is open.
func (p *Port) Unavailable() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.why
}

// Reset ends every console stream, restores the configured baud rate and raises DTR and RTS
// again. The device stays open and the ring buffer keeps its history (see Forget).
func (p *Port) Reset(ctx context.Context) error {
	p.mu.Lock()
	conns := p.dropAll(wire.Errorf(wire.Unavailable, "serial %s: console closed by driver reset", p.target))
	p.baud = p.Baudrate
	sp, noModem := p.sp, p.noModem
	p.mu.Unlock()
	for _, c := range conns {
		select {
		case <-c.done:
		case <-ctx.Done():
			return fmt.Errorf("reset: wait for console streams: %w", ctx.Err())
		}
	}
	if sp == nil {
		return nil
	}
	var errs []error
	if err := sp.SetMode(p.mode(p.Baudrate)); err != nil {
		errs = append(errs, fmt.Errorf("reset: baud rate: %w", err))
	}
	if !noModem {
		for _, set := range []func(bool) error{sp.SetDTR, sp.SetRTS} {
			if err := set(true); err != nil && !isNoModem(err) {
				errs = append(errs, fmt.Errorf("reset: modem lines: %w", err))
			}
		}
	}
	return errors.Join(errs...)
}

// Forget drops the ring buffer's history: the exporter calls it when a lease ends, so that the
// next holder's log cannot show what the previous one typed or read (driver.Forgetter).
func (p *Port) Forget(ctx context.Context) error {
	if p.ring != nil {
		p.ring.clear()
	}
	return nil
}

// isNoModem reports whether err says the device has no modem control lines (a pty).
func isNoModem(err error) bool {
	return errors.Is(err, syscall.ENOTTY) || errors.Is(err, syscall.EINVAL)
}

// Close stops the reader, closes the device and ends every stream.
func (p *Port) Close() error {
	p.mu.Lock()
	p.closed = true
	dev := p.dev
	p.dev, p.sp, p.why = nil, nil, "closed"
	conns := p.dropAll(wire.Errorf(wire.Unavailable, "serial %s: driver closed", p.target))
	p.mu.Unlock()
	if p.cancel != nil {
		p.cancel()
	}
	var err error
	if dev != nil {
		err = dev.Close()
	}
	p.wg.Wait()
	for _, c := range conns {
		<-c.done
	}
	if err != nil {
		return fmt.Errorf("close %s: %w", p.target, err)
	}
	return nil
}

// device returns the open device, or an UNAVAILABLE error naming why there is none.
func (p *Port) device(op string) (io.ReadWriteCloser, bugserial.Port, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.dev == nil {
		return nil, nil, wire.Errorf(wire.Unavailable, "%s: %s", op, p.why)
	}
	return p.dev, p.sp, nil
}

// write sends b to the device.
func (p *Port) write(b []byte) error {
	dev, _, err := p.device("write")
	if err != nil {
		return err
	}
	p.wmu.Lock()
	defer p.wmu.Unlock()
	if p.CPS > 0 {
		return p.writePaced(dev, b)
	}
	for len(b) > 0 {
		n, err := dev.Write(b)
		if err != nil {
			return wire.Errorf(wire.Unavailable, "write %s: %w", p.target, err)
		}
		b = b[n:]
	}
	return nil
}

// writePaced writes b one byte at a time at CPS characters per second.
func (p *Port) writePaced(dev io.Writer, b []byte) error {
	gap := time.Duration(float64(time.Second) / p.CPS)
	for i := range b {
		if i > 0 {
			time.Sleep(gap)
		}
		if _, err := dev.Write(b[i : i+1]); err != nil {
			return wire.Errorf(wire.Unavailable, "write %s: %w", p.target, err)
		}
	}
	return nil
}

// modem runs a modem-control operation on a serial device: UNIMPLEMENTED for socket:// and for
// devices without modem lines.
func (p *Port) modem(op string, fn func(sp bugserial.Port) error) error {
	if p.target.isSocket() {
		return wire.Errorf(wire.Unimplemented, "%s: not possible on %s (a raw TCP port carries only data)", op, p.target)
	}
	_, sp, err := p.device(op)
	if err != nil {
		return err
	}
	if err := fn(sp); err != nil {
		if isNoModem(err) {
			p.mu.Lock()
			p.noModem = true
			p.mu.Unlock()
			return wire.Errorf(wire.Unimplemented, "%s: %s has no modem control lines: %v", op, p.target, err)
		}
		return wire.Errorf(wire.Unavailable, "%s %s: %w", op, p.target, err)
	}
	return nil
}

// SetBaudrate changes the baud rate until the next reset.
func (p *Port) SetBaudrate(ctx context.Context, rate int64) error {
	if !ValidBaudrate(rate) {
		return wire.Errorf(wire.InvalidArgument, "set_baudrate: rate must be 1..%d, got %d", MaxBaudrate, rate)
	}
	if p.target.isSocket() {
		return wire.Errorf(wire.Unimplemented, "set_baudrate: not possible on %s: set the rate on the serial server", p.target)
	}
	_, sp, err := p.device("set_baudrate")
	if err != nil {
		return err
	}
	if err := sp.SetMode(p.mode(int(rate))); err != nil {
		return wire.Errorf(wire.InvalidArgument, "set_baudrate %d on %s: %w", rate, p.target, err)
	}
	p.mu.Lock()
	p.baud = int(rate)
	p.mu.Unlock()
	return nil
}

// SetDTR sets the DTR line.
func (p *Port) SetDTR(ctx context.Context, on bool) error {
	return p.modem("set_dtr", func(sp bugserial.Port) error { return sp.SetDTR(on) })
}

// SetRTS sets the RTS line.
func (p *Port) SetRTS(ctx context.Context, on bool) error {
	return p.modem("set_rts", func(sp bugserial.Port) error { return sp.SetRTS(on) })
}

// SendBreak holds the line in break for d.
func (p *Port) SendBreak(ctx context.Context, d time.Duration) error {
	return p.modem("send_break", func(sp bugserial.Port) error { return sp.Break(d) })
}

// Log returns the recorded output newer than since (everything for the zero time), at most the
// newest MaxLog bytes.
func (p *Port) Log(since time.Time) []byte { return p.ring.read(since, MaxLog) }

// TapHistory returns the newest output kept (at most limit bytes) and the count of bytes ever
// tapped: every chunk is recorded, then tapped (driver.TapHistorian).
func (p *Port) TapHistory(limit int) ([]byte, int64) {
	if p.ring == nil {
		return nil, 0
	}
	return p.ring.tail(limit)
}

// Info reports the port's state.
func (p *Port) Info() Status {
	held, total := p.ring.stats()
	p.mu.Lock()
	defer p.mu.Unlock()
	state := "open"
	if p.dev == nil {
		state = "absent"
	}
	return Status{URL: p.target.String(), Baudrate: p.baud, State: state, Reason: p.why,
		Buffered: held, Received: total, Connections: len(p.conns)}
}

// Connect serves one console stream: output fans out to it, input goes to the device.
func (p *Port) Connect(ctx context.Context, s driver.Stream) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	c := &conn{out: make(chan []byte, MaxBacklog/64), cancel: cancel, done: make(chan struct{})}
	defer close(c.done)
	p.mu.Lock()
	if p.dev == nil {
		why := p.why
		p.mu.Unlock()
		return wire.Errorf(wire.Unavailable, "connect: %s", why)
	}
	p.conns[c] = struct{}{}
	p.mu.Unlock()
	defer func() {
		p.mu.Lock()
		delete(p.conns, c)
		p.mu.Unlock()
	}()

	// Input: ends at the client's half-close (output keeps flowing), or fails the stream. It
	// may outlive this handler by the moment the exporter takes to close s.
	go func() {
		buf := make([]byte, 4096)
		for {
			n, err := s.Read(buf)
			if n > 0 {
				if werr := p.write(buf[:n]); werr != nil {
					cancel(werr)
					return
				}
			}
			if errors.Is(err, io.EOF) {
				return
			}
			if err != nil {
				cancel(err)
				return
			}
		}
	}()

	for {
		select {
		case b := <-c.out:
			p.mu.Lock()
			c.queued -= len(b)
			p.mu.Unlock()
			if _, err := s.Write(b); err != nil {
				return fmt.Errorf("connect: %w", err)
			}
		case <-ctx.Done():
			cause := context.Cause(ctx)
			if code := wire.CodeOf(cause); code != wire.Internal && code != wire.DeadlineExceeded {
				return cause
			}
			return fmt.Errorf("connect: %w", cause)
		}
	}
}

// Methods returns the jsn.serial.v1 method table.
func (p *Port) Methods() []driver.Method { return Methods(p, Options{}) }

var (
	_ Device              = (*Port)(nil)
	_ driver.Driver       = (*Port)(nil)
	_ driver.Validator    = (*Port)(nil)
	_ driver.Methoder     = (*Port)(nil)
	_ driver.Availability = (*Port)(nil)
	_ driver.Forgetter    = (*Port)(nil)
	_ driver.TapHistorian = (*Port)(nil)
)
