package video

import (
	"bytes"
	"context"
	"fmt"
	"image"
	"image/color"
	"image/jpeg"
	"image/png"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"jsn.dev/jsn/cmd/jsn/cli/clitest"
	"jsn.dev/jsn/drivers/driver"
	"jsn.dev/jsn/drivers/drivertest"
)

// envUStreamer makes the test binary a ustreamer stand-in: it serves /stream and /snapshot on
// the --unix socket it is given, as ustreamer does.
const envUStreamer = "JSN_TEST_USTREAMER"

func TestMain(m *testing.M) {
	if os.Getenv(envUStreamer) != "" {
		os.Exit(fakeUStreamer(os.Args[1:]))
	}
	os.Exit(m.Run())
}

func fakeUStreamer(args []string) int {
	sock := ""
	for i := 0; i+1 < len(args); i++ {
		if args[i] == "--unix" {
			sock = args[i+1]
		}
	}
	if sock == "" {
		fmt.Fprintln(os.Stderr, "fake ustreamer: no --unix")
		return 2
	}
	ln, err := net.Listen("unix", sock)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	frames := testFrames(3)
	_ = http.Serve(ln, mjpegHandler(frames, "ustreamerboundary"))
	return 0
}

// testFrames makes n JPEG frames of 64x48, frame i filled with a gray level of its own.
func testFrames(n int) [][]byte {
	var out [][]byte
	for i := range n {
		img := image.NewGray(image.Rect(0, 0, 64, 48))
		for p := range img.Pix {
			img.Pix[p] = uint8(40 + 60*i)
		}
		var b bytes.Buffer
		_ = jpeg.Encode(&b, img, nil)
		out = append(out, b.Bytes())
	}
	return out
}

// mjpegHandler serves /stream (every frame, in a loop, until the client goes) and /snapshot
// (the first frame) the way MJPEG servers do.
func mjpegHandler(frames [][]byte, boundary string) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/stream", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "multipart/x-mixed-replace;boundary="+boundary)
		for i := 0; r.Context().Err() == nil; i++ {
			f := frames[i%len(frames)]
			if _, err := fmt.Fprintf(w, "--%s\r\nContent-Type: image/jpeg\r\nContent-Length: %d\r\nX-Timestamp: %d\r\n\r\n", boundary, len(f), i); err != nil {
				return
			}
			if _, err := w.Write(append(append([]byte(nil), f...), "\r\n"...)); err != nil {
				return
			}
			w.(http.Flusher).Flush()
		}
	})
	mux.HandleFunc("/snapshot", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "image/jpeg")
		w.Write(frames[0])
	})
	return mux
}

// serveMJPEG runs a real HTTP server on loopback and returns its base URL.
func serveMJPEG(t *testing.T, frames [][]byte) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: mjpegHandler(frames, "--myboundary")}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return "http://" + ln.Addr().String()
}

// splitJPEGs splits concatenated JPEGs (what `jsn video stream` writes) at their SOI markers.
func splitJPEGs(b []byte) [][]byte {
	var out [][]byte
	for len(b) > 0 {
		next := bytes.Index(b[2:], []byte{0xff, 0xd8, 0xff})
		if next < 0 {
			out = append(out, b)
			break
		}
		out = append(out, b[:next+2])
		b = b[next+2:]
	}
	return out
}

// TestHTTPVideoThroughJSN: video.HTTP (Jumpstarter's HttpVideo) relays a real HTTP MJPEG server
// through a real exporter and NATS to `jsn video stream` and `jsn video snapshot`.
func TestHTTPVideoThroughJSN(t *testing.T) {
	frames := testFrames(3)
	base := serveMJPEG(t, frames)
	s := clitest.Start(t, fmt.Sprintf(`apiVersion: jumpstarter.dev/v1alpha1
kind: ExporterConfig
metadata: {name: cam}
export:
  camera:
    type: jumpstarter_driver_video.driver.HttpVideo
    config: {url: %s/stream}
`, base))
	out := filepath.Join(t.TempDir(), "screen.mjpeg")
	s.Run("video", "stream", out, "--frames", "5").Want(t, 0)
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	got := splitJPEGs(b)
	if len(got) != 5 {
		t.Fatalf("got %d frames, want 5", len(got))
	}
	for i, f := range got {
		if !bytes.Equal(f, frames[i%3]) {
			t.Errorf("frame %d differs from the one served", i)
		}
	}
	snap := filepath.Join(t.TempDir(), "snap.png")
	s.Run("video", "snapshot", snap).Want(t, 0)
	checkPNG(t, snap, 64, 48)
	r := s.Run("describe")
	if !strings.Contains(r.Stdout, "stream([fps float]) <=> bytes") {
		t.Errorf("describe lacks the stream method:\n%s", r.Stdout)
	}
}

func checkPNG(t *testing.T, file string, w, h int) {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	img, err := png.Decode(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("snapshot is not a PNG: %v", err)
	}
	if img.Bounds().Dx() != w || img.Bounds().Dy() != h {
		t.Errorf("snapshot is %v, want %dx%d", img.Bounds(), w, h)
	}
}

// TestUStreamerStandIn: video.UStreamer runs its executable with the args and --unix, and
// serves its /stream and /snapshot; the executable here is a stand-in speaking ustreamer's HTTP.
func TestUStreamerStandIn(t *testing.T) {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv(envUStreamer, "1")
	s := clitest.Start(t, fmt.Sprintf(`apiVersion: jumpstarter.dev/v1alpha1
kind: ExporterConfig
metadata: {name: kvm}
export:
  video:
    type: jumpstarter_driver_ustreamer.driver.UStreamer
    config: {executable: %s, args: {device: /dev/video0, brightness: auto}}
`, exe))
	out := filepath.Join(t.TempDir(), "s.mjpeg")
	s.Run("video", "stream", out, "-n", "3").Want(t, 0)
	b, _ := os.ReadFile(out)
	if got := splitJPEGs(b); len(got) != 3 {
		t.Fatalf("got %d frames, want 3", len(got))
	}
	snap := filepath.Join(t.TempDir(), "snap.png")
	s.Run("video", "snapshot", snap).Want(t, 0)
	checkPNG(t, snap, 64, 48)
}

func TestUStreamerMissing(t *testing.T) {
	u := NewUStreamer(drivertest.Env("v")).(*UStreamer)
	u.Executable = "/nonexistent/ustreamer"
	if err := u.Open(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer u.Close()
	if why := u.Unavailable(); !strings.Contains(why, "not found") {
		t.Errorf("unavailable: %q", why)
	}
}

// TestSnapshotStream: a device with snapshots only is streamed as JPEGs of its PNGs.
func TestSnapshotStream(t *testing.T) {
	img := image.NewRGBA(image.Rect(0, 0, 32, 16))
	for i := range img.Pix {
		img.Pix[i] = 0xff
	}
	img.Set(1, 1, color.Black)
	var b bytes.Buffer
	png.Encode(&b, img)
	d := &screen{png: b.Bytes()}
	c, err := drivertest.OpenStream(context.Background(), &methodsOf{d}, "stream", 30.0)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fr := NewFrameReader(c, Boundary)
	for i := range 3 {
		f, err := fr.Next()
		if err != nil {
			t.Fatalf("frame %d: %v", i, err)
		}
		j, err := jpeg.Decode(bytes.NewReader(f))
		if err != nil || j.Bounds().Dx() != 32 {
			t.Fatalf("frame %d: %v %v", i, err, j)
		}
	}
	if _, err := drivertest.CallMethod(context.Background(), &methodsOf{d}, "snapshot"); err != nil {
		t.Fatal(err)
	}
	bad, _ := drivertest.OpenStream(context.Background(), &methodsOf{d}, "stream", 1000.0)
	if err := bad.Wait(); err == nil || !strings.Contains(err.Error(), "fps must be") {
		t.Errorf("fps 1000: %v", err)
	}
}

// methodsOf serves a Device's method table as a driver.
type methodsOf struct{ d Device }

func (m *methodsOf) Open(context.Context) error  { return nil }
func (m *methodsOf) Reset(context.Context) error { return nil }
func (m *methodsOf) Close() error                { return nil }
func (m *methodsOf) Methods() []driver.Method    { return Methods(m.d, Options{}) }

func FuzzFrameReader(f *testing.F) {
	var b bytes.Buffer
	for _, fr := range testFrames(2) {
		WriteFrame(&b, fr)
	}
	f.Add(b.Bytes())
	f.Add([]byte("--jsnframe\r\nContent-Length: 99999999999\r\n\r\nxx"))
	f.Fuzz(func(t *testing.T, data []byte) {
		fr := NewFrameReader(bytes.NewReader(data), Boundary)
		for range 10 {
			if _, err := fr.Next(); err != nil {
				return
			}
		}
	})
}
