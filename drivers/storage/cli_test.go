package storage

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

var (
	buildOnce sync.Once
	jsnBin    string
	buildErr  error
)

// jsnBinary builds the real jsn binary once per test run.
func jsnBinary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "jsn-storage-cli-")
		if err != nil {
			buildErr = err
			return
		}
		jsnBin = filepath.Join(dir, "jsn")
		out, err := exec.Command("go", "build", "-o", jsnBin, "jsn.dev/jsn/cmd/jsn").CombinedOutput()
		if err != nil {
			buildErr = err
			t.Logf("%s", out)
		}
	})
	if buildErr != nil {
		t.Fatalf("build jsn: %v", buildErr)
	}
	return jsnBin
}

// runInSession runs `jsn shell -c exporter.yaml -- sh -c script` in dir.
func runInSession(t *testing.T, dir, script string) (stdout, stderr string, code int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, jsnBinary(t), "shell", "-c", "exporter.yaml", "--", "sh", "-c", script)
	cmd.Dir = dir
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "JSN_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, "PATH="+filepath.Dir(jsnBinary(t))+":"+os.Getenv("PATH"))
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = 10 * time.Second
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("run jsn: %v", err)
	}
	return out.String(), errOut.String(), code
}

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
	out, errOut, code := runInSession(t, dir,
		"jsn storage flash img.zst; echo exit=$?; jsn storage host && jsn storage status && "+
			"jsn storage flash img.zst && jsn storage dump out.img && jsn storage dut && jsn storage status")
	if code != 0 {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 5 || lines[0] != "exit=1" || lines[1] != "host" || lines[4] != "dut" ||
		!strings.HasPrefix(lines[2], "flashed 3.0 MiB from zstd to card (sha256 "+sum(img)+") in ") ||
		!strings.HasPrefix(lines[3], "dumped 3.0 MiB from card to out.img in ") {
		t.Fatalf("stdout:\n%s\nstderr:\n%s", out, errOut)
	}
	if !strings.Contains(errOut, "storage is switched off; run `jsn storage host` first") {
		t.Fatalf("flash while off: stderr %q lacks the reason", errOut)
	}
	// Not a terminal: plain progress lines.
	for _, want := range []string{"hash: 1.", "flash: 1.", "dump: 3.0 MiB / 3.0 MiB  100%"} {
		if !strings.Contains(errOut, want) {
			t.Fatalf("stderr lacks progress line %q:\n%s", want, errOut)
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
