package storage

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"jsn.dev/jsn/cmd/jsn/jsntest"
)

const cliConfig = `apiVersion: jsn.dev/v1alpha1
kind: ExporterConfig
metadata: {name: cli}
export:
  card:
    type: storage.MockMux
    config: {path: card.img, cache_dir: cache}
`

func TestCLIFlashAndDump(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the jsn binary")
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "exporter.yaml"), []byte(cliConfig), 0o644); err != nil {
		t.Fatal(err)
	}
	data := image(3 << 20)
	img := compress(t, Zstd, data)
	if err := os.WriteFile(filepath.Join(dir, "img.zst"), img, 0o644); err != nil {
		t.Fatal(err)
	}
	r := jsntest.Shell(t, "exporter.yaml", jsntest.Options{Dir: dir}, "sh", "-c",
		"jsn storage flash img.zst; echo exit=$?; jsn storage host && jsn storage status && "+
			"jsn storage flash img.zst && jsn storage dump out.img && jsn storage dut && jsn storage status")
	r.Want(t, 0)
	lines := strings.Split(strings.TrimSpace(r.Stdout), "\n")
	if len(lines) != 5 || lines[0] != "exit=1" || lines[1] != "host" || lines[4] != "dut" ||
		!strings.HasPrefix(lines[2], "flashed 3.0 MiB from zstd to card (sha256 "+sum(img)+") in ") ||
		!strings.HasPrefix(lines[3], "dumped 3.0 MiB from card to out.img in ") {
		t.Fatalf("stdout:\n%s\nstderr:\n%s", r.Stdout, r.Stderr)
	}
	if !strings.Contains(r.Stderr, "storage is switched off; run `jsn storage host` first") {
		t.Fatalf("flash while off: stderr %q lacks the reason", r.Stderr)
	}
	// Not a terminal: plain progress lines.
	for _, want := range []string{"hash: 1.", "flash: 1.", "dump: 3.0 MiB / 3.0 MiB  100%"} {
		if !strings.Contains(r.Stderr, want) {
			t.Fatalf("stderr lacks progress line %q:\n%s", want, r.Stderr)
		}
	}
	got, err := os.ReadFile(filepath.Join(dir, "out.img"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, data) {
		t.Fatalf("out.img: %d bytes (sha %s), want %d (sha %s)", len(got), sum(got), len(data), sum(data))
	}
}
