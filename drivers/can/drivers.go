package can

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"

	"jsn.dev/jsn/bus/wire"
	"jsn.dev/jsn/drivers/driver"
)

func init() {
	driver.MustRegister(driver.Info{
		Type: "can.Raw", Interface: Interface, New: NewRaw,
		Doc:     "a CAN bus: SocketCAN raw frames, or an in-process virtual bus",
		Aliases: []string{"jumpstarter_driver_can.Can", "jumpstarter_driver_can.driver.Can"},
	})
	driver.MustRegister(driver.Info{
		Type: "can.IsoTP", Interface: IsoTPInterface, New: NewIsoTPSocket,
		Doc: "ISO-TP (ISO 15765-2) messages through the kernel's can-isotp sockets",
		Aliases: []string{"jumpstarter_driver_can.IsoTpSocket", "jumpstarter_driver_can.driver.IsoTpSocket",
			"jumpstarter_driver_can.IsoTpPython", "jumpstarter_driver_can.driver.IsoTpPython"},
	})
}

// channelName resolves Jumpstarter's channel: a name ("vcan0"), or a number N meaning canN on
// SocketCAN.
func channelName(iface, ch string) (string, error) {
	ch = strings.TrimSpace(ch)
	if ch == "" {
		return "", errors.New("want an interface name (can0, vcan0)")
	}
	if n, err := strconv.ParseUint(ch, 10, 16); err == nil && iface != "virtual" {
		return fmt.Sprintf("can%d", n), nil
	}
	if iface != "virtual" && (len(ch) > 15 || strings.ContainsAny(ch, "/ \x00")) {
		return "", fmt.Errorf("%q is not a network interface name", ch)
	}
	return ch, nil
}

func checkInterface(s string, allowVirtual bool) error {
	switch s {
	case "", "socketcan":
		return nil
	case "virtual":
		if allowVirtual {
			return nil
		}
		return errors.New(`"virtual" has no kernel ISO-TP: use socketcan on a vcan interface`)
	}
	want := `"socketcan"`
	if allowVirtual {
		want += ` or "virtual"`
	}
	return fmt.Errorf("want %s, got %q (other python-can interfaces are reached through SocketCAN drivers: slcan, gs_usb, peak …)", want, s)
}

// FilterConfig is one of python-can's can_filters.
type FilterConfig struct {
	CanID    uint32 `yaml:"can_id" jsn:"required"`
	CanMask  uint32 `yaml:"can_mask" jsn:"required"`
	Extended *bool  `yaml:"extended"`
}

// Raw is a CAN bus: can.Raw, Jumpstarter's jumpstarter_driver_can.Can.
//
//	interface: socketcan   # socketcan (default) or virtual (an in-process bus per channel)
//	channel: vcan0         # the interface; a number N means canN
//	fd: false              # receive and send CAN FD frames
//	can_filters:           # python-can's filters: the default of dump and recv
//	  - {can_id: 0x123, can_mask: 0x7ff, extended: false}
type Raw struct {
	Iface   string         `yaml:"interface"`
	Chan    string         `yaml:"channel" jsn:"required"`
	FD      bool           `yaml:"fd"`
	Filters []FilterConfig `yaml:"can_filters"`

	log     *slog.Logger
	name    string
	filters []Filter

	mu   sync.Mutex
	send *sock
}

// NewRaw is the can.Raw constructor: defaults only, no side effects.
func NewRaw(env driver.Env) driver.Driver { return &Raw{log: env.Log} }

// Validate checks the config.
func (r *Raw) Validate() error {
	var errs []error
	if err := checkInterface(r.Iface, true); err != nil {
		errs = append(errs, driver.FieldErrorf("interface", "%v", err))
	}
	var err error
	if r.name, err = channelName(r.Iface, r.Chan); err != nil {
		errs = append(errs, driver.FieldErrorf("channel", "%v", err))
	}
	r.filters = nil
	for i, f := range r.Filters {
		ext := f.CanID > maskSFF
		if f.Extended != nil {
			ext = *f.Extended
		}
		if (!ext && f.CanID > maskSFF) || f.CanID > maskEFF || f.CanMask > maskEFF {
			errs = append(errs, driver.FieldErrorf(fmt.Sprintf("can_filters[%d]", i), "id %#x / mask %#x do not fit an %s id", f.CanID, f.CanMask, map[bool]string{true: "29-bit", false: "11-bit"}[ext]))
			continue
		}
		fl := Filter{ID: f.CanID, Mask: f.CanMask}
		if f.Extended != nil {
			fl.Mask |= flagEFF
			if ext {
				fl.ID |= flagEFF
			}
		}
		r.filters = append(r.filters, fl)
	}
	return errors.Join(errs...)
}

func (r *Raw) virtual() bool { return r.Iface == "virtual" }

// Open opens the send socket; an absent interface makes the driver unavailable, not the
// exporter fail.
func (r *Raw) Open(ctx context.Context) error {
	if _, err := r.sender(); err != nil && !r.virtual() {
		r.log.Warn("CAN interface unavailable", "err", err)
	}
	return nil
}

func (r *Raw) sender() (*sock, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.virtual() {
		return nil, nil
	}
	if r.send != nil {
		return r.send, nil
	}
	s, err := openRaw(r.name, r.FD, false, nil)
	if err != nil {
		return nil, err
	}
	r.send = s
	return s, nil
}

// Unavailable implements driver.Availability.
func (r *Raw) Unavailable() string {
	if _, err := r.sender(); err != nil {
		return err.Error()
	}
	return ""
}

// Reset does nothing: the streams of the ended lease are closed by the exporter.
func (r *Raw) Reset(ctx context.Context) error { return nil }

// Close closes the send socket.
func (r *Raw) Close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.send == nil {
		return nil
	}
	err := r.send.close()
	r.send = nil
	return err
}

// Channel implements Device.
func (r *Raw) Channel() string { return r.name }

// Send implements Device.
func (r *Raw) Send(ctx context.Context, f Frame) error {
	if f.FD && !r.FD {
		return wire.Errorf(wire.FailedPrecondition, "send: a CAN FD frame on a bus configured without fd: true")
	}
	if r.virtual() {
		virtualBus(r.name).send(f)
		return nil
	}
	s, err := r.sender()
	if err != nil {
		return err
	}
	if err := s.write(ctx, encode(f)); err != nil {
		// A failed socket is reopened on the next send (the interface may have come back).
		r.mu.Lock()
		if r.send == s {
			s.close()
			r.send = nil
		}
		r.mu.Unlock()
		return err
	}
	return nil
}

// Listen implements Device: a socket of its own per listener, with its filters in the kernel
// (the config's can_filters when none are given).
func (r *Raw) Listen(filters []Filter) (Receiver, error) {
	if filters == nil {
		filters = r.filters
	}
	if r.virtual() {
		return virtualBus(r.name).listen(filters), nil
	}
	return openRaw(r.name, r.FD, true, filters)
}

// Methods implements driver.Methoder.
func (r *Raw) Methods() []driver.Method { return Methods(r, Options{}) }

// IsoTPAddress is python-can-isotp's Address as Jumpstarter's config gives it.
type IsoTPAddress struct {
	Mode          string `yaml:"addressing_mode"`
	RxID          *int64 `yaml:"rxid"`
	TxID          *int64 `yaml:"txid"`
	TargetAddress *int64 `yaml:"target_address"`
	SourceAddress *int64 `yaml:"source_address"`
}

// IsoTPParamsConfig are python-can-isotp's params, as far as the kernel socket has them.
type IsoTPParamsConfig struct {
	Stmin                  *int64 `yaml:"stmin"`
	Blocksize              *int64 `yaml:"blocksize"`
	Wftmax                 *int64 `yaml:"wftmax"`
	TxPadding              *int64 `yaml:"tx_padding"`
	TxDataLength           *int64 `yaml:"tx_data_length"`
	CanFD                  bool   `yaml:"can_fd"`
	BlockingSend           bool   `yaml:"blocking_send"`
	ListenMode             bool   `yaml:"listen_mode"`
	MaxFrameSize           *int64 `yaml:"max_frame_size"` // accepted: the kernel bounds messages itself
	BitrateSwitch          bool   `yaml:"bitrate_switch"` // accepted: the interface's setting decides
	RxFlowcontrolTimeout   *int64 `yaml:"rx_flowcontrol_timeout"`
	RxConsecutiveFrameTime *int64 `yaml:"rx_consecutive_frame_timeout"`
}

// IsoTPSocket is an ISO-TP endpoint on a kernel can-isotp socket: can.IsoTP, Jumpstarter's
// IsoTpSocket (and IsoTpPython, whose keys map onto the same socket).
//
//	channel: vcan0
//	address: {rxid: 0x7e8, txid: 0x7e0}                   # addressing_mode Normal_11bits
//	params: {stmin: 0, blocksize: 8, tx_padding: 0xCC, can_fd: false, blocking_send: false}
type IsoTPSocket struct {
	Iface   string            `yaml:"interface"`
	Chan    string            `yaml:"channel" jsn:"required"`
	Address IsoTPAddress      `yaml:"address" jsn:"required"`
	Params  IsoTPParamsConfig `yaml:"params"`

	log  *slog.Logger
	name string
	p    isotpParams

	mu sync.Mutex
	s  *sock
}

// NewIsoTPSocket is the can.IsoTP constructor.
func NewIsoTPSocket(env driver.Env) driver.Driver { return &IsoTPSocket{log: env.Log} }

func byteField(errs *[]error, field string, v *int64, lo, hi int64) uint8 {
	if v == nil {
		return 0
	}
	if *v < lo || *v > hi {
		*errs = append(*errs, driver.FieldErrorf(field, "%d out of range (%d..%d)", *v, lo, hi))
		return 0
	}
	return uint8(*v)
}

// Validate checks the config and works out the socket's settings.
func (t *IsoTPSocket) Validate() error {
	var errs []error
	if err := checkInterface(t.Iface, false); err != nil {
		errs = append(errs, driver.FieldErrorf("interface", "%v", err))
	}
	var err error
	if t.name, err = channelName(t.Iface, t.Chan); err != nil {
		errs = append(errs, driver.FieldErrorf("channel", "%v", err))
	}
	a := t.Address
	var p isotpParams
	ext29 := false
	switch a.Mode {
	case "", "Normal_11bits", "Extended_11bits":
	case "Normal_29bits", "Extended_29bits":
		ext29 = true
	default:
		errs = append(errs, driver.FieldErrorf("address.addressing_mode", `want Normal_11bits, Normal_29bits, Extended_11bits or Extended_29bits (the kernel socket has no fixed or mixed addressing), got %q`, a.Mode))
	}
	id := func(field string, v *int64) uint32 {
		if v == nil {
			errs = append(errs, driver.FieldErrorf(field, "required"))
			return 0
		}
		max := int64(maskSFF)
		if ext29 || *v > maskSFF {
			max = maskEFF
		}
		if *v < 0 || *v > max {
			errs = append(errs, driver.FieldErrorf(field, "%#x out of range (0..%#x)", *v, max))
			return 0
		}
		if ext29 || *v > maskSFF {
			return uint32(*v) | flagEFF
		}
		return uint32(*v)
	}
	p.rxid = id("address.rxid", a.RxID)
	p.txid = id("address.txid", a.TxID)
	if strings.HasPrefix(a.Mode, "Extended") {
		p.flags |= isotpExtendAddr | isotpRxExtAddr
		p.extAddr = byteField(&errs, "address.target_address", a.TargetAddress, 0, 255)
		p.rxExtAddr = byteField(&errs, "address.source_address", a.SourceAddress, 0, 255)
	}
	pp := t.Params
	p.stmin = byteField(&errs, "params.stmin", pp.Stmin, 0, 255)
	p.bs = byteField(&errs, "params.blocksize", pp.Blocksize, 0, 255)
	p.wftmax = byteField(&errs, "params.wftmax", pp.Wftmax, 0, 255)
	if pp.TxPadding != nil {
		p.flags |= isotpTxPadding
		p.txpad = byteField(&errs, "params.tx_padding", pp.TxPadding, 0, 255)
	}
	if pp.BlockingSend {
		p.flags |= isotpWaitTxDone
	}
	if pp.ListenMode {
		p.flags |= isotpListenMode
	}
	p.fd = pp.CanFD
	if pp.TxDataLength != nil {
		p.txDL = byteField(&errs, "params.tx_data_length", pp.TxDataLength, 8, 64)
		if !validFDLen(int(p.txDL)) || (!p.fd && p.txDL != 8) {
			errs = append(errs, driver.FieldErrorf("params.tx_data_length", "want 8, or with can_fd 12, 16, 20, 24, 32, 48 or 64, got %d", *pp.TxDataLength))
		}
	}
	t.p = p
	return errors.Join(errs...)
}

func (t *IsoTPSocket) socket() (*sock, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.s != nil {
		return t.s, nil
	}
	s, err := openIsoTP(t.name, t.p)
	if err != nil {
		return nil, err
	}
	t.s = s
	return s, nil
}

// Open opens the socket; an absent interface makes the driver unavailable.
func (t *IsoTPSocket) Open(ctx context.Context) error {
	if _, err := t.socket(); err != nil {
		t.log.Warn("ISO-TP unavailable", "err", err)
	}
	return nil
}

// Unavailable implements driver.Availability.
func (t *IsoTPSocket) Unavailable() string {
	if _, err := t.socket(); err != nil {
		return err.Error()
	}
	return ""
}

// Reset drops messages queued for the ended lease: the socket is opened afresh.
func (t *IsoTPSocket) Reset(ctx context.Context) error {
	t.Close()
	_, err := t.socket()
	return err
}

// Close closes the socket.
func (t *IsoTPSocket) Close() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.s == nil {
		return nil
	}
	err := t.s.close()
	t.s = nil
	return err
}

// MaxMessage is the largest ISO-TP message the kernel socket sends (6.1: 8200 bytes with the
// escape sequence; 4095 is what every peer takes).
const MaxMessage = 8200

// SendMessage implements IsoTP.
func (t *IsoTPSocket) SendMessage(ctx context.Context, data []byte) error {
	if len(data) > MaxMessage {
		return wire.Errorf(wire.InvalidArgument, "send: message of %d bytes > %d", len(data), MaxMessage)
	}
	s, err := t.socket()
	if err != nil {
		return err
	}
	return s.write(ctx, data)
}

// RecvMessage implements IsoTP.
func (t *IsoTPSocket) RecvMessage(ctx context.Context) ([]byte, error) {
	s, err := t.socket()
	if err != nil {
		return nil, err
	}
	buf := make([]byte, MaxMessage+1)
	n, err := s.read(ctx, buf)
	if err != nil {
		return nil, err
	}
	return buf[:n], nil
}

// Methods implements driver.Methoder.
func (t *IsoTPSocket) Methods() []driver.Method { return IsoTPMethods(t, Options{}) }

var (
	_ Device              = (*Raw)(nil)
	_ IsoTP               = (*IsoTPSocket)(nil)
	_ driver.Availability = (*Raw)(nil)
	_ driver.Validator    = (*IsoTPSocket)(nil)
)
