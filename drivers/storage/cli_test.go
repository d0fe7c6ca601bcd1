package storage

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"jsn.dev/jsn/cmd/jsn/cli/clitest"
)

const cliConfig = `apiVersion: jsn.dev/v1alpha1
kind: ExporterConfig
metadata: {name: cli}
export:
  card:
    type: storage.MockMux
    config: {path: card.img, cache_dir: cache}
`

// TestCLIFlashAndDump runs the `jsn storage` verbs in-process against a lab.
func TestCLIFlashAndDump(t *testing.T) {
	s := clitest.Start(t, cliConfig)
	t.Chdir(s.Dir)
	data := image(3 << 20)
	img := compress(t, Zstd, data)
	if err := os.WriteFile("img.zst", img, 0o644); err != nil {
		t.Fatal(err)
	}
	r := s.Run("storage", "flash", "img.zst") // the mux starts off
	r.Want(t, 1)
	if !strings.Contains(r.Stderr, "storage is switched off; run `jsn storage host` first") {
		t.Fatalf("flash while off: stderr %q lacks the reason", r.Stderr)
	}
	var stdout, stderr strings.Builder
	for _, args := range [][]string{{"host"}, {"status"}, {"flash", "img.zst"}, {"dump", "out.img"}, {"dut"}, {"status"}} {
		r := s.Run(append([]string{"storage"}, args...)...)
		r.Want(t, 0)
		stdout.WriteString(r.Stdout)
		stderr.WriteString(r.Stderr)
	}
	lines := strings.Split(strings.TrimSpace(stdout.String()), "\n")
	if len(lines) != 4 || lines[0] != "host" || lines[3] != "dut" ||
		!strings.HasPrefix(lines[1], "flashed 3.0 MiB from zstd to card (sha256 "+sum(img)+") in ") ||
		!strings.HasPrefix(lines[2], "dumped 3.0 MiB from card to out.img in ") {
		t.Fatalf("stdout:\n%s\nstderr:\n%s", stdout.String(), stderr.String())
	}
	// Not a terminal: plain progress lines.
	for _, want := range []string{"hash: 1.", "flash: 1.", "dump: 3.0 MiB / 3.0 MiB  100%"} {
		if !strings.Contains(stderr.String(), want) {
			t.Fatalf("stderr lacks progress line %q:\n%s", want, stderr.String())
		}
	}
	got, err := os.ReadFile(filepath.Join(s.Dir, "out.img"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, data) {
		t.Fatalf("out.img: %d bytes (sha %s), want %d (sha %s)", len(got), sum(got), len(data), sum(data))
	}
}
