package main

import (
	"bufio"
	"context"
	crand "crypto/rand"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"time"

	"github.com/klauspost/compress/zstd"

	"jsn.dev/jsn/client"
	"jsn.dev/jsn/drivers/storage"
	"jsn.dev/jsn/exporter"
)

// benchFlash flashes a raw and a zstd image through storage.File (client → bus → exporter →
// decompress → file → fsync) next to a local `cp` + fsync of the same raw file and a local zstd
// decompression of the same .zst to a file + fsync, all in one temporary directory.
func benchFlash(ctx context.Context, s *suite) error {
	size := int64(1 << 30)
	if s.quick {
		size = 128 << 20
	}
	dir, err := os.MkdirTemp("", "jsn-bench-flash-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	raw := filepath.Join(dir, "image.img")
	zst := raw + ".zst"
	if err := writeImage(raw, size); err != nil {
		return err
	}
	if err := compressZstd(raw, zst); err != nil {
		return err
	}
	cfg, err := exporter.ParseConfig("flash.yaml", []byte(fmt.Sprintf(`apiVersion: jsn.dev/v1alpha1
kind: ExporterConfig
metadata: {name: bench-flash}
export:
  disk:
    type: storage.File
    config: {path: %q, cache_dir: %q}
`, filepath.Join(dir, "disk.img"), filepath.Join(dir, "cache"))))
	if err != nil {
		return err
	}
	l, err := exporter.StartLocal(ctx, cfg, exporter.LocalOptions{})
	if err != nil {
		return err
	}
	defer l.Close()
	c, err := client.Connect(ctx, l.URL, "bench")
	if err != nil {
		return err
	}
	defer c.Close()
	disk := storage.NewClient(c.Exporter(l.Exporter, l.Lease).Driver("disk"))
	flash := func(path string) (float64, error) {
		f, err := os.Open(path)
		if err != nil {
			return 0, err
		}
		defer f.Close()
		st, err := f.Stat()
		if err != nil {
			return 0, err
		}
		t0 := time.Now()
		res, err := disk.Write(ctx, f, storage.WriteOptions{Size: st.Size()})
		if err != nil {
			return 0, err
		}
		if res.Written != size {
			return 0, fmt.Errorf("flash %s: wrote %d bytes, want %d", path, res.Written, size)
		}
		return float64(size) / time.Since(t0).Seconds() / 1e6, nil
	}
	dst := filepath.Join(dir, "copy.img")
	local := func(argv ...string) (float64, error) {
		os.Remove(dst)
		t0 := time.Now()
		if out, err := exec.Command(argv[0], argv[1:]...).CombinedOutput(); err != nil {
			return 0, fmt.Errorf("%s: %v: %s", argv[0], err, out)
		}
		if err := fsync(dst); err != nil {
			return 0, err
		}
		return float64(size) / time.Since(t0).Seconds() / 1e6, nil
	}
	// Warm the page cache for both sources, then measure jsn and its baseline back to back.
	jsnRaw, err := flash(raw)
	if err != nil {
		return err
	}
	jsnRaw2, err := flash(raw)
	if err != nil {
		return err
	}
	jsnRaw = max(jsnRaw, jsnRaw2)
	cpRate, err := local("cp", raw, dst)
	if err != nil {
		return err
	}
	jsnZst, err := flash(zst)
	if err != nil {
		return err
	}
	zname := "zstd-d"
	var zRate float64
	if _, err := exec.LookPath("zstd"); err == nil {
		zRate, err = local("zstd", "-q", "-f", "-d", zst, "-o", dst)
		if err != nil {
			return err
		}
	} else {
		zname = "zstd-go-decoder"
		os.Remove(dst)
		t0 := time.Now()
		if err := decompressZstd(zst, dst); err != nil {
			return err
		}
		zRate = float64(size) / time.Since(t0).Seconds() / 1e6
	}
	// The bus's own bound: raw NATS publish → subscribe of as many bytes in messages the size
	// of the stream's frames, on the same server and transports.
	chunk := make([]byte, 128<<10)
	_, _ = crand.Read(chunk)
	natsRate, err := (&lab{l: l}).rawPubSub(size, chunk)
	if err != nil {
		return fmt.Errorf("raw nats: %w", err)
	}
	zs, _ := os.Stat(zst)
	mib := size >> 20
	s.add(Result{Name: fmt.Sprintf("flash %d MiB raw to storage.File", mib), Unit: "MB/s", Value: jsnRaw,
		Baseline: map[string]float64{"local-cp+fsync": cpRate, "raw-nats-pubsub": natsRate}, RatioTo: "local-cp+fsync", Target: "≥ 0.5×"})
	s.add(Result{Name: fmt.Sprintf("flash %d MiB .zst (%d MiB) to storage.File", mib, zs.Size()>>20), Unit: "MB/s", Value: jsnZst,
		Baseline: map[string]float64{zname + "+fsync": zRate}, RatioTo: zname + "+fsync",
		Note: "MB/s of image (decompressed) bytes"})
	return nil
}

func fsync(path string) error {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	return f.Sync()
}

// writeImage writes size bytes that compress about 3:1, like a disk image with some free space
// and some packed data.
func writeImage(path string, size int64) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer f.Close()
	w := bufio.NewWriterSize(f, 1<<20)
	r := rand.New(rand.NewPCG(1, 2))
	block := make([]byte, 64<<10)
	for done := int64(0); done < size; done += int64(len(block)) {
		switch r.IntN(4) {
		case 0: // incompressible
			for i := 0; i+8 <= len(block); i += 8 {
				v := r.Uint64()
				for j := range 8 {
					block[i+j] = byte(v >> (8 * j))
				}
			}
		case 1: // zeros
			clear(block)
		default: // text-like: a few symbols
			for i := 0; i+8 <= len(block); i += 8 {
				v := r.Uint64()
				for j := range 8 {
					block[i+j] = 'a' + byte(v>>(8*j))&7
				}
			}
		}
		if _, err := w.Write(block); err != nil {
			return err
		}
	}
	if err := w.Flush(); err != nil {
		return err
	}
	return f.Close()
}

func compressZstd(src, dst string) error {
	if _, err := exec.LookPath("zstd"); err == nil {
		if out, err := exec.Command("zstd", "-q", "-f", "-T0", src, "-o", dst).CombinedOutput(); err != nil {
			return fmt.Errorf("zstd: %v: %s", err, out)
		}
		return nil
	}
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.Create(dst)
	if err != nil {
		return err
	}
	defer out.Close()
	enc, err := zstd.NewWriter(out, zstd.WithEncoderLevel(zstd.SpeedFastest))
	if err != nil {
		return err
	}
	if _, err := io.Copy(enc, in); err != nil {
		return err
	}
	if err := enc.Close(); err != nil {
		return err
	}
	return out.Close()
}

func decompressZstd(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	dec, err := zstd.NewReader(in)
	if err != nil {
		return err
	}
	defer dec.Close()
	out, err := os.Create(dst)
	if err != nil {
		return err
	}
	defer out.Close()
	if _, err := io.Copy(out, dec); err != nil {
		return err
	}
	if err := out.Sync(); err != nil {
		return err
	}
	return out.Close()
}
