package video

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"image"
	"image/jpeg"
	"image/png"
	"io"
	"mime"
	"mime/multipart"
	"net/textproto"
	"strconv"
	"strings"
)

// Boundary separates the frames of a stream method's byte stream: each frame is one part of a
// multipart/x-mixed-replace body, as MJPEG over HTTP sends them (and as browsers and ffmpeg read
// them after "Content-Type: multipart/x-mixed-replace; boundary=jsnframe"):
//
//	--jsnframe\r\n
//	Content-Type: image/jpeg\r\n
//	Content-Length: N\r\n
//	\r\n
//	<N bytes of JPEG>\r\n
const Boundary = "jsnframe"

// MaxFrame bounds one frame read from a source or a stream.
const MaxFrame = 16 << 20

// WriteFrame writes one JPEG frame as a multipart part with Boundary.
func WriteFrame(w io.Writer, jpeg []byte) error {
	var b bytes.Buffer
	fmt.Fprintf(&b, "--%s\r\nContent-Type: image/jpeg\r\nContent-Length: %d\r\n\r\n", Boundary, len(jpeg))
	b.Write(jpeg)
	b.WriteString("\r\n")
	_, err := w.Write(b.Bytes())
	return err
}

// FrameReader reads JPEG frames from a multipart MJPEG body (a stream method's, or an HTTP
// source's whose Content-Type names the boundary).
type FrameReader struct {
	mr *multipart.Reader
}

// NewFrameReader reads frames separated by boundary (without the leading "--").
func NewFrameReader(r io.Reader, boundary string) *FrameReader {
	return &FrameReader{mr: multipart.NewReader(bufio.NewReaderSize(r, 64<<10), boundary)}
}

// BoundaryOf returns the boundary of a multipart Content-Type, or an error naming what is wrong.
func BoundaryOf(contentType string) (string, error) {
	mt, params, err := mime.ParseMediaType(contentType)
	if err != nil {
		return "", fmt.Errorf("content type %q: %w", contentType, err)
	}
	if !strings.HasPrefix(mt, "multipart/") {
		return "", fmt.Errorf("content type %q is not an MJPEG stream (want multipart/x-mixed-replace)", contentType)
	}
	b := params["boundary"]
	if b == "" {
		return "", fmt.Errorf("content type %q has no boundary", contentType)
	}
	return b, nil
}

// Next returns the next frame, io.EOF after the last one.
func (f *FrameReader) Next() ([]byte, error) {
	p, err := f.mr.NextPart()
	if err != nil {
		if errors.Is(err, io.EOF) {
			return nil, io.EOF
		}
		return nil, fmt.Errorf("mjpeg: %w", err)
	}
	defer p.Close()
	if ct := p.Header.Get("Content-Type"); ct != "" && !strings.HasPrefix(ct, "image/jpeg") {
		return nil, fmt.Errorf("mjpeg: a part of type %q, want image/jpeg", ct)
	}
	limit := int64(MaxFrame)
	if n, err := strconv.ParseInt(p.Header.Get(textproto.CanonicalMIMEHeaderKey("Content-Length")), 10, 64); err == nil && (n < 0 || n > MaxFrame) {
		return nil, fmt.Errorf("mjpeg: a frame of %d bytes, more than %d", n, MaxFrame)
	}
	b, err := io.ReadAll(io.LimitReader(p, limit+1))
	if err != nil {
		return nil, fmt.Errorf("mjpeg: %w", err)
	}
	if len(b) > MaxFrame {
		return nil, fmt.Errorf("mjpeg: a frame of more than %d bytes", MaxFrame)
	}
	return b, nil
}

// PNGToJPEG re-encodes a PNG as a JPEG (quality 85), for streams made of snapshots.
func PNGToJPEG(b []byte) ([]byte, error) {
	img, err := png.Decode(bytes.NewReader(b))
	if err != nil {
		return nil, fmt.Errorf("decode PNG: %w", err)
	}
	var out bytes.Buffer
	if err := jpeg.Encode(&out, img, &jpeg.Options{Quality: 85}); err != nil {
		return nil, err
	}
	return out.Bytes(), nil
}

// JPEGToPNG re-encodes a JPEG as a PNG, for snapshots of MJPEG sources.
func JPEGToPNG(b []byte) ([]byte, error) {
	img, err := jpeg.Decode(bytes.NewReader(b))
	if err != nil {
		return nil, fmt.Errorf("decode JPEG: %w", err)
	}
	return encodePNG(img)
}

func encodePNG(img image.Image) ([]byte, error) {
	var out bytes.Buffer
	if err := png.Encode(&out, img); err != nil {
		return nil, err
	}
	if out.Len() > MaxSnapshot {
		return nil, fmt.Errorf("a PNG of %d bytes, more than the %d a message carries", out.Len(), MaxSnapshot)
	}
	return out.Bytes(), nil
}
