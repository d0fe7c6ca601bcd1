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
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/klauspost/compress/zstd"

	"jsn.dev/jsn/drivers/storage"
	"jsn.dev/jsn/exporter"
)

// benchFlash flashes a raw and a zstd image through storage.File (client → bus → exporter →
// decompress → file → fsync) over each transport, next to a local `cp` + fsync of the same raw
// file and a local zstd decompression of the same .zst to a file + fsync, all in one temporary
// directory. Each figure is the median of rounds in which every path runs once, interleaved.
func benchFlash(ctx context.Context, s *suite) error {
	size := int64(1 << 30)
	rounds := 3
	if s.quick {
		size = 128 << 20
	}
	if s.flashMiB > 0 {
		size = s.flashMiB << 20
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
	type target struct {
		t          transport
		ses        *session
		disk       *storage.Client
		rawR, zstR []float64
		rawCPU     []float64 // process CPU seconds per GiB of each raw flash
		natsRate   float64
	}
	var targets []*target
	for _, t := range s.transports() {
		cfg, err := exporter.ParseConfig("flash.yaml", []byte(fmt.Sprintf(`apiVersion: jsn.dev/v1alpha1
kind: ExporterConfig
metadata: {name: bench-flash}
export:
  disk:
    type: storage.File
    config: {path: %q, cache_dir: %q}
`, filepath.Join(dir, "disk-"+string(t)+".img"), filepath.Join(dir, "cache"))))
		if err != nil {
			return err
		}
		ses, err := startSession(ctx, t, cfg)
		if err != nil {
			return fmt.Errorf("%s: %w", t.label(), err)
		}
		defer ses.close()
		targets = append(targets, &target{t: t, ses: ses, disk: storage.NewClient(ses.driver("disk"))})
	}
	var lastCPU float64 // CPU seconds per GiB of the last flash
	flash := func(disk *storage.Client, path string) (float64, error) {
		f, err := os.Open(path)
		if err != nil {
			return 0, err
		}
		defer f.Close()
		st, err := f.Stat()
		if err != nil {
			return 0, err
		}
		settle()
		c0 := cpuTime()
		t0 := time.Now()
		res, err := disk.Write(ctx, f, storage.WriteOptions{Size: st.Size()})
		if err != nil {
			return 0, err
		}
		lastCPU = (cpuTime() - c0).Seconds() * float64(1<<30) / float64(size)
		if res.Written != size {
			return 0, fmt.Errorf("flash %s: wrote %d bytes, want %d", path, res.Written, size)
		}
		return float64(size) / time.Since(t0).Seconds() / 1e6, nil
	}
	dst := filepath.Join(dir, "copy.img")
	local := func(argv ...string) (float64, error) {
		os.Remove(dst)
		settle()
		t0 := time.Now()
		if out, err := exec.Command(argv[0], argv[1:]...).CombinedOutput(); err != nil {
			return 0, fmt.Errorf("%s: %v: %s", argv[0], err, out)
		}
		if err := fsync(dst); err != nil {
			return 0, err
		}
		return float64(size) / time.Since(t0).Seconds() / 1e6, nil
	}
	zname := "zstd-d"
	zstdLocal := func() (float64, error) { return local("zstd", "-q", "-f", "-d", zst, "-o", dst) }
	if _, err := exec.LookPath("zstd"); err != nil {
		zname = "zstd-go-decoder"
		zstdLocal = func() (float64, error) {
			os.Remove(dst)
			settle()
			t0 := time.Now()
			if err := decompressZstd(zst, dst); err != nil {
				return 0, err
			}
			return float64(size) / time.Since(t0).Seconds() / 1e6, nil
		}
	}
	// Warm the page cache for both sources and each exporter's target.
	for _, tg := range targets {
		if _, err := flash(tg.disk, raw); err != nil {
			return fmt.Errorf("%s: %w", tg.t.label(), err)
		}
	}
	var cpR, zR []float64
	for range rounds {
		for _, tg := range targets {
			r, err := flash(tg.disk, raw)
			if err != nil {
				return fmt.Errorf("%s: %w", tg.t.label(), err)
			}
			tg.rawR = append(tg.rawR, r)
			tg.rawCPU = append(tg.rawCPU, lastCPU)
		}
		r, err := local("cp", raw, dst)
		if err != nil {
			return err
		}
		cpR = append(cpR, r)
		for _, tg := range targets {
			r, err := flash(tg.disk, zst)
			if err != nil {
				return fmt.Errorf("%s: %w", tg.t.label(), err)
			}
			tg.zstR = append(tg.zstR, r)
		}
		if r, err = zstdLocal(); err != nil {
			return err
		}
		zR = append(zR, r)
	}
	// The bus's own bound: raw NATS publish → subscribe of as many bytes in messages the size
	// of the stream's frames, on the same server and transports.
	chunk := make([]byte, 128<<10)
	_, _ = crand.Read(chunk)
	for _, tg := range targets {
		if tg.natsRate, err = tg.ses.rawPubSub(size, chunk); err != nil {
			return fmt.Errorf("raw nats %s: %w", tg.t.label(), err)
		}
	}
	zs, _ := os.Stat(zst)
	mib := size >> 20
	for _, tg := range targets {
		tag := " — " + tg.t.label()
		s.add(Result{Name: fmt.Sprintf("flash %d MiB raw to storage.File", mib) + tag, Unit: "MB/s", Value: median(tg.rawR),
			Baseline: map[string]float64{"local-cp+fsync": median(cpR), "raw-nats-pubsub": tg.natsRate}, RatioTo: "local-cp+fsync", Target: "≥ 0.5×",
			Note: fmt.Sprintf("median of %d; jsn %s, cp %s", rounds, fmtRates(tg.rawR), fmtRates(cpR))})
		s.add(Result{Name: "flash raw CPU per GiB (whole process)" + tag, Unit: "cpu-s/GiB", Value: median(tg.rawCPU),
			Note: "lower is better; the client, bus and exporter all run in the bench process"})
		s.add(Result{Name: fmt.Sprintf("flash %d MiB .zst (%d MiB) to storage.File", mib, zs.Size()>>20) + tag, Unit: "MB/s", Value: median(tg.zstR),
			Baseline: map[string]float64{zname + "+fsync": median(zR)}, RatioTo: zname + "+fsync",
			Note: fmt.Sprintf("MB/s of image (decompressed) bytes; median of %d; jsn %s, %s %s", rounds, fmtRates(tg.zstR), zname, fmtRates(zR))})
	}
	return nil
}

// settle lets the previous path's I/O finish (writeback, and the discards this machine's ext4
// issues for freed blocks) before the next one is timed: without it, whichever path ran after a
// 1 GiB write paid for part of it (seen as a flash at half speed right after cp, whichever
// transport came first).
func settle() {
	syscall.Sync()
	time.Sleep(300 * time.Millisecond)
}

// median returns the median of xs (0 for none).
func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func fmtRates(xs []float64) string {
	parts := make([]string, len(xs))
	for i, x := range xs {
		parts[i] = fmt.Sprintf("%.0f", x)
	}
	return strings.Join(parts, "/") + " MB/s"
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
