package can

import (
	"context"
	"encoding/binary"
	"errors"
	"net"
	"os"
	"time"

	"golang.org/x/sys/unix"

	"jsn.dev/jsn/bus/wire"
)

// Socket options of linux/can/raw.h and linux/can/isotp.h that x/sys/unix does not name.
const (
	rawFilter      = 1 // CAN_RAW_FILTER
	rawRecvOwnMsgs = 4 // CAN_RAW_RECV_OWN_MSGS
	rawFDFrames    = 5 // CAN_RAW_FD_FRAMES
	solCANIsoTP    = unix.SOL_CAN_BASE + unix.CAN_ISOTP
	isotpOpts      = 1 // CAN_ISOTP_OPTS
	isotpRecvFC    = 2 // CAN_ISOTP_RECV_FC
	isotpLLOpts    = 5 // CAN_ISOTP_LL_OPTS
)

// sock is a CAN socket in Go's poller: a blocked read ends when ctx ends or the socket closes.
type sock struct {
	f     *os.File
	iface string
}

func ifindex(iface string) (int, error) {
	ifi, err := net.InterfaceByName(iface)
	if err != nil {
		return 0, wire.Errorf(wire.Unavailable, "CAN interface %s: %v", iface, unwrapNet(err))
	}
	if ifi.Flags&net.FlagUp == 0 {
		return 0, wire.Errorf(wire.Unavailable, "CAN interface %s is down (ip link set %s up)", iface, iface)
	}
	return ifi.Index, nil
}

func unwrapNet(err error) error {
	var oe *net.OpError
	if errors.As(err, &oe) && oe.Err != nil {
		return oe.Err
	}
	return err
}

// openRaw opens a raw CAN socket on iface receiving the frames that pass filters; receive
// false makes a send-only socket (it queues nothing).
func openRaw(iface string, fd bool, receive bool, filters []Filter) (*sock, error) {
	idx, err := ifindex(iface)
	if err != nil {
		return nil, err
	}
	s, err := unix.Socket(unix.AF_CAN, unix.SOCK_RAW|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, unix.CAN_RAW)
	if err != nil {
		return nil, wire.Errorf(wire.Unavailable, "CAN raw socket: %v (is the can-raw module loaded?)", err)
	}
	fail := func(what string, err error) (*sock, error) {
		unix.Close(s)
		return nil, wire.Errorf(wire.Unavailable, "CAN %s: %s: %v", iface, what, err)
	}
	if fd {
		if err := unix.SetsockoptInt(s, unix.SOL_CAN_RAW, rawFDFrames, 1); err != nil {
			return fail("enable CAN FD frames", err)
		}
	}
	var kf []unix.CanFilter
	for _, f := range filters {
		id := f.ID
		if f.Invert {
			id |= flagINV
		}
		kf = append(kf, unix.CanFilter{Id: id, Mask: f.Mask})
	}
	if receive && len(filters) == 0 {
		kf = []unix.CanFilter{{Id: 0, Mask: 0}} // everything
	}
	if err := unix.SetsockoptCanRawFilter(s, unix.SOL_CAN_RAW, rawFilter, kf); err != nil {
		return fail("filters", err)
	}
	if err := unix.Bind(s, &unix.SockaddrCAN{Ifindex: idx}); err != nil {
		return fail("bind", err)
	}
	return &sock{f: os.NewFile(uintptr(s), "can:"+iface), iface: iface}, nil
}

// IsoTPParams are the kernel ISO-TP socket's settings.
type isotpParams struct {
	rxid, txid uint32 // with flagEFF for 29-bit ids
	flags      uint32
	txpad      uint8
	rxpad      uint8
	extAddr    uint8
	rxExtAddr  uint8
	bs, stmin  uint8
	wftmax     uint8
	fd         bool
	txDL       uint8
}

const (
	isotpListenMode = 0x001
	isotpExtendAddr = 0x002
	isotpTxPadding  = 0x004
	isotpRxPadding  = 0x008
	isotpRxExtAddr  = 0x200
	isotpWaitTxDone = 0x400
)

func openIsoTP(iface string, p isotpParams) (*sock, error) {
	idx, err := ifindex(iface)
	if err != nil {
		return nil, err
	}
	s, err := unix.Socket(unix.AF_CAN, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, unix.CAN_ISOTP)
	if err != nil {
		return nil, wire.Errorf(wire.Unavailable, "ISO-TP socket: %v (is the can-isotp module loaded?)", err)
	}
	fail := func(what string, err error) (*sock, error) {
		unix.Close(s)
		return nil, wire.Errorf(wire.Unavailable, "ISO-TP on %s: %s: %v", iface, what, err)
	}
	opts := make([]byte, 12) // struct can_isotp_options
	binary.LittleEndian.PutUint32(opts[0:], p.flags)
	opts[8], opts[9], opts[10], opts[11] = p.extAddr, p.txpad, p.rxpad, p.rxExtAddr
	if err := unix.SetsockoptString(s, solCANIsoTP, isotpOpts, string(opts)); err != nil {
		return fail("options", err)
	}
	if err := unix.SetsockoptString(s, solCANIsoTP, isotpRecvFC, string([]byte{p.bs, p.stmin, p.wftmax})); err != nil {
		return fail("flow control options", err)
	}
	if p.fd {
		dl := p.txDL
		if dl == 0 {
			dl = 64
		}
		if err := unix.SetsockoptString(s, solCANIsoTP, isotpLLOpts, string([]byte{canFDMTU, dl, 0})); err != nil {
			return fail("CAN FD link layer options", err)
		}
	}
	if err := unix.Bind(s, &unix.SockaddrCAN{Ifindex: idx, RxID: p.rxid, TxID: p.txid}); err != nil {
		return fail("bind", err)
	}
	return &sock{f: os.NewFile(uintptr(s), "isotp:"+iface), iface: iface}, nil
}

// read reads one datagram (a frame or a message), until ctx ends.
func (s *sock) read(ctx context.Context, buf []byte) (int, error) {
	stop := context.AfterFunc(ctx, func() { _ = s.f.SetReadDeadline(time.Unix(1, 0)) })
	n, err := s.f.Read(buf)
	if !stop() {
		_ = s.f.SetReadDeadline(time.Time{})
	}
	if err != nil {
		if ctx.Err() != nil {
			return 0, ctx.Err()
		}
		if errors.Is(err, os.ErrClosed) {
			return 0, wire.Errorf(wire.Unavailable, "CAN %s: socket closed", s.iface)
		}
		return 0, wire.Errorf(wire.Unavailable, "CAN %s: read: %v", s.iface, err)
	}
	return n, nil
}

func (s *sock) write(ctx context.Context, b []byte) error {
	if d, ok := ctx.Deadline(); ok {
		_ = s.f.SetWriteDeadline(d)
		defer s.f.SetWriteDeadline(time.Time{})
	}
	n, err := s.f.Write(b)
	if err != nil {
		if errors.Is(err, unix.ENOBUFS) {
			return wire.Errorf(wire.Unavailable, "CAN %s: transmit queue full (no one acknowledges frames?)", s.iface)
		}
		if errors.Is(err, unix.ECOMM) || errors.Is(err, unix.EILSEQ) {
			return wire.Errorf(wire.Unavailable, "CAN %s: no flow control from the peer: %v", s.iface, err)
		}
		return wire.Errorf(wire.Unavailable, "CAN %s: write: %v", s.iface, err)
	}
	if n != len(b) {
		return wire.Errorf(wire.Unavailable, "CAN %s: short write %d of %d", s.iface, n, len(b))
	}
	return nil
}

func (s *sock) close() error { return s.f.Close() }

// Recv implements Receiver on a raw socket.
func (s *sock) Recv(ctx context.Context) (Frame, error) {
	var buf [canFDMTU]byte
	for {
		n, err := s.read(ctx, buf[:])
		if err != nil {
			return Frame{}, err
		}
		f, err := decode(buf[:n])
		if err != nil {
			continue // not a frame size this socket knows: skip it
		}
		f.Time = time.Now()
		return f, nil
	}
}

// Close implements Receiver.
func (s *sock) Close() error { return s.close() }
