package storage

import (
	"bufio"
	"bytes"
	"io"
	"testing"
)

// FuzzDecompress feeds arbitrary uploads to the magic-number sniffer and the decoder it picks:
// it must never panic, and must stop with an error or at the end of the input.
func FuzzDecompress(f *testing.F) {
	data := image(4096)
	for _, fm := range []Format{Raw, Gzip, XZ, Zstd} {
		c := compress(f, fm, data)
		f.Add(c)
		f.Add(c[:len(c)/2])
		f.Add(c[:min(len(c), magicLen)])
	}
	f.Add([]byte("BZh9"))
	f.Add([]byte("BZh91AY&SY"))
	f.Add([]byte{0x1f})
	f.Add([]byte{})
	// An xz header asking for a 4 GiB dictionary.
	f.Add([]byte{0xfd, '7', 'z', 'X', 'Z', 0, 0, 4, 0xe6, 0xd6, 0xb4, 0x46, 0x02, 0x00, 0x21, 0x01, 0x28, 0, 0, 0, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, in []byte) {
		_ = Sniff(in)
		br := bufio.NewReader(bytes.NewReader(in))
		r, format, release, err := Decompress(br)
		if err != nil {
			return
		}
		defer release()
		if format != Sniff(in) {
			t.Fatalf("Decompress chose %s, Sniff says %s", format, Sniff(in))
		}
		// Bound the output: a tiny input may legitimately expand a lot.
		_, _ = io.Copy(io.Discard, io.LimitReader(r, 1<<20))
	})
}

func TestSniff(t *testing.T) {
	tests := []struct {
		in   []byte
		want Format
	}{
		{[]byte{0x1f, 0x8b, 8}, Gzip},
		{[]byte{0xfd, '7', 'z', 'X', 'Z', 0}, XZ},
		{[]byte{0xfd, '7', 'z', 'X', 'Z'}, Raw}, // too short to be sure
		{[]byte{0x28, 0xb5, 0x2f, 0xfd, 0}, Zstd},
		{[]byte("BZh9"), Bzip2},
		{[]byte("BZh0"), Raw},
		{[]byte("BZ"), Raw},
		{[]byte{0xeb, 0x63, 0x90}, Raw}, // an MBR
		{nil, Raw},
	}
	for _, tt := range tests {
		if got := Sniff(tt.in); got != tt.want {
			t.Errorf("Sniff(% x): got %s, want %s", tt.in, got, tt.want)
		}
	}
}

func TestParseSize(t *testing.T) {
	tests := []struct {
		in   string
		want int64
		err  bool
	}{
		{"0", 0, false},
		{"4096", 4096, false},
		{"64MiB", 64 << 20, false},
		{"8G", 8 << 30, false},
		{"1 TB", 1 << 40, false},
		{"1k", 1 << 10, false},
		{"-1", 0, true},
		{"1.5G", 0, true},
		{"12 parsecs", 0, true},
		{"99999999999T", 0, true},
		{"", 0, true},
	}
	for _, tt := range tests {
		got, err := ParseSize(tt.in)
		if got != tt.want || (err != nil) != tt.err {
			t.Errorf("ParseSize(%q): got %d, %v, want %d (error %v)", tt.in, got, err, tt.want, tt.err)
		}
	}
}

func TestXZDictLimit(t *testing.T) {
	huge := []byte{0xfd, '7', 'z', 'X', 'Z', 0, 0, 4, 0xe6, 0xd6, 0xb4, 0x46, 0x02, 0x00, 0x21, 0x01, 0x28, 0, 0, 0, 0, 0, 0, 0}
	if _, _, _, err := Decompress(bufio.NewReader(bytes.NewReader(huge))); err == nil {
		t.Fatal("Decompress accepted an xz header asking for a 4 GiB dictionary")
	}
	ok := compress(t, XZ, image(1000))
	if err := checkXZDict(bufio.NewReader(bytes.NewReader(ok))); err != nil {
		t.Fatalf("checkXZDict on a real xz image: %v", err)
	}
}
