package network

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sync"
)

// MaxDatagram is the largest datagram a udp connect stream carries: the largest UDP payload over
// IPv4 (65535 - 8 bytes UDP header - 20 bytes IPv4 header).
const MaxDatagram = 65507

// frameHeader is the size of a datagram frame's length prefix.
const frameHeader = 2

// ErrDatagramTooLarge is returned for a datagram (or a frame announcing one) longer than
// MaxDatagram.
var ErrDatagramTooLarge = errors.New("datagram too large")

var framePool = sync.Pool{New: func() any { b := make([]byte, frameHeader+MaxDatagram); return &b }}

// WriteDatagram writes p to w as one frame of a udp connect stream: its length as a 2-byte
// big-endian unsigned integer, then its bytes, in a single Write. An empty p is an empty
// datagram. A p longer than MaxDatagram is an error wrapping ErrDatagramTooLarge.
func WriteDatagram(w io.Writer, p []byte) error {
	if len(p) > MaxDatagram {
		return fmt.Errorf("write datagram of %d bytes: %w (max %d)", len(p), ErrDatagramTooLarge, MaxDatagram)
	}
	bp := framePool.Get().(*[]byte)
	defer framePool.Put(bp)
	frame := appendFrame((*bp)[:0], p)
	_, err := w.Write(frame)
	return err
}

// appendFrame appends p framed (length prefix, bytes) to dst.
func appendFrame(dst, p []byte) []byte {
	dst = binary.BigEndian.AppendUint16(dst, uint16(len(p)))
	return append(dst, p...)
}

// ReadDatagram reads one frame written by WriteDatagram from r into buf and returns the
// datagram's length. It returns io.EOF when r ends cleanly between frames, io.ErrUnexpectedEOF
// when r ends inside a frame, an error wrapping ErrDatagramTooLarge when the frame announces
// more than MaxDatagram bytes, and io.ErrShortBuffer when buf cannot hold the datagram. After
// any error other than io.ErrShortBuffer the stream is no longer in step and must be abandoned.
func ReadDatagram(r io.Reader, buf []byte) (int, error) {
	var h [frameHeader]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		return 0, err // io.EOF between frames, io.ErrUnexpectedEOF inside the header
	}
	n := int(binary.BigEndian.Uint16(h[:]))
	if n > MaxDatagram {
		return 0, fmt.Errorf("read datagram frame of %d bytes: %w (max %d)", n, ErrDatagramTooLarge, MaxDatagram)
	}
	if n > len(buf) {
		// Skip the datagram so the stream stays in step.
		if _, err := io.CopyN(io.Discard, r, int64(n)); err != nil {
			return 0, noEOF(err)
		}
		return 0, io.ErrShortBuffer
	}
	if _, err := io.ReadFull(r, buf[:n]); err != nil {
		return 0, noEOF(err)
	}
	return n, nil
}

// noEOF turns io.EOF inside a frame into io.ErrUnexpectedEOF.
func noEOF(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}
