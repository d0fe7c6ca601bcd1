package power

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	bugserial "go.bug.st/serial"

	"jsn.dev/jsn/bus/wire"
	"jsn.dev/jsn/drivers/driver"
)

func init() {
	driver.MustRegister(driver.Info{
		Type:      "power.NoyitoSerial",
		Interface: Interface,
		Doc:       "a channel of a NOYITO 1/2-channel USB relay (CH340 serial)",
		New:       NewNoyitoSerial,
		Aliases:   []string{"jumpstarter_driver_noyito_relay.driver.NoyitoPowerSerial"},
	})
	driver.MustRegister(driver.Info{
		Type:      "power.NoyitoHID",
		Interface: Interface,
		Doc:       "a channel of a NOYITO 4/8-channel USB HID relay (Linux hidraw)",
		New:       NewNoyitoHID,
		Aliases:   []string{"jumpstarter_driver_noyito_relay.driver.NoyitoPowerHID"},
	})
}

// NOYITO relay protocol: a command is 4 bytes, A0 CHANNEL STATE CHECKSUM, checksum the low byte
// of the sum of the other three. Serial boards answer the single byte FF with lines "CH1:ON";
// HID boards answer the command A0 0F 02 B1 (channel 15: all) with the same lines.
const (
	noyitoHead     = 0xA0
	noyitoStatus   = 0xFF
	noyitoAll      = 0x0F
	noyitoQuery    = 0x02
	noyitoBaud     = 9600
	noyitoQuietFor = 300 * time.Millisecond // a status answer is complete after this much silence
)

// NoyitoCommand returns the 4-byte command setting channel to state (1 on, 0 off).
func NoyitoCommand(channel, state byte) []byte {
	return []byte{noyitoHead, channel, state, byte(noyitoHead + int(channel) + int(state))}
}

// ParseNoyitoStatus parses a status answer ("CH1:ON\r\nCH2:OFF\r\n") into channel name → "on"
// or "off".
func ParseNoyitoStatus(b []byte) (map[string]string, error) {
	out := map[string]string{}
	for _, line := range strings.Split(strings.ReplaceAll(string(b), "\r", ""), "\n") {
		k, v, ok := strings.Cut(strings.TrimSpace(strings.Trim(line, "\x00")), ":")
		if !ok {
			continue
		}
		out[strings.ToUpper(strings.TrimSpace(k))] = strings.ToLower(strings.TrimSpace(v))
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("unexpected status answer %q", b)
	}
	return out, nil
}

// noyito is what both boards share: channels, the state they answer, and the power Device.
type noyito struct {
	Channel     int           `yaml:"channel"`
	AllChannels bool          `yaml:"all_channels"`
	ResetMode   string        `yaml:"reset"`
	Timeout     time.Duration `yaml:"timeout"`
	CycleWait   time.Duration `yaml:"cycle_wait"`

	mu   sync.Mutex // one exchange at a time
	max  int        // channels of the board
	open func() (io.ReadWriteCloser, error)
	// prefix is written before each command (the HID report number).
	prefix []byte
	query  []byte
}

func (n *noyito) channels() []int {
	if n.AllChannels {
		var out []int
		for c := 1; c <= n.max; c++ {
			out = append(out, c)
		}
		return out
	}
	return []int{n.Channel}
}

func (n *noyito) validate() []error {
	var errs []error
	if !n.AllChannels && (n.Channel < 1 || n.Channel > n.max) {
		errs = append(errs, driver.FieldErrorf("channel", "must be 1..%d, got %d", n.max, n.Channel))
	}
	if err := validReset("reset", n.ResetMode); err != nil {
		errs = append(errs, err)
	}
	if n.Timeout <= 0 {
		errs = append(errs, driver.FieldErrorf("timeout", "must be positive, got %s", n.Timeout))
	}
	if n.CycleWait < 0 {
		errs = append(errs, driver.FieldErrorf("cycle_wait", "must not be negative, got %s", n.CycleWait))
	}
	return errs
}

func (n *noyito) switchTo(ctx context.Context, action string, state byte) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	dev, err := n.open()
	if err != nil {
		return wire.Errorf(wire.Unavailable, "%s: %v", action, err)
	}
	defer dev.Close()
	for _, c := range n.channels() {
		if _, err := dev.Write(append(append([]byte(nil), n.prefix...), NoyitoCommand(byte(c), state)...)); err != nil {
			return wire.Errorf(wire.Unavailable, "%s: channel %d: %v", action, c, err)
		}
	}
	return nil
}

func (n *noyito) On(ctx context.Context) error  { return n.switchTo(ctx, "on", 1) }
func (n *noyito) Off(ctx context.Context) error { return n.switchTo(ctx, "off", 0) }

// Status asks the board; channels in different states are an error naming them.
func (n *noyito) Status(ctx context.Context) (State, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	dev, err := n.open()
	if err != nil {
		return "", wire.Errorf(wire.Unavailable, "status: %v", err)
	}
	defer dev.Close()
	if _, err := dev.Write(n.query); err != nil {
		return "", wire.Errorf(wire.Unavailable, "status: %v", err)
	}
	answer := readQuiet(dev, n.Timeout)
	states, err := ParseNoyitoStatus(answer)
	if err != nil {
		return "", wire.Errorf(wire.Unavailable, "status: %v", err)
	}
	var got []string
	seen := map[string]bool{}
	for _, c := range n.channels() {
		s, ok := states[fmt.Sprintf("CH%d", c)]
		if !ok {
			return "", wire.Errorf(wire.Unavailable, "status: the board did not report channel %d (answer %q)", c, answer)
		}
		got = append(got, fmt.Sprintf("CH%d:%s", c, s))
		seen[s] = true
	}
	if len(seen) != 1 {
		return "", wire.Errorf(wire.FailedPrecondition, "status: channels differ: %s", strings.Join(got, " "))
	}
	for s := range seen {
		return State(s), nil
	}
	return "", nil
}

// Read is UNIMPLEMENTED: a relay does not measure.
func (n *noyito) Read(ctx context.Context) (Reading, error) {
	return Reading{}, wire.Errorf(wire.Unimplemented, "read: a NOYITO relay cannot measure voltage or current")
}

// readQuiet reads what dev answers until it has been quiet for noyitoQuietFor, or timeout.
func readQuiet(dev io.Reader, timeout time.Duration) []byte {
	type deadliner interface{ SetReadDeadline(time.Time) error }
	var out bytes.Buffer
	end := time.Now().Add(timeout)
	buf := make([]byte, 64)
	for out.Len() < 256 && time.Now().Before(end) {
		wait := noyitoQuietFor
		if out.Len() == 0 {
			wait = time.Until(end)
		}
		switch d := dev.(type) {
		case deadliner:
			_ = d.SetReadDeadline(time.Now().Add(wait))
		case bugserial.Port:
			_ = d.SetReadTimeout(wait)
		}
		n, err := dev.Read(buf)
		out.Write(buf[:n])
		if n == 0 || err != nil {
			if out.Len() > 0 || err != nil && !errors.Is(err, os.ErrDeadlineExceeded) {
				break
			}
		}
	}
	return out.Bytes()
}

// NoyitoSerial is the power.NoyitoSerial driver: the CH340 serial 1/2-channel boards.
//
// Config (Jumpstarter's NoyitoPowerSerial keys, plus jsn's):
//
//	port: /dev/ttyUSB0   # required: the board's serial port (9600 baud)
//	channel: 1           # 1 or 2
//	all_channels: false  # switch both channels together
//	reset: off           # off | on | leave, between leases
//	timeout: 2s          # how long a status answer may take
//	cycle_wait: 1s
type NoyitoSerial struct {
	Port string `yaml:"port" jsn:"required"`
	noyito
}

// NewNoyitoSerial is the power.NoyitoSerial constructor: defaults only, no side effects.
func NewNoyitoSerial(env driver.Env) driver.Driver {
	d := &NoyitoSerial{noyito: noyito{Channel: 1, ResetMode: resetOff, Timeout: 2 * time.Second, CycleWait: DefaultCycleWait, max: 2,
		query: []byte{noyitoStatus}}}
	d.open = func() (io.ReadWriteCloser, error) {
		p, err := bugserial.Open(d.Port, &bugserial.Mode{BaudRate: noyitoBaud})
		if err != nil {
			return nil, fmt.Errorf("%s: %w", d.Port, err)
		}
		return p, nil
	}
	return d
}

// Validate checks the config.
func (d *NoyitoSerial) Validate() error {
	errs := d.validate()
	if !filepath.IsAbs(d.Port) {
		errs = append(errs, driver.FieldErrorf("port", "want a device path such as /dev/ttyUSB0, got %q", d.Port))
	}
	return errors.Join(errs...)
}

func (d *NoyitoSerial) Open(ctx context.Context) error  { return nil }
func (d *NoyitoSerial) Reset(ctx context.Context) error { return applyReset(ctx, d, d.ResetMode) }
func (d *NoyitoSerial) Close() error                    { return nil }

// Unavailable says the port is absent, or "".
func (d *NoyitoSerial) Unavailable() string {
	if _, err := os.Stat(d.Port); err != nil {
		return d.Port + ": no such device (is the relay plugged in?)"
	}
	return ""
}

// Methods returns the jsn.power.v1 method table.
func (d *NoyitoSerial) Methods() []driver.Method { return Methods(d, Options{CycleWait: d.CycleWait}) }

// NoyitoHID is the power.NoyitoHID driver: the 4/8-channel "HID drive-free" boards, written
// through Linux hidraw (report 0: the command after a zero byte).
//
// Config (Jumpstarter's NoyitoPowerHID keys, plus jsn's):
//
//	num_channels: 4      # 4 or 8
//	channel: 1           # 1..num_channels
//	all_channels: false  # switch every channel together
//	vendor_id: 5131      # USB ids the hidraw device is found by (0x1409)
//	product_id: 2007     # (0x07D7)
//	device: ""           # jsn: the hidraw device path instead of finding it by ids
//	reset: off           # off | on | leave, between leases
//	timeout: 2s
//	cycle_wait: 1s
type NoyitoHID struct {
	NumChannels int    `yaml:"num_channels"`
	VendorID    int    `yaml:"vendor_id"`
	ProductID   int    `yaml:"product_id"`
	Device      string `yaml:"device"`
	noyito
}

// NewNoyitoHID is the power.NoyitoHID constructor: defaults only, no side effects.
func NewNoyitoHID(env driver.Env) driver.Driver {
	d := &NoyitoHID{NumChannels: 4, VendorID: 5131, ProductID: 2007,
		noyito: noyito{Channel: 1, ResetMode: resetOff, Timeout: 2 * time.Second, CycleWait: DefaultCycleWait, max: 4,
			prefix: []byte{0}}}
	d.query = append([]byte{0}, NoyitoCommand(noyitoAll, noyitoQuery)...)
	d.open = func() (io.ReadWriteCloser, error) {
		path, err := d.hidraw()
		if err != nil {
			return nil, err
		}
		f, err := os.OpenFile(path, os.O_RDWR, 0)
		if err != nil {
			return nil, err
		}
		return f, nil
	}
	return d
}

// Validate checks the config.
func (d *NoyitoHID) Validate() error {
	var errs []error
	if d.NumChannels != 4 && d.NumChannels != 8 {
		errs = append(errs, driver.FieldErrorf("num_channels", "must be 4 or 8, got %d", d.NumChannels))
	} else {
		d.max = d.NumChannels
	}
	errs = append(errs, d.validate()...)
	for _, f := range []struct {
		key string
		v   int
	}{{"vendor_id", d.VendorID}, {"product_id", d.ProductID}} {
		if f.v < 0 || f.v > 0xffff {
			errs = append(errs, driver.FieldErrorf(f.key, "must be 0..65535, got %d", f.v))
		}
	}
	if d.Device != "" && !filepath.IsAbs(d.Device) {
		errs = append(errs, driver.FieldErrorf("device", "want a device path such as /dev/hidraw0, got %q", d.Device))
	}
	return errors.Join(errs...)
}

// hidraw returns the device path: Device, or the hidraw node whose HID_ID names the ids.
func (d *NoyitoHID) hidraw() (string, error) {
	if d.Device != "" {
		return d.Device, nil
	}
	want := fmt.Sprintf(":%08X:%08X", d.VendorID, d.ProductID)
	ents, _ := filepath.Glob("/sys/class/hidraw/hidraw*/device/uevent")
	for _, u := range ents {
		b, err := os.ReadFile(u)
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(line, "HID_ID=") && strings.HasSuffix(strings.ToUpper(line), want) {
				return "/dev/" + filepath.Base(filepath.Dir(filepath.Dir(u))), nil
			}
		}
	}
	return "", fmt.Errorf("no hidraw device with USB ids %04x:%04x (is the relay plugged in?)", d.VendorID, d.ProductID)
}

func (d *NoyitoHID) Open(ctx context.Context) error  { return nil }
func (d *NoyitoHID) Reset(ctx context.Context) error { return applyReset(ctx, d, d.ResetMode) }
func (d *NoyitoHID) Close() error                    { return nil }

// Unavailable says the board is absent, or "".
func (d *NoyitoHID) Unavailable() string {
	p, err := d.hidraw()
	if err != nil {
		return err.Error()
	}
	if _, err := os.Stat(p); err != nil {
		return p + ": no such device"
	}
	return ""
}

// Methods returns the jsn.power.v1 method table.
func (d *NoyitoHID) Methods() []driver.Method { return Methods(d, Options{CycleWait: d.CycleWait}) }

var (
	_ Device              = (*NoyitoSerial)(nil)
	_ Device              = (*NoyitoHID)(nil)
	_ driver.Availability = (*NoyitoSerial)(nil)
	_ driver.Availability = (*NoyitoHID)(nil)
)
