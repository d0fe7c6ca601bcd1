package process

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"testing"
	"unsafe"

	"jsn.dev/jsn/bus/wire"
)

// FuzzFrames feeds arbitrary bytes to the frame reader and the HELLO decoder: every input is
// frames, end of stream or a *protoError, never a panic or a hang.
func FuzzFrames(f *testing.F) {
	f.Add(appendFrame(nil, frameResult, 7, []byte{0xc0}))
	f.Add(appendFrame(appendFrame(nil, frameData, 1, []byte("abc")), frameFin, 1, nil))
	f.Add([]byte("HTTP/1.1 200 OK\r\n\r\n"))
	f.Add([]byte{0, 0, 0, 4, 7})
	f.Add(appendFrame(nil, frameShmData, 3, encodeUint(512<<10)))
	f.Add(appendFrame(nil, frameHello, 0, []byte("\x85\xa7version\x01\xa9interface\xa0\xa3doc\xa0\xa7methods\x90\xa3shm\xc3")))
	f.Add(appendFrame(nil, frameHello, 0, []byte("\x84\xa7version\x01\xa9interface\xa0\xa3doc\xa0\xa7methods\x91\x82\xa4name\xa2on\xa4kind\xa4call")))
	f.Fuzz(func(t *testing.T, data []byte) {
		r := bufio.NewReader(bytes.NewReader(data))
		for i := 0; i < 1000; i++ {
			fr, err := readFrame(r)
			if err != nil {
				var pe *protoError
				if !errors.Is(err, io.EOF) && !errors.As(err, &pe) {
					t.Fatalf("error of type %T: %v", err, err)
				}
				return
			}
			if fr.typ < frameInit || fr.typ > frameMax {
				t.Fatalf("accepted frame type %d", fr.typ)
			}
			if fr.typ == frameHello {
				if h, err := decodeHello(fr.body); err == nil {
					for _, m := range h.Methods {
						if m.Name == "" {
							t.Fatal("accepted a method without a name")
						}
					}
				}
			}
			_, _ = decodeUint(fr.body)
			_ = decodeErr(fr.body)
		}
	})
}

func TestReadFrameErrors(t *testing.T) {
	for _, tt := range []struct {
		in   []byte
		want string
	}{
		{[]byte("HTTP/1.1 200 OK\r\n"), "frame length 1213486160 exceeds the 16777216 byte limit (is the process writing something else on fd 3?)"},
		{[]byte{0, 0, 0, 5, 99, 0, 0, 0, 1}, "unknown frame type 99"},
		{[]byte{0, 0, 0, 2, 7, 0, 0, 0, 1}, "frame length 2 is shorter than its type and id"},
		{[]byte{0, 0, 0, 9, 7, 0, 0, 0, 1, 0xc0}, "RESULT frame cut short: unexpected EOF"},
		{[]byte{0, 0, 0}, "frame header cut short by end of stream"},
	} {
		_, err := readFrame(bufio.NewReader(bytes.NewReader(tt.in)))
		if err == nil || err.Error() != tt.want {
			t.Errorf("readFrame(%q) = %v, want %s", tt.in, err, tt.want)
		}
	}
}

// FuzzCheckResult: the result checker agrees with the msgpack decoder on what is one value.
func FuzzCheckResult(f *testing.F) {
	f.Add([]byte{0xc0})
	f.Add([]byte{0x92, 0xa3, 's', 'e', 't', 0x92, 0x02, 0xc3})
	f.Add([]byte{0xdd, 0xff, 0xff, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, b []byte) {
		err := checkResult(b)
		var v any
		derr := wire.Unmarshal(b, &v)
		if err == nil && derr != nil && len(b) <= wire.MaxBody {
			t.Fatalf("checkResult accepts %x, the decoder does not: %v", b, derr)
		}
	})
}

// FuzzShmData feeds a stream with a shared memory slot arbitrary SHMDATA sizes (and credit
// grants): each is accepted as a DATA frame inside the stream's slot, or refused with an error,
// never a panic, never bytes outside the slot, never more bytes in flight than the credit.
func FuzzShmData(f *testing.F) {
	f.Add([]byte{0x00, 0x00, 0x08, 0x00, 0x00, 0x00, 0x7f, 0xff, 0xfc, 0x00})
	f.Add([]byte{0x80, 0x00, 0x00, 0x00, 0x01, 0xff, 0xff, 0xff, 0xff, 0xff})
	shm := make([]byte, shmSlots*window)
	f.Fuzz(func(t *testing.T, data []byte) {
		c := &conn{shm: shm, streams: map[uint32]*stream{}, pending: map[uint32]*waiter{}}
		s := newStream(c)
		s.id, s.slot = 5, 1+int(len(data)%shmSlots)
		c.streams[5] = s
		lo, hi := (s.slot-1)*window, s.slot*window
		inFlight := 0
		for ; len(data) >= 5; data = data[5:] {
			n := uint64(binary.BigEndian.Uint32(data[1:5]))
			if data[0]&0x80 != 0 { // the exporter delivered what is queued and re-granted it
				delivered := 0
				for len(s.q) > 0 {
					fr, _ := s.next(context.Background())
					delivered += len(fr.body)
				}
				s.mu.Lock()
				s.granted += int64(delivered)
				s.mu.Unlock()
				inFlight = 0
				continue
			}
			body := encodeUint(n)
			if data[0]&1 != 0 {
				body = body[:1+int(data[0]>>1)%9]
			}
			before := len(s.q)
			if err := c.route(frame{typ: frameShmData, id: 5, body: body}); err != nil {
				if len(s.q) != before {
					t.Fatalf("refused SHMDATA %x (%v) but queued a frame", body, err)
				}
				continue
			}
			fr := s.q[len(s.q)-1]
			if !fr.shm || fr.typ != frameData || uint64(len(fr.body)) != n || len(fr.body) == 0 {
				t.Fatalf("SHMDATA %d queued %s of %d bytes (shm %v)", n, fr.typ, len(fr.body), fr.shm)
			}
			start := int(uintptr(unsafe.Pointer(&fr.body[0])) - uintptr(unsafe.Pointer(&c.shm[0])))
			if start < lo || start+len(fr.body) > hi || cap(fr.body) != len(fr.body) {
				t.Fatalf("SHMDATA %d: bytes [%d, %d) (cap %d) outside the slot [%d, %d)", n, start, start+len(fr.body), cap(fr.body), lo, hi)
			}
			if inFlight += len(fr.body); inFlight > window {
				t.Fatalf("%d bytes in flight, more than the %d byte window", inFlight, window)
			}
		}
	})
}
