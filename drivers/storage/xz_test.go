package storage

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"hash/crc32"
	"io"
	"os/exec"
	"strings"
	"testing"
)

// TestXZLaterBlockDictLimit: a multi-block xz image whose second block asks for a 4 GiB
// dictionary is refused when the decoder reaches that block, without allocating it (the early
// header check only sees the first block).
func TestXZLaterBlockDictLimit(t *testing.T) {
	data := image(300 << 10)
	cmd := exec.Command("xz", "-T2", "--block-size=65536", "-1", "-c")
	cmd.Stdin = bytes.NewReader(data)
	xzImage, err := cmd.Output()
	if err != nil {
		t.Fatalf("xz (Debian package xz-utils): %v", err)
	}
	// Untouched, it decodes.
	got := decodeAll(t, xzImage)
	if !bytes.Equal(got, data) {
		t.Fatalf("multi-block xz decoded to %d bytes, want the %d written", len(got), len(data))
	}
	bad := setBlockDict(t, xzImage, 1, 40) // props 40: a 4 GiB dictionary
	dec, _, release, err := Decompress(bufio.NewReader(bytes.NewReader(bad)))
	if err != nil {
		t.Fatalf("the first block is fine, Decompress should not refuse yet: %v", err)
	}
	defer release()
	_, err = io.Copy(io.Discard, dec)
	if err == nil || !strings.Contains(err.Error(), "dictionary larger than the 256 MiB allowed") {
		t.Fatalf("got %v, want the dictionary limit named", err)
	}
}

func decodeAll(t *testing.T, b []byte) []byte {
	t.Helper()
	dec, format, release, err := Decompress(bufio.NewReader(bytes.NewReader(b)))
	if err != nil || format != XZ {
		t.Fatalf("Decompress: %v, %s", err, format)
	}
	defer release()
	out, err := io.ReadAll(dec)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// setBlockDict rewrites the LZMA2 dictionary property of block n (0-based) of a single-stream xz
// file whose block headers carry their compressed size (as multi-threaded xz writes them), and
// fixes the header's CRC32.
func setBlockDict(t *testing.T, b []byte, n int, props byte) []byte {
	t.Helper()
	b = bytes.Clone(b)
	off := 12 // stream header
	for i := 0; ; i++ {
		if off >= len(b) || b[off] == 0 {
			t.Fatalf("xz image has %d blocks, want more than %d", i, n)
		}
		size := (int(b[off]) + 1) * 4
		h := b[off : off+size]
		flags := h[1]
		p := 2
		varint := func() uint64 {
			var v uint64
			for s := 0; ; s += 7 {
				c := h[p]
				p++
				v |= uint64(c&0x7f) << s
				if c&0x80 == 0 {
					return v
				}
			}
		}
		if flags&0x40 == 0 {
			t.Fatal("block header without a compressed size")
		}
		compressed := varint()
		if flags&0x80 != 0 {
			varint()
		}
		if id, l := varint(), varint(); id != 0x21 || l != 1 {
			t.Fatalf("block %d: first filter %#x, want LZMA2", i, id)
		}
		if i == n {
			h[p] = props
			binary.LittleEndian.PutUint32(h[size-4:], crc32.ChecksumIEEE(h[:size-4]))
			return b
		}
		off += size + int(compressed)
		off += (4 - off%4) % 4 // block padding
		off += 8               // CRC64 check
	}
}
