package qemu

import (
	"bytes"
	"context"
	"image/png"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// These tests build the real jsn binary and drive a board with jsn commands only, inside one
// `jsn shell -c lab.yaml -- sh -c script` session.

var (
	buildOnce sync.Once
	jsnBin    string
	buildErr  error
	buildOut  []byte
)

func jsnBinary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "jsn-qemu-test-")
		if err != nil {
			buildErr = err
			return
		}
		jsnBin = filepath.Join(dir, "jsn")
		buildOut, buildErr = exec.Command("go", "build", "-o", jsnBin, "jsn.dev/jsn/cmd/jsn").CombinedOutput()
	})
	if buildErr != nil {
		t.Fatalf("build jsn: %v\n%s", buildErr, buildOut)
	}
	return jsnBin
}

type result struct {
	stdout, stderr string
	code           int
}

// inSession runs `jsn shell -c config -- sh -c script` in dir.
func inSession(t *testing.T, config, dir, script string) result {
	t.Helper()
	bin := jsnBinary(t)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "shell", "-c", config, "--", "sh", "-c", script)
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "JSN_") {
			env = append(env, kv)
		}
	}
	cmd.Env = append(env, "PATH="+filepath.Dir(bin)+":"+os.Getenv("PATH"))
	cmd.Dir = dir
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	r := result{stdout: out.String(), stderr: errOut.String()}
	if ee, ok := err.(*exec.ExitError); ok {
		r.code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("run jsn shell: %v", err)
	}
	if ctx.Err() != nil {
		t.Fatalf("jsn shell timed out; stdout:\n%s\nstderr:\n%s", r.stdout, r.stderr)
	}
	return r
}

// TestCLI boots the board and uses it with jsn commands as a user would.
func TestCLI(t *testing.T) {
	kernel, initrd := needGuest(t)
	dir := t.TempDir()
	config := filepath.Join(dir, "lab.yaml")
	if err := os.WriteFile(config, []byte(boardConfig("vm2", kernel, initrd, filepath.Join(dir, "disk.img"))), 0o600); err != nil {
		t.Fatal(err)
	}
	image := append([]byte("HELLO-JSN-DISK-0"), make([]byte, 4096)...)
	if err := os.WriteFile(filepath.Join(dir, "image.raw"), image, 0o600); err != nil {
		t.Fatal(err)
	}
	script := `set -x
step() { echo "== $1"; }
step on; jsn power on || exit 10
step twice; jsn power on; echo "twice exit $?"
step ready; jsn serial expect 'jsn-guest ready' --timeout 90s || exit 11
step compute; jsn serial expect --send '\necho $((6*7))\n' '\n42\r?\n' --timeout 30s || exit 12
step never; jsn serial expect 'never-printed' --send '\necho marker-$((1+2))\n' --timeout 2s; echo "never exit $?"
step flash-on; jsn storage flash image.raw; echo "flash-on exit $?"
step snapshot; jsn video snapshot out.png || exit 13
step off; jsn power off || exit 14
step flash; jsn storage flash image.raw || exit 15
step on2; jsn power on || exit 16
step ready2; jsn serial expect 'jsn-guest ready' --timeout 90s || exit 17
step read; jsn serial expect --send '\nhead -c 16 /dev/vda; echo\n' 'HELLO-[A-Z]+-DISK-0' --timeout 30s || exit 18
step status; jsn power status
step off2; jsn power off || exit 19
jsn power status
`
	r := inSession(t, config, dir, script)
	if r.code != 0 {
		t.Fatalf("got exit %d\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
	}
	for _, want := range []string{"twice exit 1", "never exit 1", "flash-on exit 1", "HELLO-JSN-DISK-0", "\n42", "on\n== off2\noff\n"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("stdout lacks %q\nstdout:\n%s\nstderr:\n%s", want, r.stdout, r.stderr)
		}
	}
	for _, want := range []string{"already on", "power the board off first", "no match within 2s", "marker-3"} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("stderr lacks %q\nstderr:\n%s", want, r.stderr)
		}
	}
	f, err := os.Open(filepath.Join(dir, "out.png"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatalf("out.png: %v", err)
	}
	if b := img.Bounds(); b.Dx() != 720 || b.Dy() != 400 {
		t.Fatalf("out.png: got %v, want 720x400", b)
	}
	if pids := qemuPids("vm2"); len(pids) != 0 {
		t.Fatalf("qemu left running after the session: %v", pids)
	}
}
