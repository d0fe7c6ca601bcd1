package fileserver

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
	"go.yaml.in/yaml/v3"

	"jsn.dev/jsn/bus/wire"
	"jsn.dev/jsn/drivers/driver"
	"jsn.dev/jsn/drivers/drivertest"
	"jsn.dev/jsn/internal/testkit"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// build builds and opens one node of type typ with the config keys cfg.
func build(t *testing.T, typ, cfg string) driver.Driver {
	t.Helper()
	tree, err := buildTree(typ, cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := tree.Open(ctx); err != nil {
		t.Fatalf("open: %v", err)
	}
	t.Cleanup(func() { tree.Close() })
	return tree.Find("s").Driver
}

func buildTree(typ, cfg string) (*driver.Tree, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal([]byte("s:\n  type: "+typ+"\n  config: "+cfg), &doc); err != nil {
		return nil, err
	}
	return driver.Build("exporter.yaml", doc.Content[0], driver.BuildOptions{})
}

// put uploads data as name through the put byte stream, as a client does.
func put(t *testing.T, d driver.Driver, name string, data []byte) FileInfo {
	t.Helper()
	c, err := drivertest.OpenStream(context.Background(), d, "put", name)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Write(data); err != nil {
		t.Fatal(err)
	}
	if err := c.CloseWrite(); err != nil {
		t.Fatal(err)
	}
	reply, err := io.ReadAll(c)
	if err != nil {
		t.Fatalf("put %s: %v (handler: %v)", name, err, c.Wait())
	}
	var m map[string]any
	if err := wire.Unmarshal(reply, &m); err != nil {
		t.Fatal(err)
	}
	fi, err := ParseFileInfo(m)
	if err != nil {
		t.Fatal(err)
	}
	return fi
}

func random(t *testing.T, n int) []byte {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

func TestTFTPWithCurl(t *testing.T) {
	curl, err := exec.LookPath("curl")
	if err != nil {
		t.Skip("curl not installed (Debian package curl)")
	}
	root := t.TempDir()
	d := build(t, "jumpstarter_driver_tftp.driver.Tftp", fmt.Sprintf("{root_dir: %s, host: 127.0.0.1, port: 0}", root)).(*TFTP)
	data := random(t, 300_000) // not a multiple of any block size used below
	exact := random(t, 4*512)  // ends on a block boundary: an empty last block
	if fi := put(t, d, "boot/kernel.img", data); fi.Name != "boot/kernel.img" || fi.Size != int64(len(data)) {
		t.Fatalf("put: got %+v", fi)
	}
	put(t, d, "exact", exact)
	u, err := d.URL("boot/kernel.img")
	if err != nil {
		t.Fatal(err)
	}
	if want := fmt.Sprintf("tftp://127.0.0.1:%d/boot/kernel.img", d.Addr().Port); u != want {
		t.Fatalf("url: got %s, want %s", u, want)
	}
	for _, tc := range []struct {
		name string
		file string
		want []byte
		args []string
	}{
		{"default options", "boot/kernel.img", data, nil},
		{"blksize 1468", "boot/kernel.img", data, []string{"--tftp-blksize", "1468"}},
		{"no options (RFC 1350)", "boot/kernel.img", data, []string{"--tftp-no-options"}},
		{"last block empty", "exact", exact, []string{"--tftp-no-options"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "out")
			args := append([]string{"-sS", "--max-time", "60", "-o", out}, tc.args...)
			args = append(args, fmt.Sprintf("tftp://127.0.0.1:%d/%s", d.Addr().Port, tc.file))
			if b, err := exec.Command(curl, args...).CombinedOutput(); err != nil {
				t.Fatalf("curl: %v\n%s", err, b)
			}
			got, _ := os.ReadFile(out)
			if !bytes.Equal(got, tc.want) {
				t.Fatalf("got %d bytes, want the %d uploaded", len(got), len(tc.want))
			}
		})
	}
	// A missing file and an upload are refused with TFTP errors curl reports.
	b, err := exec.Command(curl, "-sS", "--max-time", "20", "-o", "/dev/null", fmt.Sprintf("tftp://127.0.0.1:%d/nope", d.Addr().Port)).CombinedOutput()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 68 { // CURLE_TFTP_NOTFOUND
		t.Fatalf("missing file: got %v %s, want curl's TFTP not found (exit 68)", err, b)
	}
	src := filepath.Join(t.TempDir(), "up")
	os.WriteFile(src, []byte("x"), 0o644)
	b, err = exec.Command(curl, "-sS", "--max-time", "20", "-T", src, fmt.Sprintf("tftp://127.0.0.1:%d/up", d.Addr().Port)).CombinedOutput()
	if err == nil {
		t.Fatalf("upload over TFTP: accepted (%s), want refused", b)
	}
	if _, err := os.Stat(filepath.Join(root, "up")); err == nil {
		t.Fatal("upload over TFTP created a file")
	}
}

func TestTFTPProgress(t *testing.T) {
	curl, err := exec.LookPath("curl")
	if err != nil {
		t.Skip("curl not installed (Debian package curl)")
	}
	d := build(t, "fileserver.TFTP", fmt.Sprintf("{root_dir: %s, host: 127.0.0.1, port: 0}", t.TempDir())).(*TFTP)
	put(t, d, "f", random(t, 10_000))
	var mu sync.Mutex
	var last, total int64
	calls := 0
	stop := d.Watch("/f", func(sent, tot int64) {
		mu.Lock()
		defer mu.Unlock()
		last, total = sent, tot
		calls++
	})
	defer stop()
	if b, err := exec.Command(curl, "-sS", "--max-time", "20", "-o", "/dev/null", fmt.Sprintf("tftp://127.0.0.1:%d/f", d.Addr().Port)).CombinedOutput(); err != nil {
		t.Fatalf("curl: %v %s", err, b)
	}
	// The ACK of the last block may be read after curl exits: wait for the server to see it.
	testkit.CheckFor(t, 5*time.Second, func() error {
		mu.Lock()
		defer mu.Unlock()
		if last != 10_000 || total != 10_000 || calls < 2 {
			return fmt.Errorf("progress: last %d of %d after %d calls, want 10000 of 10000 in several", last, total, calls)
		}
		return nil
	})
}

func TestHTTPServer(t *testing.T) {
	root := t.TempDir()
	os.WriteFile(filepath.Join(root, "kept"), []byte("there before"), 0o644)
	d := build(t, "jumpstarter_driver_http.driver.HttpServer", fmt.Sprintf("{root_dir: %s, host: 127.0.0.1, port: 0, timeout: 600}", root)).(*HTTP)
	data := random(t, 100_000)
	put(t, d, "img/disk.raw", data)
	u, err := d.URL("img/disk.raw")
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !bytes.Equal(got, data) {
		t.Fatalf("GET %s: %s, %d bytes, want 200 and the upload", u, resp.Status, len(got))
	}
	req, _ := http.NewRequest(http.MethodGet, u, nil)
	req.Header.Set("Range", "bytes=10-19")
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	got, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusPartialContent || !bytes.Equal(got, data[10:20]) {
		t.Fatalf("range: %s %x", resp.Status, got)
	}
	for _, tc := range []struct {
		method, path string
		status       int
	}{
		{"GET", "/nope", 404},
		{"GET", "/../../etc/passwd", 403},
		{"PUT", "/img/disk.raw", 405},
		{"DELETE", "/img/disk.raw", 405},
	} {
		req, _ := http.NewRequest(tc.method, fmt.Sprintf("http://%s%s", d.Addr(), tc.path), nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tc.status {
			t.Errorf("%s %s: got %d, want %d", tc.method, tc.path, resp.StatusCode, tc.status)
		}
	}
}

func TestListDeleteReset(t *testing.T) {
	for _, typ := range []string{"fileserver.TFTP", "fileserver.HTTP"} {
		t.Run(typ, func(t *testing.T) {
			root := t.TempDir()
			os.WriteFile(filepath.Join(root, "kept"), []byte("there before"), 0o644)
			d := build(t, typ, fmt.Sprintf("{root_dir: %s, host: 127.0.0.1, port: 0}", root))
			put(t, d, "a/b/new", []byte("12345"))
			put(t, d, "kept", []byte("replaced")) // existed: not removed at reset
			put(t, d, "gone", []byte("x"))
			if _, err := drivertest.CallMethod(context.Background(), d, "delete", "gone"); err != nil {
				t.Fatal(err)
			}
			_, err := drivertest.CallMethod(context.Background(), d, "delete", "gone")
			if wire.CodeOf(err) != wire.NotFound {
				t.Fatalf("delete twice: got %v, want NOT_FOUND", err)
			}
			v, err := drivertest.CallMethod(context.Background(), d, "list")
			if err != nil {
				t.Fatal(err)
			}
			var names []string
			for _, it := range v.([]any) {
				fi, err := ParseFileInfo(it)
				if err != nil {
					t.Fatal(err)
				}
				names = append(names, fmt.Sprintf("%s:%d", fi.Name, fi.Size))
			}
			if got, want := strings.Join(names, " "), "a/b/new:5 kept:8"; got != want {
				t.Fatalf("list: got %s, want %s", got, want)
			}
			for _, bad := range []string{"../x", "/", "a//b", "a/./b", "x\x00y"} {
				_, err := drivertest.CallMethod(context.Background(), d, "delete", bad)
				if wire.CodeOf(err) != wire.InvalidArgument {
					t.Errorf("delete %q: got %v, want INVALID_ARGUMENT", bad, err)
				}
			}
			if err := d.Reset(context.Background()); err != nil {
				t.Fatal(err)
			}
			entries, _ := os.ReadDir(root)
			var left []string
			for _, e := range entries {
				left = append(left, e.Name())
			}
			if got := strings.Join(left, " "); got != "kept" {
				t.Fatalf("after reset the root holds %q, want only kept (uploads of the lease removed)", got)
			}
		})
	}
}

func TestPortBusyUnavailable(t *testing.T) {
	c, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := c.LocalAddr().(*net.UDPAddr).Port
	d := build(t, "fileserver.TFTP", fmt.Sprintf("{root_dir: %s, host: 127.0.0.1, port: %d}", t.TempDir(), port)).(*TFTP)
	if r := d.Unavailable(); !strings.Contains(r, fmt.Sprintf("listen on udp 127.0.0.1:%d", port)) {
		t.Fatalf("unavailable: got %q, want the listen error", r)
	}
	c.Close()
	if err := d.Reset(context.Background()); err != nil {
		t.Fatal(err)
	}
	if r := d.Unavailable(); r != "" {
		t.Fatalf("after the port was freed and a reset: unavailable %q", r)
	}
}

func TestConfigErrors(t *testing.T) {
	for _, tc := range []struct{ typ, cfg, want string }{
		{"fileserver.TFTP", "{port: 70000}", "port: 70000 is out of range"},
		{"fileserver.TFTP", "{host: example.com}", "host: want an IP address"},
		{"fileserver.TFTP", "{max_blksize: 4}", "max_blksize: 4 is out of range"},
		{"fileserver.TFTP", "{root_dir: ''}", "root_dir: must not be empty"},
		{"fileserver.HTTP", "{timeout: 0}", "timeout: must be more than 0"},
		{"fileserver.HTTP", "{advertise: 'a b'}", "advertise: want a host name"},
		{"fileserver.HTTP", "{rootdir: /x}", `unknown field "rootdir"`},
	} {
		_, err := buildTree(tc.typ, tc.cfg)
		if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "exporter.yaml:") {
			t.Errorf("%s %s: got %v, want a positioned error containing %q", tc.typ, tc.cfg, err, tc.want)
		}
	}
}

func TestCleanName(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"a", "a"}, {"/boot/Image", "boot/Image"}, {"a/b.c", "a/b.c"},
		{"..", ""}, {"a/../b", ""}, {"", ""}, {"a\\b", ""}, {"a\nb", ""}, {"a//b", ""}, {"a/", ""},
	} {
		got, err := CleanName(tc.in)
		if (tc.want == "") != (err != nil) || got != tc.want {
			t.Errorf("CleanName(%q): got %q, %v, want %q", tc.in, got, err, tc.want)
		}
	}
}

func TestParseRequest(t *testing.T) {
	r, err := parseRequest([]byte("\x00\x01boot/Image\x00octet\x00blksize\x001468\x00tsize\x000\x00windowsize\x008\x00"))
	if err != nil {
		t.Fatal(err)
	}
	p, acked := negotiate(r, 1468, 8)
	if r.filename != "boot/Image" || p.blksize != 1468 || p.window != 8 || !p.tsize || strings.Join(acked, ",") != "blksize,tsize,windowsize" {
		t.Fatalf("got %+v %+v %v", r, p, acked)
	}
	if got := string(oack(p, acked, 1234)); got != "\x00\x06blksize\x001468\x00tsize\x001234\x00windowsize\x008\x00" {
		t.Fatalf("oack: %q", got)
	}
	for _, bad := range []string{"", "\x00\x01", "\x00\x03x\x00octet\x00", "\x00\x01x\x00mail\x00", "\x00\x01x\x00octet", "\x00\x01\x00octet\x00",
		"\x00\x01x\x00octet\x00blksize\x00", "\x00\x01x\x00octet\x00a\x001\x00a\x002\x00"} {
		if _, err := parseRequest([]byte(bad)); err == nil {
			t.Errorf("parseRequest(%q): no error", bad)
		}
	}
}

func FuzzTFTPPackets(f *testing.F) {
	for _, s := range []string{"\x00\x01boot/Image\x00octet\x00blksize\x001468\x00tsize\x000\x00", "\x00\x02x\x00netascii\x00",
		"\x00\x04\x00\x01", "\x00\x05\x00\x01oops\x00", "\x00\x01x\x00octet\x00windowsize\x0099999\x00timeout\x000\x00"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if r, err := parseRequest(b); err == nil {
			p, acked := negotiate(r, 1468, 8)
			if p.blksize < tftpMinBlksize || p.blksize > 1468 || p.window < 1 || p.window > tftpMaxWindow {
				t.Fatalf("negotiated %+v", p)
			}
			_ = oack(p, acked, 1)
			_, _ = CleanName(r.filename)
		}
		_, _, _, _ = parseReply(b)
	})
}

func FuzzFileInfo(f *testing.F) {
	f.Add("a/b", int64(3), "2026-01-02T03:04:05Z")
	f.Fuzz(func(t *testing.T, name string, size int64, mod string) {
		_, _ = ParseFileInfo(map[string]any{"name": name, "size": size, "modified": mod})
	})
}
