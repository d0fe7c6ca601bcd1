package storage

import (
	"bufio"
	"bytes"
	"compress/bzip2"
	"errors"
	"fmt"
	"io"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	"github.com/therootcompany/xz"
)

// Format is the compression of an image, as recognised by its first bytes.
type Format string

// Recognised formats. Anything else is Raw and written as it is.
const (
	Raw   Format = "raw"
	Gzip  Format = "gzip"
	XZ    Format = "xz"
	Zstd  Format = "zstd"
	Bzip2 Format = "bzip2"
)

// magicLen is how many bytes Sniff needs to tell every format apart.
const magicLen = 6

var (
	magicGzip = []byte{0x1f, 0x8b}
	magicXZ   = []byte{0xfd, '7', 'z', 'X', 'Z', 0x00}
	magicZstd = []byte{0x28, 0xb5, 0x2f, 0xfd}
	magicBz2  = []byte("BZh")
)

// Sniff returns the format whose magic number prefix starts with. Fewer than magicLen bytes are
// fine: a short prefix that matches no magic completely is Raw.
func Sniff(prefix []byte) Format {
	switch {
	case bytes.HasPrefix(prefix, magicXZ):
		return XZ
	case bytes.HasPrefix(prefix, magicZstd):
		return Zstd
	case bytes.HasPrefix(prefix, magicGzip):
		return Gzip
	case len(prefix) >= 4 && bytes.HasPrefix(prefix, magicBz2) && prefix[3] >= '1' && prefix[3] <= '9':
		return Bzip2
	}
	return Raw
}

// zstdMaxWindow bounds the decoder's window (and so its memory) whatever the frame asks for;
// zstd's own default for decoders is 8 MiB frames made by `zstd --long` use up to 128 MiB.
const zstdMaxWindow = 128 << 20

// Decompress sniffs the first bytes of r and returns a reader of the decompressed content, the
// format it found, and a function releasing the decoder. Nothing is read beyond what the
// decoder needs; bytes after the compressed stream stay in br.
func Decompress(br *bufio.Reader) (io.Reader, Format, func(), error) {
	prefix, err := br.Peek(magicLen)
	if err != nil && err != io.EOF {
		return nil, "", nil, err
	}
	f := Sniff(prefix)
	nop := func() {}
	switch f {
	case Gzip:
		zr, err := gzip.NewReader(br)
		if err != nil {
			return nil, f, nil, fmt.Errorf("gzip header: %w", err)
		}
		return zr, f, func() { zr.Close() }, nil
	case XZ:
		if err := checkXZDict(br); err != nil {
			return nil, f, nil, err
		}
		// The decoder checks every block's dictionary against the limit, not only the first
		// (which checkXZDict already refused with a precise message).
		xr, err := xz.NewReader(br, xzMaxDict)
		if err != nil {
			return nil, f, nil, fmt.Errorf("xz header: %w", err)
		}
		return xzReader{xr}, f, nop, nil
	case Zstd:
		zr, err := zstd.NewReader(br, zstd.WithDecoderConcurrency(1),
			zstd.WithDecoderMaxWindow(zstdMaxWindow), zstd.WithDecoderMaxMemory(1<<40))
		if err != nil {
			return nil, f, nil, fmt.Errorf("zstd: %w", err)
		}
		return zr, f, zr.Close, nil
	case Bzip2:
		return bzip2.NewReader(br), f, nop, nil
	}
	return br, Raw, nop, nil
}

// xzMaxDict bounds the LZMA2 dictionary an xz image may ask for (xz -9 uses 64 MiB): the decoder
// allocates it up front, and a crafted header could ask for 4 GiB.
const xzMaxDict = 256 << 20

// xzReader names the memory limit in the decoder's error for an oversized dictionary.
type xzReader struct{ r *xz.Reader }

func (x xzReader) Read(p []byte) (int, error) {
	n, err := x.r.Read(p)
	if errors.Is(err, xz.ErrMemlimit) {
		err = fmt.Errorf("a block needs an LZMA2 dictionary larger than the %d MiB allowed", xzMaxDict>>20)
	}
	return n, err
}

// checkXZDict reads the first block header of an xz stream (without consuming it) and refuses an
// LZMA2 dictionary larger than xzMaxDict. Headers it cannot parse are left to the decoder.
func checkXZDict(br *bufio.Reader) error {
	const streamHeader = 12
	b, _ := br.Peek(streamHeader + 1024 + 1)
	if len(b) <= streamHeader || b[streamHeader] == 0 {
		return nil // no block (index follows) or too short: the decoder will say
	}
	h := b[streamHeader:]
	size := (int(h[0]) + 1) * 4
	if len(h) < size {
		return nil
	}
	h = h[1:size]
	flags := h[0]
	h = h[1:]
	varint := func() (uint64, bool) {
		var v uint64
		for i := 0; i < 9 && len(h) > 0; i++ {
			c := h[0]
			h = h[1:]
			v |= uint64(c&0x7f) << (7 * i)
			if c&0x80 == 0 {
				return v, true
			}
		}
		return 0, false
	}
	if flags&0x40 != 0 {
		if _, ok := varint(); !ok {
			return nil
		}
	}
	if flags&0x80 != 0 {
		if _, ok := varint(); !ok {
			return nil
		}
	}
	for i := 0; i <= int(flags&3); i++ {
		id, ok1 := varint()
		n, ok2 := varint()
		if !ok1 || !ok2 || uint64(len(h)) < n {
			return nil
		}
		props := h[:n]
		h = h[n:]
		if id == 0x21 && n == 1 {
			c := uint64(props[0] & 0x3f)
			dict := uint64(1<<32 - 1)
			if c < 40 {
				dict = (2 | c&1) << (c/2 + 11)
			}
			if dict > xzMaxDict {
				return fmt.Errorf("xz header: dictionary of %d MiB is larger than the %d MiB allowed", dict>>20, xzMaxDict>>20)
			}
		}
	}
	return nil
}
