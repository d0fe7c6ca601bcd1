package process

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"sync"
)

// frameType is the byte after a frame's length. docs/external-drivers.md documents each one.
type frameType uint8

const (
	frameInit   frameType = 1  // exporter → process: {version, path, config}
	frameHello  frameType = 2  // process → exporter: {version, interface, doc, methods}
	frameOpen   frameType = 3  // exporter → process: life cycle; answered by RESULT/ERROR
	frameReset  frameType = 4  // exporter → process: life cycle; answered by RESULT/ERROR
	frameClose  frameType = 5  // exporter → process: life cycle; answered by RESULT/ERROR
	frameCall   frameType = 6  // exporter → process: [method, [args…]]
	frameResult frameType = 7  // process → exporter: the result (msgpack), ends a call or stream
	frameError  frameType = 8  // process → exporter: [code, message], ends a call or stream
	frameStream frameType = 9  // exporter → process: [method, [args…]] of a stream method
	frameItem   frameType = 10 // process → exporter: one server-stream item (msgpack)
	frameData   frameType = 11 // both ways: byte-stream bytes (raw)
	frameCredit frameType = 12 // both ways: the peer may send this many more bytes (msgpack uint)
	frameFin    frameType = 13 // both ways: the sender's side of a byte stream is done
	frameCancel frameType = 14 // exporter → process: stop this call or stream
	framePing   frameType = 15 // exporter → process: answer PONG with the same id
	framePong   frameType = 16 // process → exporter
	// Shared memory (optional, offered in INIT, taken in HELLO): the process writes a byte
	// stream's bytes into the stream's slot of a shared memory file instead of the socket.
	frameShm     frameType = 17 // exporter → process: this byte stream's slot (msgpack uint)
	frameShmData frameType = 18 // process → exporter: n bytes (msgpack uint) at the slot's cursor
	frameMax     frameType = 18
)

var frameNames = [...]string{"", "INIT", "HELLO", "OPEN", "RESET", "CLOSE", "CALL", "RESULT", "ERROR",
	"STREAM", "ITEM", "DATA", "CREDIT", "FIN", "CANCEL", "PING", "PONG", "SHM", "SHMDATA"}

func (t frameType) String() string {
	if t >= 1 && t <= frameMax {
		return frameNames[t]
	}
	return fmt.Sprintf("type %d", uint8(t))
}

// headerLen is a frame's fixed part: length (4), type (1), id (4). Length counts type, id and
// body.
const headerLen = 9

// maxFrame bounds a frame's body: larger is a protocol error (the peer is writing garbage).
const maxFrame = 16 << 20

// frame is one decoded frame. body aliases nothing (it is the frame's own buffer) except for
// DATA made from SHMDATA, whose body is the bytes in the shared memory slot (shm is set).
type frame struct {
	typ  frameType
	id   uint32
	body []byte
	shm  bool
}

// protoError is a malformed frame: the process broke the protocol.
type protoError struct{ msg string }

func (e *protoError) Error() string { return e.msg }

// readFrame reads one frame. A short read at a frame boundary is io.EOF; any malformed frame a
// *protoError naming what was wrong.
func readFrame(r *bufio.Reader) (frame, error) {
	var hdr [headerLen]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		if err == io.ErrUnexpectedEOF {
			return frame{}, &protoError{"frame header cut short by end of stream"}
		}
		return frame{}, err
	}
	return parseHeader(hdr[:], r)
}

func parseHeader(hdr []byte, r io.Reader) (frame, error) {
	n := binary.BigEndian.Uint32(hdr[0:4])
	t := frameType(hdr[4])
	if n < 5 {
		return frame{}, &protoError{fmt.Sprintf("frame length %d is shorter than its type and id", n)}
	}
	if n-5 > maxFrame {
		return frame{}, &protoError{fmt.Sprintf("frame length %d exceeds the %d byte limit (is the process writing something else on fd 3?)", n, maxFrame)}
	}
	if t < frameInit || t > frameMax {
		return frame{}, &protoError{fmt.Sprintf("unknown frame type %d", hdr[4])}
	}
	f := frame{typ: t, id: binary.BigEndian.Uint32(hdr[5:9])}
	if n > 5 {
		if t == frameData && n-5 > 4096 {
			f.body = getData(int(n - 5))
		} else {
			f.body = make([]byte, n-5)
		}
		if _, err := io.ReadFull(r, f.body); err != nil {
			return frame{}, &protoError{fmt.Sprintf("%s frame cut short: %v", t, err)}
		}
	}
	return f, nil
}

// putHeader writes the header of a frame with a body of n bytes into b (headerLen bytes).
func putHeader(b []byte, t frameType, id uint32, n int) {
	binary.BigEndian.PutUint32(b[0:4], uint32(n+5))
	b[4] = byte(t)
	binary.BigEndian.PutUint32(b[5:9], id)
}

// appendFrame appends a whole frame to b.
func appendFrame(b []byte, t frameType, id uint32, body []byte) []byte {
	var h [headerLen]byte
	putHeader(h[:], t, id, len(body))
	return append(append(b, h[:]...), body...)
}

// writeFrame writes a frame in one system call (writev for a large body).
func writeFrame(w io.Writer, scratch []byte, t frameType, id uint32, body []byte) ([]byte, error) {
	if len(body) > 64<<10 {
		var h [headerLen]byte
		putHeader(h[:], t, id, len(body))
		bufs := net.Buffers{h[:], body}
		_, err := bufs.WriteTo(w)
		return scratch, err
	}
	scratch = appendFrame(scratch[:0], t, id, body)
	_, err := w.Write(scratch)
	return scratch, err
}

// dataPool recycles the buffers of large DATA frames: a byte stream then allocates nothing per
// frame once warm.
var dataPool = sync.Pool{New: func() any { b := make([]byte, 0, maxChunk); return &b }}

func getData(n int) []byte {
	bp := dataPool.Get().(*[]byte)
	if cap(*bp) < n {
		return make([]byte, n)
	}
	return (*bp)[:n]
}

// putData returns a DATA frame's buffer once its bytes are delivered.
func putData(b []byte) {
	if cap(b) >= maxChunk && cap(b) <= 2*maxChunk {
		b = b[:0]
		dataPool.Put(&b)
	}
}
