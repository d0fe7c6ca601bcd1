package network

import (
	"bytes"
	"errors"
	"io"
	"testing"
)

func TestDatagramFrames(t *testing.T) {
	tests := []struct {
		name string
		in   []byte // the stream
		buf  int    // receive buffer size
		want [][]byte
		err  error // after the datagrams in want
	}{
		{"empty stream", nil, MaxDatagram, nil, io.EOF},
		{"one", []byte{0, 3, 'a', 'b', 'c'}, MaxDatagram, [][]byte{[]byte("abc")}, io.EOF},
		{"empty datagram", []byte{0, 0, 0, 1, 'x'}, MaxDatagram, [][]byte{{}, []byte("x")}, io.EOF},
		{"half a header", []byte{0}, MaxDatagram, nil, io.ErrUnexpectedEOF},
		{"truncated body", []byte{0, 5, 'a', 'b'}, MaxDatagram, nil, io.ErrUnexpectedEOF},
		{"too large", []byte{0xff, 0xff}, MaxDatagram, nil, ErrDatagramTooLarge},
		{"just too large", []byte{0xff, 0xe4}, MaxDatagram, nil, ErrDatagramTooLarge}, // 65508
		{"short buffer skips", []byte{0, 3, 'a', 'b', 'c', 0, 1, 'd'}, 2, nil, io.ErrShortBuffer},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := bytes.NewReader(tt.in)
			buf := make([]byte, tt.buf)
			for i, want := range tt.want {
				n, err := ReadDatagram(r, buf)
				if err != nil || !bytes.Equal(buf[:n], want) {
					t.Fatalf("datagram %d: got %q, %v, want %q, nil", i, buf[:n], err, want)
				}
			}
			if _, err := ReadDatagram(r, buf); !errors.Is(err, tt.err) {
				t.Fatalf("after the datagrams: got %v, want %v", err, tt.err)
			}
		})
	}
	// After a short buffer the stream is still in step.
	r := bytes.NewReader([]byte{0, 3, 'a', 'b', 'c', 0, 1, 'd'})
	buf := make([]byte, 2)
	ReadDatagram(r, buf)
	if n, err := ReadDatagram(r, buf); err != nil || string(buf[:n]) != "d" {
		t.Fatalf("after a short buffer: got %q, %v, want %q, nil", buf[:n], err, "d")
	}
}

func TestWriteDatagram(t *testing.T) {
	tests := []struct {
		size int
		err  error
	}{
		{0, nil}, {1, nil}, {1000, nil}, {MaxDatagram, nil}, {MaxDatagram + 1, ErrDatagramTooLarge}, {1 << 16, ErrDatagramTooLarge},
	}
	for _, tt := range tests {
		var b bytes.Buffer
		p := bytes.Repeat([]byte{7}, tt.size)
		err := WriteDatagram(&b, p)
		if !errors.Is(err, tt.err) {
			t.Fatalf("%d bytes: got %v, want %v", tt.size, err, tt.err)
		}
		if err != nil {
			if b.Len() != 0 {
				t.Fatalf("%d bytes: wrote %d bytes after an error", tt.size, b.Len())
			}
			continue
		}
		got := make([]byte, MaxDatagram)
		n, err := ReadDatagram(&b, got)
		if err != nil || !bytes.Equal(got[:n], p) {
			t.Fatalf("%d bytes: read back %d bytes, %v", tt.size, n, err)
		}
	}
}

// FuzzReadDatagram: any stream decodes into datagrams and ends in one of the documented errors,
// never panics, and re-encoding what was decoded gives back the stream's prefix.
func FuzzReadDatagram(f *testing.F) {
	for _, s := range [][]byte{nil, {0, 3, 'a', 'b', 'c'}, {0, 0}, {0xff, 0xff}, {0}, {0, 5, 1}, {0, 1, 'x', 0, 2, 'y'}} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		r := bytes.NewReader(in)
		buf := make([]byte, MaxDatagram)
		var again bytes.Buffer
		for {
			n, err := ReadDatagram(r, buf)
			if err != nil {
				if err != io.EOF && err != io.ErrUnexpectedEOF && !errors.Is(err, ErrDatagramTooLarge) {
					t.Fatalf("got error %v", err)
				}
				break
			}
			if n > MaxDatagram {
				t.Fatalf("got a datagram of %d bytes", n)
			}
			if err := WriteDatagram(&again, buf[:n]); err != nil {
				t.Fatal(err)
			}
		}
		if !bytes.HasPrefix(in, again.Bytes()) {
			t.Fatalf("re-encoded %x is not a prefix of %x", again.Bytes(), in)
		}
	})
}
