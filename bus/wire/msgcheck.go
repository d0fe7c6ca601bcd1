package wire

import (
	"encoding/binary"
	"fmt"
)

// maxDepth bounds the nesting of msgpack values accepted from outside.
const maxDepth = 64

// checkMsgpack walks one msgpack value in b without allocating and rejects what would make a
// decoder allocate or recurse without bound: a declared string, binary, array or map length
// larger than the bytes that remain, nesting deeper than maxDepth, the reserved 0xc1 code, and
// truncation. The decoder then only ever sizes buffers by bytes that really arrived.
func checkMsgpack(b []byte) error {
	type frame struct{ left int }
	stack := make([]frame, 0, 8)
	pending := 1 // items still to read at the current level
	i := 0
	need := func(n int) error {
		if n < 0 || len(b)-i < n {
			return fmt.Errorf("value at byte %d declares %d bytes but only %d remain", i, n, len(b)-i)
		}
		return nil
	}
	for {
		for pending == 0 {
			if len(stack) == 0 {
				if i != len(b) {
					return fmt.Errorf("%d trailing bytes after the value", len(b)-i)
				}
				return nil
			}
			pending = stack[len(stack)-1].left
			stack = stack[:len(stack)-1]
		}
		if i >= len(b) {
			return fmt.Errorf("truncated at byte %d", i)
		}
		c := b[i]
		i++
		pending--
		skip, items := 0, -1 // bytes to skip; elements of a container (-1: not a container)
		switch {
		case c <= 0x7f || c >= 0xe0 || c == 0xc0 || c == 0xc2 || c == 0xc3:
		case c >= 0x80 && c <= 0x8f:
			items = 2 * int(c&0x0f)
		case c >= 0x90 && c <= 0x9f:
			items = int(c & 0x0f)
		case c >= 0xa0 && c <= 0xbf:
			skip = int(c & 0x1f)
		default:
			var n int
			var err error
			switch c {
			case 0xc4, 0xd9: // bin8, str8
				n, err = lenAt(b, &i, 1)
				skip = n
			case 0xc5, 0xda:
				n, err = lenAt(b, &i, 2)
				skip = n
			case 0xc6, 0xdb:
				n, err = lenAt(b, &i, 4)
				skip = n
			case 0xc7:
				n, err = lenAt(b, &i, 1)
				skip = n + 1
			case 0xc8:
				n, err = lenAt(b, &i, 2)
				skip = n + 1
			case 0xc9:
				n, err = lenAt(b, &i, 4)
				skip = n + 1
			case 0xca, 0xce, 0xd2:
				skip = 4
			case 0xcb, 0xcf, 0xd3:
				skip = 8
			case 0xcc, 0xd0:
				skip = 1
			case 0xcd, 0xd1:
				skip = 2
			case 0xd4:
				skip = 2
			case 0xd5:
				skip = 3
			case 0xd6:
				skip = 5
			case 0xd7:
				skip = 9
			case 0xd8:
				skip = 17
			case 0xdc:
				items, err = lenAt(b, &i, 2)
			case 0xdd:
				items, err = lenAt(b, &i, 4)
			case 0xde:
				items, err = lenAt(b, &i, 2)
				items *= 2
			case 0xdf:
				items, err = lenAt(b, &i, 4)
				items *= 2
			default: // 0xc1
				return fmt.Errorf("reserved code 0x%02x at byte %d", c, i-1)
			}
			if err != nil {
				return err
			}
		}
		if err := need(skip); err != nil {
			return err
		}
		i += skip
		if items > 0 {
			if err := need(items); err != nil { // every element takes at least one byte
				return err
			}
			if len(stack) >= maxDepth {
				return fmt.Errorf("nested deeper than %d levels", maxDepth)
			}
			stack = append(stack, frame{left: pending})
			pending = items
		}
	}
}

func lenAt(b []byte, i *int, size int) (int, error) {
	if len(b)-*i < size {
		return 0, fmt.Errorf("truncated length at byte %d", *i)
	}
	var n uint64
	switch size {
	case 1:
		n = uint64(b[*i])
	case 2:
		n = uint64(binary.BigEndian.Uint16(b[*i:]))
	case 4:
		n = uint64(binary.BigEndian.Uint32(b[*i:]))
	}
	*i += size
	if n > uint64(len(b)) {
		return 0, fmt.Errorf("value at byte %d declares length %d, longer than the whole message", *i, n)
	}
	return int(n), nil
}
