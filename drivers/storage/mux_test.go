package storage

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"jsn.dev/jsn/client"
)

const muxConfig = `apiVersion: jsn.dev/v1alpha1
kind: ExporterConfig
metadata: {name: lab}
export:
  mux:
    type: jumpstarter_driver_opendal.driver.MockStorageMux
    config: {path: $DIR/card.img, size: 1MiB, cache_dir: $DIR/cache}
`

func TestMockMuxGatesStorage(t *testing.T) {
	s := startLocal(t, muxConfig)
	c := s.storage("mux")
	ctx := context.Background()
	if st, err := c.Status(ctx); err != nil || st != Off {
		t.Fatalf("status at lease start: got %q, %v, want off", st, err)
	}
	data := image(200 << 10)
	steps := []struct {
		do      func(context.Context) error
		side    Side
		wantErr string // "" = write and read allowed
	}{
		{c.DUT, DUT, "storage is switched to the DUT; run `jsn storage host` first"},
		{c.Off, Off, "storage is switched off; run `jsn storage host` first"},
		{c.Host, Host, ""},
	}
	for _, st := range steps {
		if err := st.do(ctx); err != nil {
			t.Fatal(err)
		}
		if st.side == Host {
			// The card was made sparse with the configured size.
			if size, err := c.Size(ctx); err != nil || size != 1<<20 {
				t.Fatalf("size: got %d, %v, want %d", size, err, 1<<20)
			}
		}
		if got, err := c.Status(ctx); err != nil || got != st.side {
			t.Fatalf("status: got %q, %v, want %q", got, err, st.side)
		}
		_, werr := c.Write(ctx, bytes.NewReader(data), WriteOptions{})
		_, rerr := c.Read(ctx, &bytes.Buffer{}, nil)
		for _, err := range []error{werr, rerr} {
			if st.wantErr == "" {
				if err != nil {
					t.Fatalf("on %s: %v", st.side, err)
				}
				continue
			}
			if !errors.Is(err, client.ErrFailedPrecondition) || !strings.Contains(err.Error(), st.wantErr) {
				t.Fatalf("on %s: got %v, want FAILED_PRECONDITION %q", st.side, err, st.wantErr)
			}
		}
	}
	// A flashed card keeps its configured size; the image is at its start.
	got := readBack(t, c)
	if len(got) != 1<<20 || !bytes.Equal(got[:len(data)], data) || bytes.ContainsFunc(got[len(data):], func(r rune) bool { return r != 0 }) {
		t.Fatalf("card: %d bytes, want %d starting with the image and zero after", len(got), 1<<20)
	}
}

const sdwireConfig = `apiVersion: jsn.dev/v1alpha1
kind: ExporterConfig
metadata: {name: lab}
export:
  sdwire:
    type: jumpstarter_driver_sdwire.driver.SDWire
    config:
      serial: sdw-00001
      storage_device: $DIR/sdcard.img
      storage_timeout: 2
      sd_mux_ctrl: $DIR/bin/sd-mux-ctrl
      cache_dir: $DIR/cache
`

func TestSDWire(t *testing.T) {
	dir := t.TempDir()
	script, err := os.ReadFile("testdata/sd-mux-ctrl")
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "bin")
	os.Mkdir(bin, 0o755)
	if err := os.WriteFile(filepath.Join(bin, "sd-mux-ctrl"), script, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "sdcard.img"), make([]byte, 4096), 0o644); err != nil {
		t.Fatal(err)
	}
	s := startLocal(t, strings.ReplaceAll(sdwireConfig, "$DIR", dir))
	c := s.storage("sdwire")
	ctx := context.Background()
	data := image(100 << 10)

	if err := c.DUT(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Write(ctx, bytes.NewReader(data), WriteOptions{}); !errors.Is(err, client.ErrFailedPrecondition) ||
		!strings.Contains(err.Error(), "switched to the DUT") {
		t.Fatalf("write on DUT side: got %v, want FAILED_PRECONDITION", err)
	}
	if err := c.Host(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Write(ctx, bytes.NewReader(compress(t, Zstd, data)), WriteOptions{}); err != nil {
		t.Fatalf("write on host side: %v", err)
	}
	if got := readBack(t, c); !bytes.Equal(got, data) {
		t.Fatal("read back differs")
	}
	if err := c.Off(ctx); err != nil {
		t.Fatal(err)
	}
	if st, err := c.Status(ctx); err != nil || st != Host {
		t.Fatalf("status after off: got %q, %v, want host (the SDWire's off)", st, err)
	}

	log, err := os.ReadFile(filepath.Join(bin, "argv.log"))
	if err != nil {
		t.Fatal(err)
	}
	// Reset at lease start (off = --ts), dut, the gate's status on the refused write, host,
	// status for write and read, off, status.
	want := []string{"--ts", "--dut", "--status", "--ts", "--status", "--status", "--ts", "--status"}
	lines := strings.Split(strings.TrimSpace(string(log)), "\n")
	if len(lines) != len(want) {
		t.Fatalf("sd-mux-ctrl calls: got %q, want %d calls %v", lines, len(want), want)
	}
	for i, l := range lines {
		if w := "--device-serial=sdw-00001 " + want[i]; l != w {
			t.Fatalf("call %d: got argv %q, want %q", i, l, w)
		}
	}
}

func TestParseStatus(t *testing.T) {
	tests := []struct {
		out  string
		want Side
		err  bool
	}{
		{"SD connected to: TS\n", Host, false},
		{"SD connected to: DUT\n", DUT, false},
		{"Status: dut", DUT, false},
		{"status: host", Host, false},
		{"Status: ???", "", true},
		{"", "", true},
	}
	for _, tt := range tests {
		got, err := parseStatus(tt.out)
		if got != tt.want || (err != nil) != tt.err {
			t.Errorf("parseStatus(%q): got %q, %v, want %q (error %v)", tt.out, got, err, tt.want, tt.err)
		}
	}
}
