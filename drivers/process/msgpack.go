package process

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// checkResult checks, without decoding, that b is exactly one well-formed msgpack value: the
// exporter passes results on untouched, so a broken one must not reach the client.
func checkResult(b []byte) error {
	n, err := skip(b, 0)
	if err != nil {
		return err
	}
	if n != len(b) {
		return fmt.Errorf("%d trailing bytes after the value", len(b)-n)
	}
	return nil
}

var errShort = errors.New("msgpack value cut short")

// skip returns the length of the msgpack value at the start of b.
func skip(b []byte, depth int) (int, error) {
	if depth > 100 {
		return 0, errors.New("msgpack nested more than 100 deep")
	}
	if len(b) == 0 {
		return 0, errShort
	}
	c := b[0]
	need := func(n int) (int, error) {
		if len(b) < n {
			return 0, errShort
		}
		return n, nil
	}
	u8 := func() int { return int(b[1]) }
	u16 := func() int { return int(binary.BigEndian.Uint16(b[1:3])) }
	u32 := func() int { return int(binary.BigEndian.Uint32(b[1:5])) }
	items := func(hdr, n int) (int, error) {
		off := hdr
		for i := 0; i < n; i++ {
			k, err := skip(b[off:], depth+1)
			if err != nil {
				return 0, err
			}
			off += k
		}
		return off, nil
	}
	switch {
	case c <= 0x7f || c >= 0xe0 || c == 0xc0 || c == 0xc2 || c == 0xc3:
		return 1, nil
	case c&0xe0 == 0xa0: // fixstr
		return need(1 + int(c&0x1f))
	case c&0xf0 == 0x90: // fixarray
		return items(1, int(c&0x0f))
	case c&0xf0 == 0x80: // fixmap
		return items(1, 2*int(c&0x0f))
	}
	switch c {
	case 0xcc, 0xd0:
		return need(2)
	case 0xcd, 0xd1:
		return need(3)
	case 0xca, 0xce, 0xd2:
		return need(5)
	case 0xcb, 0xcf, 0xd3:
		return need(9)
	case 0xd4, 0xd5, 0xd6, 0xd7, 0xd8, 0xc7, 0xc8, 0xc9:
		return 0, errors.New("msgpack extension types are not supported")
	case 0xc4, 0xd9: // bin8, str8
		if _, err := need(2); err != nil {
			return 0, err
		}
		return need(2 + u8())
	case 0xc5, 0xda:
		if _, err := need(3); err != nil {
			return 0, err
		}
		return need(3 + u16())
	case 0xc6, 0xdb:
		if _, err := need(5); err != nil {
			return 0, err
		}
		return need(5 + u32())
	case 0xdc, 0xde: // array16, map16
		if _, err := need(3); err != nil {
			return 0, err
		}
		n := u16()
		if c == 0xde {
			n *= 2
		}
		return items(3, n)
	case 0xdd, 0xdf:
		if _, err := need(5); err != nil {
			return 0, err
		}
		n := u32()
		if n > len(b) {
			return 0, errShort
		}
		if c == 0xdf {
			n *= 2
		}
		return items(5, n)
	}
	return 0, fmt.Errorf("invalid msgpack byte 0x%02x", c)
}
