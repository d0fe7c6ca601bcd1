package qemu

import (
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"jsn.dev/jsn/cmd/jsn/jsntest"
)

// These tests build the real jsn binary and drive a board with jsn commands only, inside one
// `jsn shell -c lab.yaml -- sh -c script` session.

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
	r := jsntest.Shell(t, config, jsntest.Options{Dir: dir, Timeout: 4 * time.Minute}, "sh", "-c", script)
	r.Want(t, 0)
	for _, want := range []string{"twice exit 1", "never exit 1", "flash-on exit 1", "HELLO-JSN-DISK-0", "\n42", "on\n== off2\noff\n"} {
		if !strings.Contains(r.Stdout, want) {
			t.Errorf("stdout lacks %q\nstdout:\n%s\nstderr:\n%s", want, r.Stdout, r.Stderr)
		}
	}
	for _, want := range []string{"already on", "power the board off first", "no match within 2s", "marker-3"} {
		if !strings.Contains(r.Stderr, want) {
			t.Errorf("stderr lacks %q\nstderr:\n%s", want, r.Stderr)
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
