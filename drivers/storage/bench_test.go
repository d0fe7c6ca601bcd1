package storage

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"testing"
)

// benchMiB is the image size of BenchmarkFlash: $JSN_BENCH_MIB, default 64.
func benchMiB() int {
	if n, err := strconv.Atoi(os.Getenv("JSN_BENCH_MIB")); err == nil && n > 0 {
		return n
	}
	return 64
}

// BenchmarkFlash flashes a raw and a zstd image of benchMiB() MiB through exporter.StartLocal and
// the bus, and copies the same raw file locally for comparison; each reports MB/s of image
// (decompressed) bytes.
func BenchmarkFlash(b *testing.B) {
	n := benchMiB() << 20
	data := image(n)
	zst := compress(b, Zstd, data)
	s := startLocal(b, fileConfig)
	c := s.storage("disk")
	for _, bc := range []struct {
		name string
		up   []byte
	}{{"raw", data}, {"zstd", zst}} {
		b.Run(bc.name, func(b *testing.B) {
			b.SetBytes(int64(n))
			for b.Loop() {
				if _, err := c.Write(context.Background(), bytes.NewReader(bc.up), WriteOptions{Size: int64(len(bc.up))}); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(n)*float64(b.N)/1e6/b.Elapsed().Seconds(), "MB/s")
		})
	}
	b.Run("local-copy", func(b *testing.B) {
		dir := b.TempDir()
		src := filepath.Join(dir, "src.img")
		if err := os.WriteFile(src, data, 0o644); err != nil {
			b.Fatal(err)
		}
		b.SetBytes(int64(n))
		for b.Loop() {
			in, err := os.Open(src)
			if err != nil {
				b.Fatal(err)
			}
			out, err := os.Create(filepath.Join(dir, "dst.img"))
			if err != nil {
				b.Fatal(err)
			}
			if _, err := io.CopyBuffer(writerOnly{out}, readerOnly{in}, make([]byte, bufSize)); err != nil {
				b.Fatal(err)
			}
			if err := out.Sync(); err != nil {
				b.Fatal(err)
			}
			out.Close()
			in.Close()
		}
		b.ReportMetric(float64(n)*float64(b.N)/1e6/b.Elapsed().Seconds(), "MB/s")
	})
}

// BenchmarkStoreFlash runs the exporter's write path alone (no bus): sniff, hash, write to a
// temporary file, fsync, rename, for a raw image of benchMiB() MiB held in memory. It isolates
// changes to the write path from the bus's noise.
func BenchmarkStoreFlash(b *testing.B) {
	n := benchMiB() << 20
	data := image(n)
	dir := b.TempDir()
	s := &store{path: filepath.Join(dir, "disk.img"), log: slog.New(slog.DiscardHandler)}
	s.cache.dir = filepath.Join(dir, "cache")
	b.SetBytes(int64(n))
	for b.Loop() {
		res, err := s.flash(context.Background(), readerOnly{bytes.NewReader(data)}, flashOptions{op: "write", size: -1})
		if err != nil {
			b.Fatal(err)
		}
		if res.Written != int64(n) {
			b.Fatalf("got %d bytes written, want %d", res.Written, n)
		}
	}
	b.ReportMetric(float64(n)*float64(b.N)/1e6/b.Elapsed().Seconds(), "MB/s")
}
