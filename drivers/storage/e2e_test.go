package storage

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"
	"github.com/ulikunitz/xz"
	"go.uber.org/goleak"

	"jsn.dev/jsn/client"
	"jsn.dev/jsn/exporter/exportertest"
	"jsn.dev/jsn/internal/testkit"
)

func TestMain(m *testing.M) {
	code := m.Run()
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, err)
			code = 1
		}
	}
	os.Exit(code)
}

// session is a local exporter serving one config, and a client on it.
type session struct{ *exportertest.Lab }

func (s *session) storage(path string) *Client { return NewClient(s.Driver(path)) }

// startLocal serves cfg ($DIR replaced by the lab's directory).
func startLocal(t testing.TB, cfg string) *session { return &session{exportertest.Start(t, cfg)} }

const fileConfig = `apiVersion: jsn.dev/v1alpha1
kind: ExporterConfig
metadata: {name: lab}
export:
  disk:
    type: storage.File
    config: {path: $DIR/disk.img, cache_dir: $DIR/cache}
`

// image returns n bytes of compressible, non-trivial content.
func image(n int) []byte {
	r := rand.New(rand.NewPCG(1, 2))
	b := make([]byte, n)
	for i := 0; i < n; i += 512 {
		if i/512%3 == 0 {
			continue // zero sectors, as disk images have
		}
		for j := i; j < min(i+512, n); j++ {
			b[j] = byte(r.IntN(16))
		}
	}
	return b
}

func compress(t testing.TB, f Format, data []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	var w io.WriteCloser
	var err error
	switch f {
	case Raw:
		return data
	case Gzip:
		w = gzip.NewWriter(&buf)
	case XZ:
		w, err = xz.NewWriter(&buf)
	case Zstd:
		w, err = zstd.NewWriter(&buf)
	case Bzip2:
		// The Go standard library has no bzip2 encoder: use the bzip2 tool.
		if _, err := exec.LookPath("bzip2"); err != nil {
			t.Skip("bzip2 not installed (Debian package bzip2)")
		}
		cmd := exec.Command("bzip2", "-c")
		cmd.Stdin = bytes.NewReader(data)
		out, err := cmd.Output()
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(data); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func sum(b []byte) string { h := sha256.Sum256(b); return hex.EncodeToString(h[:]) }

func readBack(t *testing.T, c *Client) []byte {
	t.Helper()
	var buf bytes.Buffer
	n, err := c.Read(context.Background(), &buf, nil)
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	if n != int64(buf.Len()) {
		t.Fatalf("read: got n=%d, want %d", n, buf.Len())
	}
	return buf.Bytes()
}

func TestFlashFormats(t *testing.T) {
	s := startLocal(t, fileConfig)
	c := s.storage("disk")
	data := image(3<<20 + 123)
	for _, f := range []Format{Raw, Gzip, XZ, Zstd, Bzip2} {
		t.Run(string(f), func(t *testing.T) {
			up := compress(t, f, data)
			res, err := c.Write(context.Background(), bytes.NewReader(up), WriteOptions{SHA256: sum(up), Size: int64(len(up))})
			if err != nil {
				t.Fatalf("write: %v", err)
			}
			want := Result{Written: int64(len(data)), Uploaded: int64(len(up)), SHA256: sum(up), Format: f}
			if res != want {
				t.Fatalf("got %+v, want %+v", res, want)
			}
			if got := readBack(t, c); !bytes.Equal(got, data) {
				t.Fatalf("read back %d bytes (sha %s), want %d (sha %s)", len(got), sum(got), len(data), sum(data))
			}
			size, err := c.Size(context.Background())
			if err != nil || size != int64(len(data)) {
				t.Fatalf("size: got %d, %v, want %d", size, err, len(data))
			}
		})
	}
}

// leftovers lists the temporary files next to the target.
func leftovers(t *testing.T, dir string) []string {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(dir, ".disk.img.jsn-*"))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestFlashFailuresLeaveTargetUnchanged(t *testing.T) {
	s := startLocal(t, fileConfig)
	c := s.storage("disk")
	ctx := context.Background()
	orig := image(1 << 20)
	if _, err := c.Write(ctx, bytes.NewReader(orig), WriteOptions{}); err != nil {
		t.Fatal(err)
	}
	data := image(2<<20 + 7)
	xzImg := compress(t, XZ, data)
	other := sha256.Sum256([]byte("other"))
	tests := []struct {
		name    string
		upload  []byte
		o       WriteOptions
		wantErr error
		msg     string
	}{
		{"wrong sha256", xzImg, WriteOptions{SHA256: hex.EncodeToString(other[:])}, client.ErrInvalidArgument, "sha256 mismatch"},
		{"bad sha256", xzImg, WriteOptions{SHA256: "xyz"}, client.ErrInvalidArgument, "not 64 hex digits"},
		{"truncated xz", xzImg[:len(xzImg)/2], WriteOptions{}, client.ErrInvalidArgument, "not valid xz"},
		{"truncated gzip", compress(t, Gzip, data)[:1000], WriteOptions{}, client.ErrInvalidArgument, "not valid gzip"},
		{"corrupt zstd", append(compress(t, Zstd, data)[:100], make([]byte, 300)...), WriteOptions{}, client.ErrInvalidArgument, "not valid zstd"},
		{"short upload", xzImg, WriteOptions{Size: int64(len(xzImg)) + 10}, client.ErrInvalidArgument, "upload truncated"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, err := c.Write(ctx, bytes.NewReader(tt.upload), tt.o)
			if !errors.Is(err, tt.wantErr) || !strings.Contains(fmt.Sprint(err), tt.msg) {
				t.Fatalf("got %+v, %v; want %v containing %q", res, err, tt.wantErr, tt.msg)
			}
			if got := readBack(t, c); !bytes.Equal(got, orig) {
				t.Fatalf("target changed after a failed write: sha %s, want %s", sum(got), sum(orig))
			}
			if l := leftovers(t, s.Dir); len(l) != 0 {
				t.Fatalf("temporary files left: %v", l)
			}
		})
	}
}

func TestFlashCorrectSHA(t *testing.T) {
	s := startLocal(t, fileConfig)
	c := s.storage("disk")
	data := image(1 << 20)
	up := compress(t, Zstd, data)
	// Upper case is accepted; the exporter reports lower case.
	res, err := c.Write(context.Background(), bytes.NewReader(up), WriteOptions{SHA256: strings.ToUpper(sum(up))})
	if err != nil {
		t.Fatal(err)
	}
	if res.SHA256 != sum(up) {
		t.Fatalf("got sha %s, want %s (of the compressed upload)", res.SHA256, sum(up))
	}
}

// slowReader yields data chunk by chunk and then blocks until ctx ends.
type blockingReader struct {
	data []byte
	sent chan struct{}
	ctx  context.Context
}

func (r *blockingReader) Read(p []byte) (int, error) {
	if len(r.data) > 0 {
		n := copy(p, r.data)
		r.data = r.data[n:]
		if len(r.data) == 0 {
			close(r.sent)
		}
		return n, nil
	}
	<-r.ctx.Done()
	return 0, r.ctx.Err()
}

func TestInterruptedFlash(t *testing.T) {
	s := startLocal(t, fileConfig)
	c := s.storage("disk")
	orig := image(64 << 10)
	if _, err := c.Write(context.Background(), bytes.NewReader(orig), WriteOptions{}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &blockingReader{data: image(4 << 20), sent: make(chan struct{}), ctx: ctx}
	done := make(chan error, 1)
	go func() {
		_, err := c.Write(ctx, r, WriteOptions{})
		done <- err
	}()
	<-r.sent
	// The exporter is mid-write: its temporary file exists.
	testkit.CheckFor(t, 30*time.Second, func() error {
		if l := leftovers(t, s.Dir); len(l) != 1 {
			return fmt.Errorf("got temporary files %v, want the one of the running write", l)
		}
		return nil
	})
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v, want context.Canceled", err)
	}
	testkit.CheckFor(t, 30*time.Second, func() error {
		if l := leftovers(t, s.Dir); len(l) != 0 {
			return fmt.Errorf("got temporary files %v after the cancel, want none", l)
		}
		// The write's end also frees the storage, just after it removes its file.
		_, err := c.Size(context.Background())
		return err
	})
	if got := readBack(t, c); !bytes.Equal(got, orig) {
		t.Fatalf("target changed by an interrupted write")
	}
	// The storage is free again.
	if _, err := c.Write(context.Background(), bytes.NewReader(orig), WriteOptions{}); err != nil {
		t.Fatalf("write after an interrupted one: %v", err)
	}
}

// urlConfig is fileConfig with the test servers' loopback address in url_allow.
const urlConfig = `apiVersion: jsn.dev/v1alpha1
kind: ExporterConfig
metadata: {name: lab}
export:
  disk:
    type: storage.File
    config: {path: $DIR/disk.img, cache_dir: $DIR/cache, url_allow: [127.0.0.1]}
`

func TestWriteURL(t *testing.T) {
	s := startLocal(t, urlConfig)
	c := s.storage("disk")
	ctx := context.Background()
	data := image(2 << 20)
	up := compress(t, Gzip, data)
	var hits atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		if r.URL.Path != "/img.gz" {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Length", fmt.Sprint(len(up)))
		w.Write(up)
	}))
	defer srv.Close()

	var items int
	var last int64
	res, err := c.WriteURL(ctx, srv.URL+"/img.gz", "", func(n, total int64) {
		items++
		last = n
		if total != int64(len(up)) {
			t.Errorf("progress total: got %d, want %d", total, len(up))
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	if res.SHA256 != sum(up) || res.Written != int64(len(data)) || !res.Cached || res.Format != Gzip {
		t.Fatalf("got %+v", res)
	}
	if items == 0 || last != int64(len(up)) {
		t.Fatalf("progress: %d items, last %d, want ≥1 ending at %d", items, last, len(up))
	}
	if got := readBack(t, c); !bytes.Equal(got, data) {
		t.Fatal("read back differs")
	}

	// 404 names the URL.
	_, err = c.WriteURL(ctx, srv.URL+"/nope.img", "", nil)
	if !errors.Is(err, client.ErrNotFound) || !strings.Contains(err.Error(), "/nope.img") {
		t.Fatalf("404: got %v, want NOT_FOUND naming the URL", err)
	}
	// Bad scheme.
	if _, err = c.WriteURL(ctx, "file:///etc/passwd", "", nil); !errors.Is(err, client.ErrInvalidArgument) {
		t.Fatalf("file URL: got %v, want INVALID_ARGUMENT", err)
	}

	// Cache hit: with the sha, no request at all.
	if _, err := c.Write(ctx, bytes.NewReader(image(1000)), WriteOptions{}); err != nil {
		t.Fatal(err)
	}
	before := hits.Load()
	res, err = c.WriteURL(ctx, srv.URL+"/img.gz", sum(up), nil)
	if err != nil {
		t.Fatal(err)
	}
	if hits.Load() != before {
		t.Fatalf("cache hit made %d HTTP requests, want 0", hits.Load()-before)
	}
	if !res.Cached || res.Written != int64(len(data)) {
		t.Fatalf("got %+v", res)
	}
	if got := readBack(t, c); !bytes.Equal(got, data) {
		t.Fatal("read back after cache hit differs")
	}
	// A wrong sha for a download fails and caches nothing under it.
	bad := strings.Repeat("ab", 32)
	if _, err := c.WriteURL(ctx, srv.URL+"/img.gz", bad, nil); !errors.Is(err, client.ErrInvalidArgument) {
		t.Fatalf("wrong sha: got %v, want INVALID_ARGUMENT", err)
	}
	if has, _ := c.HasImage(ctx, bad); has {
		t.Fatal("image cached under a wrong sha")
	}
}

func TestUploadSkippedWhenCached(t *testing.T) {
	s := startLocal(t, fileConfig)
	c := s.storage("disk")
	ctx := context.Background()
	data := image(1 << 20)
	up := compress(t, XZ, data)
	path := filepath.Join(t.TempDir(), "img.xz")
	if err := os.WriteFile(path, up, 0o644); err != nil {
		t.Fatal(err)
	}
	if has, err := c.HasImage(ctx, sum(up)); err != nil || has {
		t.Fatalf("has_image before: got %v, %v, want false", has, err)
	}
	var phases []Phase
	res, err := c.FlashFile(ctx, path, FlashOptions{Cache: true, Progress: func(p Phase, _, _ int64) {
		if len(phases) == 0 || phases[len(phases)-1] != p {
			phases = append(phases, p)
		}
	}})
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(phases) != "[hash upload]" || !res.Cached {
		t.Fatalf("first flash: phases %v, result %+v; want [hash upload], cached", phases, res)
	}
	if has, err := c.HasImage(ctx, sum(up)); err != nil || !has {
		t.Fatalf("has_image after: got %v, %v, want true", has, err)
	}
	if _, err := c.Write(ctx, bytes.NewReader(image(10)), WriteOptions{}); err != nil {
		t.Fatal(err)
	}
	phases = nil
	res, err = c.FlashFile(ctx, path, FlashOptions{Progress: func(p Phase, _, _ int64) {
		if len(phases) == 0 || phases[len(phases)-1] != p {
			phases = append(phases, p)
		}
	}})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range phases {
		if p == PhaseUpload {
			t.Fatalf("second flash uploaded (phases %v)", phases)
		}
	}
	if got := readBack(t, c); !bytes.Equal(got, data) {
		t.Fatal("read back differs")
	}
	if _, err := c.WriteCached(ctx, strings.Repeat("0", 64), nil); !errors.Is(err, client.ErrNotFound) {
		t.Fatalf("write_cached miss: got %v, want NOT_FOUND", err)
	}
}

// TestWriteURLAllowList is the red team's "storage.write_url fetches any URL, loopback included
// (it read the controller's /metrics)": loopback and link-local addresses are refused unless
// url_allow lists them, a listed name or network is the only way in, and a redirect cannot lead
// elsewhere.
func TestWriteURLAllowList(t *testing.T) {
	secret := []byte("jsn_leases_active 3\n")
	var hits atomic.Int64
	metrics := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		w.Write(secret)
	}))
	defer metrics.Close()
	ctx := context.Background()

	// No url_allow: loopback and link-local are refused, before any connection.
	s := startLocal(t, fileConfig)
	c := s.storage("disk")
	for _, u := range []string{metrics.URL + "/metrics", "http://169.254.169.254/latest/meta-data/", "http://[::1]:1/x", "http://0.0.0.0:1/"} {
		_, err := c.WriteURL(ctx, u, "", nil)
		if !errors.Is(err, client.ErrPermissionDenied) || !strings.Contains(err.Error(), "url_allow") && !strings.Contains(err.Error(), "cannot be fetched") {
			t.Errorf("write_url %s without url_allow: got %v, want PERMISSION_DENIED naming url_allow", u, err)
		}
	}
	if n := hits.Load(); n != 0 {
		t.Fatalf("the loopback server was fetched %d times", n)
	}

	// A name that resolves to loopback is refused where the connection is made.
	port := metrics.URL[strings.LastIndexByte(metrics.URL, ':')+1:]
	if _, err := c.WriteURL(ctx, "http://localhost:"+port+"/metrics", "", nil); !errors.Is(err, client.ErrPermissionDenied) {
		t.Errorf("write_url via localhost: got %v, want PERMISSION_DENIED", err)
	}

	// A list: only its names and networks; a redirect to an address outside it is refused.
	s2 := startLocal(t, strings.Replace(fileConfig, "cache_dir: $DIR/cache}", "cache_dir: $DIR/cache, url_allow: [127.0.0.2/32]}", 1))
	ln, err := net.Listen("tcp", "127.0.0.2:0")
	if err != nil {
		t.Fatal(err)
	}
	redirect := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, metrics.URL+"/metrics", http.StatusFound)
	})}
	go redirect.Serve(ln)
	defer redirect.Close()
	c2 := s2.storage("disk")
	if _, err := c2.WriteURL(ctx, "http://"+ln.Addr().String()+"/img", "", nil); !errors.Is(err, client.ErrPermissionDenied) {
		t.Errorf("write_url redirected to loopback: got %v, want PERMISSION_DENIED", err)
	}
	if _, err := c2.WriteURL(ctx, metrics.URL+"/metrics", "", nil); !errors.Is(err, client.ErrPermissionDenied) {
		t.Errorf("write_url to an address not in the list: got %v, want PERMISSION_DENIED", err)
	}
	if n := hits.Load(); n != 0 {
		t.Fatalf("the loopback server was fetched %d times", n)
	}
	if b, err := os.ReadFile(filepath.Join(s.Dir, "disk.img")); err == nil && bytes.Contains(b, secret) {
		t.Fatal("the storage holds what the loopback server said")
	}
}
