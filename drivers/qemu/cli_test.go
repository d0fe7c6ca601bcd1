package qemu

import (
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"jsn.dev/jsn/cmd/jsn/cli/clitest"
)

// TestCLI boots the board and uses it with jsn commands only, as a user would, running them
// in-process (clitest) against a lab.
func TestCLI(t *testing.T) {
	kernel, initrd := needGuest(t)
	dir := t.TempDir()
	t.Chdir(dir)
	image := append([]byte("HELLO-JSN-DISK-0"), make([]byte, 4096)...)
	if err := os.WriteFile("image.raw", image, 0o600); err != nil {
		t.Fatal(err)
	}
	s := clitest.Start(t, boardConfig("vm2", kernel, initrd, filepath.Join(dir, "disk.img")))
	var stdout, stderr strings.Builder
	step := func(name string, code int, args ...string) string {
		t.Helper()
		r := s.Run(args...)
		stdout.WriteString(r.Stdout)
		stderr.WriteString(r.Stderr)
		if r.Code != code {
			t.Fatalf("step %s: jsn %q: got exit %d, want %d\nstdout:\n%s\nstderr:\n%s", name, args, r.Code, code, stdout.String(), stderr.String())
		}
		return r.Stdout
	}
	step("on", 0, "power", "on")
	step("twice", 1, "power", "on")
	step("ready", 0, "serial", "expect", "jsn-guest ready", "--timeout", "90s")
	step("compute", 0, "serial", "expect", "--send", `\necho $((6*7))\n`, `\n42\r?\n`, "--timeout", "30s")
	step("never", 1, "serial", "expect", "never-printed", "--send", `\necho marker-$((1+2))\n`, "--timeout", "2s")
	step("flash-on", 1, "storage", "flash", "image.raw")
	step("snapshot", 0, "video", "snapshot", "out.png")
	step("off", 0, "power", "off")
	step("flash", 0, "storage", "flash", "image.raw")
	step("on2", 0, "power", "on")
	step("ready2", 0, "serial", "expect", "jsn-guest ready", "--timeout", "90s")
	step("read", 0, "serial", "expect", "--send", `\nhead -c 16 /dev/vda; echo\n`, "HELLO-[A-Z]+-DISK-0", "--timeout", "30s")
	if got := step("status", 0, "power", "status"); got != "on\n" {
		t.Errorf("status: got %q, want on", got)
	}
	step("off2", 0, "power", "off")
	if got := step("status2", 0, "power", "status"); got != "off\n" {
		t.Errorf("status after off: got %q, want off", got)
	}
	for _, want := range []string{"HELLO-JSN-DISK-0", "\n42"} {
		if !strings.Contains(stdout.String(), want) {
			t.Errorf("stdout lacks %q\nstdout:\n%s\nstderr:\n%s", want, stdout.String(), stderr.String())
		}
	}
	for _, want := range []string{"already on", "power the board off first", "no match within 2s", "marker-3"} {
		if !strings.Contains(stderr.String(), want) {
			t.Errorf("stderr lacks %q\nstderr:\n%s", want, stderr.String())
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
	s.Local.Close() // the end of the session
	if pids := qemuPids("vm2"); len(pids) != 0 {
		t.Fatalf("qemu left running after the session: %v", pids)
	}
}
