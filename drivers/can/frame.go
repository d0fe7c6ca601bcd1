package can

import (
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Kernel frame layout (linux/can.h).
const (
	flagEFF = 0x80000000 // CAN_EFF_FLAG: extended (29-bit) id
	flagRTR = 0x40000000 // CAN_RTR_FLAG: remote transmission request
	flagERR = 0x20000000 // CAN_ERR_FLAG: error frame
	flagINV = 0x20000000 // CAN_INV_FILTER: a filter that matches what it would not
	maskSFF = 0x7ff
	maskEFF = 0x1fffffff

	canMTU   = 16 // sizeof(struct can_frame)
	canFDMTU = 72 // sizeof(struct canfd_frame)
	fdBRS    = 0x01
	fdESI    = 0x02
)

// Frame is one CAN or CAN FD frame.
type Frame struct {
	ID       uint32 // 11 bits, or 29 with Extended
	Extended bool
	RTR      bool // remote request: Data is empty and Len says the requested length
	Len      uint8
	FD       bool // a CAN FD frame: up to 64 bytes
	BRS      bool // CAN FD bit rate switch
	ESI      bool // CAN FD error state indicator
	Error    bool // an error frame (received only)
	Data     []byte
	Time     time.Time // when the driver received it (zero for frames to send)
}

// Validate checks that the frame can be sent.
func (f Frame) Validate() error {
	switch {
	case f.Extended && f.ID > maskEFF:
		return fmt.Errorf("id %#x does not fit 29 bits", f.ID)
	case !f.Extended && f.ID > maskSFF:
		return fmt.Errorf("id %#x does not fit 11 bits (give an extended id with 8 hex digits or ext: true)", f.ID)
	case f.FD && f.RTR:
		return errors.New("CAN FD has no remote frames")
	case f.FD && !validFDLen(len(f.Data)):
		return fmt.Errorf("CAN FD data is 0..8, 12, 16, 20, 24, 32, 48 or 64 bytes, got %d", len(f.Data))
	case !f.FD && len(f.Data) > 8:
		return fmt.Errorf("classic CAN data is at most 8 bytes, got %d (CAN FD frames use ##)", len(f.Data))
	case f.RTR && len(f.Data) > 0:
		return errors.New("a remote frame carries no data")
	case f.RTR && f.Len > 8:
		return fmt.Errorf("remote frame length %d > 8", f.Len)
	case !f.FD && (f.BRS || f.ESI):
		return errors.New("brs and esi are CAN FD flags")
	case f.Error:
		return errors.New("error frames are received, not sent")
	}
	return nil
}

func validFDLen(n int) bool {
	switch n {
	case 12, 16, 20, 24, 32, 48, 64:
		return true
	}
	return n <= 8
}

// ParseFrame parses cansend's syntax:
//
//	123#11223344        classic frame, 11-bit id (3 hex digits)
//	12345678#DEADBEEF   29-bit id (8 hex digits)
//	123#R  123#R3       remote request (with length)
//	123##1112233        CAN FD: flags nibble (1 = BRS, 2 = ESI) then data
//	123#11.22.33        dots between bytes are allowed
func ParseFrame(s string) (Frame, error) {
	var f Frame
	id, rest, ok := strings.Cut(s, "#")
	if !ok {
		return f, fmt.Errorf("frame %q: want ID#DATA, ID#R or ID##FLAGSDATA", s)
	}
	switch len(id) {
	case 3:
	case 8:
		f.Extended = true
	default:
		return f, fmt.Errorf("frame %q: id %q: want 3 hex digits (11-bit) or 8 (29-bit)", s, id)
	}
	n, err := strconv.ParseUint(id, 16, 32)
	if err != nil {
		return f, fmt.Errorf("frame %q: id %q is not hex", s, id)
	}
	f.ID = uint32(n)
	switch {
	case strings.HasPrefix(rest, "#"):
		f.FD = true
		rest = rest[1:]
		if rest == "" {
			return f, fmt.Errorf("frame %q: CAN FD frame needs a flags digit after ##", s)
		}
		fl, err := strconv.ParseUint(rest[:1], 16, 8)
		if err != nil {
			return f, fmt.Errorf("frame %q: flags %q is not a hex digit", s, rest[:1])
		}
		f.BRS, f.ESI = fl&fdBRS != 0, fl&fdESI != 0
		rest = rest[1:]
	case strings.HasPrefix(rest, "R") || strings.HasPrefix(rest, "r"):
		f.RTR = true
		if l := rest[1:]; l != "" {
			v, err := strconv.ParseUint(l, 10, 8)
			if err != nil || v > 8 {
				return f, fmt.Errorf("frame %q: remote length %q: want 0..8", s, l)
			}
			f.Len = uint8(v)
		}
		rest = ""
	}
	hexData := strings.ReplaceAll(rest, ".", "")
	if len(hexData)%2 != 0 {
		return f, fmt.Errorf("frame %q: data %q has an odd number of hex digits", s, rest)
	}
	if f.Data, err = hex.DecodeString(hexData); err != nil {
		return f, fmt.Errorf("frame %q: data %q is not hex", s, rest)
	}
	if !f.RTR {
		f.Len = uint8(min(len(f.Data), 255))
	}
	if err := f.Validate(); err != nil {
		return f, fmt.Errorf("frame %q: %v", s, err)
	}
	return f, nil
}

// String returns the frame in cansend's syntax.
func (f Frame) String() string {
	id := fmt.Sprintf("%03X", f.ID)
	if f.Extended {
		id = fmt.Sprintf("%08X", f.ID)
	}
	switch {
	case f.RTR:
		if f.Len > 0 {
			return fmt.Sprintf("%s#R%d", id, f.Len)
		}
		return id + "#R"
	case f.FD:
		var fl byte
		if f.BRS {
			fl |= fdBRS
		}
		if f.ESI {
			fl |= fdESI
		}
		return fmt.Sprintf("%s##%X%X", id, fl, f.Data)
	}
	return fmt.Sprintf("%s#%X", id, f.Data)
}

// Dump formats the frame like candump does on interface iface: "  can0  123   [2]  11 22".
func (f Frame) Dump(iface string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "  %s  ", iface)
	if f.Extended || f.Error {
		fmt.Fprintf(&b, "%08X", f.ID)
	} else {
		fmt.Fprintf(&b, "%03X", f.ID)
	}
	switch {
	case f.FD:
		fmt.Fprintf(&b, "  [%02d]", len(f.Data))
	case f.RTR:
		fmt.Fprintf(&b, "   [%d]", f.Len)
	default:
		fmt.Fprintf(&b, "   [%d]", len(f.Data))
	}
	if f.RTR {
		b.WriteString("  remote request")
		return b.String()
	}
	if len(f.Data) > 0 {
		b.WriteString(" ")
	}
	for _, c := range f.Data {
		fmt.Fprintf(&b, " %02X", c)
	}
	return b.String()
}

// Map returns the frame as it travels on the wire: {id, ext, rtr, fd, brs, esi, err, len, data,
// time_ns}. Flags that are false are left out.
func (f Frame) Map() map[string]any {
	m := map[string]any{"id": int64(f.ID), "data": f.Data}
	if f.Data == nil {
		m["data"] = []byte{}
	}
	for k, v := range map[string]bool{"ext": f.Extended, "rtr": f.RTR, "fd": f.FD, "brs": f.BRS, "esi": f.ESI, "err": f.Error} {
		if v {
			m[k] = true
		}
	}
	if f.RTR {
		m["len"] = int64(f.Len)
	}
	if !f.Time.IsZero() {
		m["time_ns"] = f.Time.UnixNano()
	}
	return m
}

// ParseFrameMap converts a decoded wire item (Map's form) back into a Frame. Unknown keys are
// errors, so a misspelt flag is not silently dropped.
func ParseFrameMap(item any) (Frame, error) {
	m, ok := item.(map[string]any)
	if !ok {
		return Frame{}, fmt.Errorf("frame: want a map, got %T", item)
	}
	var f Frame
	for k, v := range m {
		var bad bool
		switch k {
		case "id", "len", "time_ns":
			n, ok := toInt(v)
			switch {
			case !ok:
				return Frame{}, fmt.Errorf("frame: %s: want an integer, got %T", k, v)
			case k == "id" && (n < 0 || n > maskEFF):
				return Frame{}, fmt.Errorf("frame: id %d out of range (0..0x1FFFFFFF)", n)
			case k == "len" && (n < 0 || n > 8):
				return Frame{}, fmt.Errorf("frame: len %d out of range (0..8)", n)
			case k == "id":
				f.ID = uint32(n)
			case k == "len":
				f.Len = uint8(n)
			default:
				f.Time = time.Unix(0, n)
			}
		case "data":
			switch d := v.(type) {
			case []byte:
				f.Data = d
			case string:
				f.Data = []byte(d)
			case nil:
			default:
				bad = true
			}
			if len(f.Data) > 64 {
				return Frame{}, fmt.Errorf("frame: data is %d bytes, at most 64", len(f.Data))
			}
		case "ext", "rtr", "fd", "brs", "esi", "err":
			b, ok := v.(bool)
			if !ok {
				return Frame{}, fmt.Errorf("frame: %s: want a bool, got %T", k, v)
			}
			switch k {
			case "ext":
				f.Extended = b
			case "rtr":
				f.RTR = b
			case "fd":
				f.FD = b
			case "brs":
				f.BRS = b
			case "esi":
				f.ESI = b
			case "err":
				f.Error = b
			}
		default:
			return Frame{}, fmt.Errorf("frame: unknown key %q (want id, data, ext, rtr, fd, brs, esi, len)", k)
		}
		if bad {
			return Frame{}, fmt.Errorf("frame: %s: want bytes, got %T", k, v)
		}
	}
	if _, ok := m["id"]; !ok {
		return Frame{}, errors.New(`frame: missing "id"`)
	}
	if !f.RTR {
		f.Len = uint8(len(f.Data))
	}
	return f, nil
}

func toInt(v any) (int64, bool) {
	switch n := v.(type) {
	case int64:
		return n, true
	case int:
		return int64(n), true
	case int8:
		return int64(n), true
	case int16:
		return int64(n), true
	case int32:
		return int64(n), true
	case uint8:
		return int64(n), true
	case uint16:
		return int64(n), true
	case uint32:
		return int64(n), true
	case uint64:
		if n > 1<<63-1 {
			return 0, false
		}
		return int64(n), true
	}
	return 0, false
}

// Filter is a receive filter, as the kernel applies it: a frame passes when
// received_id & Mask == ID & Mask (or does not, with Invert).
type Filter struct {
	ID, Mask uint32 // with the kernel's EFF/RTR flag bits
	Invert   bool
}

// ParseFilters parses candump's filter syntax, comma-separated: "123:7FF" (id:mask),
// "123~7FF" (everything but), an 8-digit id for 29-bit ids.
func ParseFilters(s string) ([]Filter, error) {
	if strings.TrimSpace(s) == "" {
		return nil, nil
	}
	var fs []Filter
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		sep := strings.IndexAny(part, ":~")
		if sep < 0 {
			return nil, fmt.Errorf("filter %q: want ID:MASK or ID~MASK (hex)", part)
		}
		ids, masks := part[:sep], part[sep+1:]
		id, err1 := strconv.ParseUint(ids, 16, 32)
		mask, err2 := strconv.ParseUint(masks, 16, 32)
		if err1 != nil || err2 != nil || ids == "" || masks == "" {
			return nil, fmt.Errorf("filter %q: id and mask must be hex", part)
		}
		f := Filter{ID: uint32(id), Mask: uint32(mask), Invert: part[sep] == '~'}
		if len(ids) == 8 {
			if id > maskEFF || mask > maskEFF {
				return nil, fmt.Errorf("filter %q: 29-bit id and mask are at most 1FFFFFFF", part)
			}
			f.ID |= flagEFF
			f.Mask |= flagEFF
		} else if id > maskSFF {
			return nil, fmt.Errorf("filter %q: an 11-bit id is at most 7FF (give 8 hex digits for a 29-bit id)", part)
		}
		fs = append(fs, f)
	}
	if len(fs) > 512 {
		return nil, fmt.Errorf("at most 512 filters, got %d", len(fs))
	}
	return fs, nil
}

// Match reports whether a frame passes the filter (what the kernel computes).
func (fl Filter) Match(f Frame) bool {
	id := kernelID(f)
	ok := id&fl.Mask == fl.ID&fl.Mask
	return ok != fl.Invert
}

func kernelID(f Frame) uint32 {
	id := f.ID
	if f.Extended {
		id |= flagEFF
	}
	if f.RTR {
		id |= flagRTR
	}
	if f.Error {
		id |= flagERR
	}
	return id
}

// encode returns the kernel's can_frame (16 bytes) or canfd_frame (72 bytes) for f.
func encode(f Frame) []byte {
	size := canMTU
	if f.FD {
		size = canFDMTU
	}
	b := make([]byte, size)
	binary.LittleEndian.PutUint32(b[0:], kernelID(f))
	b[4] = byte(len(f.Data))
	if f.RTR {
		b[4] = f.Len
	}
	if f.FD {
		if f.BRS {
			b[5] |= fdBRS
		}
		if f.ESI {
			b[5] |= fdESI
		}
	}
	copy(b[8:], f.Data)
	return b
}

// decode parses a can_frame or canfd_frame the kernel returned.
func decode(b []byte) (Frame, error) {
	if len(b) != canMTU && len(b) != canFDMTU {
		return Frame{}, fmt.Errorf("frame of %d bytes: want %d or %d", len(b), canMTU, canFDMTU)
	}
	id := binary.LittleEndian.Uint32(b[0:])
	f := Frame{Extended: id&flagEFF != 0, RTR: id&flagRTR != 0, Error: id&flagERR != 0, FD: len(b) == canFDMTU}
	if f.Extended || f.Error {
		f.ID = id & maskEFF
	} else {
		f.ID = id & maskSFF
	}
	n := int(b[4])
	if n > len(b)-8 {
		return Frame{}, fmt.Errorf("frame length %d > %d", n, len(b)-8)
	}
	f.Len = uint8(n)
	if f.FD {
		f.BRS, f.ESI = b[5]&fdBRS != 0, b[5]&fdESI != 0
	}
	if !f.RTR {
		f.Data = append([]byte(nil), b[8:8+n]...)
	}
	return f, nil
}
