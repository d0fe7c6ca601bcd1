package process

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"testing"

	"jsn.dev/jsn/bus/wire"
)

// FuzzFrames feeds arbitrary bytes to the frame reader and the HELLO decoder: every input is
// frames, end of stream or a *protoError, never a panic or a hang.
func FuzzFrames(f *testing.F) {
	f.Add(appendFrame(nil, frameResult, 7, []byte{0xc0}))
	f.Add(appendFrame(appendFrame(nil, frameData, 1, []byte("abc")), frameFin, 1, nil))
	f.Add([]byte("HTTP/1.1 200 OK\r\n\r\n"))
	f.Add([]byte{0, 0, 0, 4, 7})
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
