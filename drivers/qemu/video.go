package qemu

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"jsn.dev/jsn/bus/wire"
	"jsn.dev/jsn/drivers/driver"
	"jsn.dev/jsn/drivers/video"
)

// videoChild is the board's `video`.
type videoChild struct {
	q *QEMU // nil when configured alone
}

func (v *videoChild) Open(ctx context.Context) error {
	if v.q == nil {
		return errOrphan(VideoType)
	}
	return nil
}
func (v *videoChild) Reset(ctx context.Context) error { return nil }
func (v *videoChild) Close() error                    { return nil }

// Snapshot returns a PNG of the guest's screen.
func (v *videoChild) Snapshot(ctx context.Context) ([]byte, error) { return v.q.snapshot(ctx) }

// Methods returns the jsn.video.v1 method table.
func (v *videoChild) Methods() []driver.Method { return video.Methods(v, video.Options{}) }

// snapshot takes a screendump as PNG (QEMU 7.1+), or as PPM converted to PNG.
func (q *QEMU) snapshot(ctx context.Context) ([]byte, error) {
	if q.running() == nil {
		return nil, errOff("snapshot")
	}
	file := filepath.Join(q.dir, "screen")
	defer os.Remove(file)
	_, err := q.qmp(ctx, "screendump", map[string]any{"filename": file, "format": "png"})
	var qe *qmpError
	if errors.As(err, &qe) && strings.Contains(qe.Desc, "format") {
		_, err = q.qmp(ctx, "screendump", map[string]any{"filename": file})
		if err == nil {
			return ppmFileToPNG(file)
		}
	}
	if err != nil {
		if q.running() == nil {
			return nil, errOff("snapshot")
		}
		return nil, wire.Errorf(wire.Unavailable, "snapshot: %v", err)
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, wire.Errorf(wire.Internal, "snapshot: %v", err)
	}
	if len(b) > video.MaxSnapshot {
		return nil, wire.Errorf(wire.Internal, "snapshot: %d bytes of PNG, more than the %d a message carries", len(b), video.MaxSnapshot)
	}
	return b, nil
}

func ppmFileToPNG(file string) ([]byte, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, wire.Errorf(wire.Internal, "snapshot: %v", err)
	}
	defer f.Close()
	img, err := decodePPM(f)
	if err != nil {
		return nil, wire.Errorf(wire.Internal, "snapshot: %v", err)
	}
	var buf bytes.Buffer
	if err := (&png.Encoder{CompressionLevel: png.BestCompression}).Encode(&buf, img); err != nil {
		return nil, wire.Errorf(wire.Internal, "snapshot: encode png: %v", err)
	}
	return buf.Bytes(), nil
}

// maxPPMPixels bounds the images decodePPM accepts (8K × 8K).
const maxPPMPixels = 8192 * 8192

// decodePPM decodes a binary PPM (P6) image with a maxval of 255, as QEMU writes them.
func decodePPM(r io.Reader) (image.Image, error) {
	br := bufio.NewReader(r)
	var fields [4]string
	for i := range fields {
		tok, err := ppmToken(br)
		if err != nil {
			return nil, fmt.Errorf("ppm header: %w", err)
		}
		fields[i] = tok
	}
	if fields[0] != "P6" {
		return nil, fmt.Errorf("ppm: want P6, got %q", fields[0])
	}
	w, errW := strconv.Atoi(fields[1])
	h, errH := strconv.Atoi(fields[2])
	maxval, errM := strconv.Atoi(fields[3])
	if errW != nil || errH != nil || errM != nil || w <= 0 || h <= 0 || w*h > maxPPMPixels || w > maxPPMPixels || h > maxPPMPixels {
		return nil, fmt.Errorf("ppm: bad size %sx%s", fields[1], fields[2])
	}
	if maxval != 255 {
		return nil, fmt.Errorf("ppm: want maxval 255, got %s", fields[3])
	}
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	row := make([]byte, 3*w)
	for y := 0; y < h; y++ {
		if _, err := io.ReadFull(br, row); err != nil {
			return nil, fmt.Errorf("ppm: row %d: %w", y, err)
		}
		for x := 0; x < w; x++ {
			img.SetRGBA(x, y, color.RGBA{row[3*x], row[3*x+1], row[3*x+2], 255})
		}
	}
	return img, nil
}

// ppmToken reads one header token, skipping whitespace and comments; it consumes the single
// whitespace byte after the token.
func ppmToken(br *bufio.Reader) (string, error) {
	var tok []byte
	for {
		c, err := br.ReadByte()
		if err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return "", err
		}
		switch {
		case c == '#' && len(tok) == 0:
			if _, err := br.ReadString('\n'); err != nil {
				return "", io.ErrUnexpectedEOF
			}
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
			if len(tok) > 0 {
				return string(tok), nil
			}
		default:
			if len(tok) >= 16 {
				return "", errors.New("token too long")
			}
			tok = append(tok, c)
		}
	}
}

var (
	_ video.Device    = (*videoChild)(nil)
	_ driver.Methoder = (*videoChild)(nil)
)
