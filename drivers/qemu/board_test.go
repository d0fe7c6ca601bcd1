package qemu

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"image/png"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"

	"jsn.dev/jsn/client"
	"jsn.dev/jsn/drivers/network"
	"jsn.dev/jsn/drivers/power"
	"jsn.dev/jsn/drivers/serial"
	"jsn.dev/jsn/drivers/storage"
	"jsn.dev/jsn/drivers/video"
	"jsn.dev/jsn/exporter/exportertest"
	"jsn.dev/jsn/internal/testkit"
)

func TestMain(m *testing.M) {
	code := m.Run()
	if guestDir != "" {
		os.RemoveAll(guestDir)
	}
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "goleak:", err)
			code = 1
		}
	}
	os.Exit(code)
}

// boardConfig is an exporter config with one board named name.
func boardConfig(name, kernel, initrd, disk string) string {
	return fmt.Sprintf(`apiVersion: jsn.dev/v1alpha1
kind: ExporterConfig
metadata: {name: qemu-test}
export:
  %s:
    type: qemu.QEMU
    config:
      memory: 256MiB
      kernel: %q
      initrd: %q
      append: console=ttyS0 panic=-1 quiet
      image_path: %q
      disk_size: 1MiB
      stop_timeout: 5s
      hostfwd:
        ssh: {guest: 22}
`, name, kernel, initrd, disk)
}

type lab struct{ *exportertest.Lab }

func startLab(t *testing.T, config string) *lab { return &lab{exportertest.Start(t, config)} }

// qemuPids returns the pids of QEMU processes whose command line names the board.
func qemuPids(board string) []int {
	var out []int
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil {
			continue
		}
		args := strings.Split(string(b), "\x00")
		if len(args) > 0 && strings.Contains(filepath.Base(args[0]), "qemu-system") && strings.Contains(string(b), "\x00jsn-"+board+"\x00") {
			out = append(out, pid)
		}
	}
	return out
}

// console is an open console stream with expect.
type consoleConn struct {
	t  *testing.T
	sc *serial.Client
	s  client.ByteStream
}

func openConsole(t *testing.T, ctx context.Context, lb *lab, board string) *consoleConn {
	t.Helper()
	sc := serial.NewClient(lb.Driver(board + ".console"))
	s, err := sc.Connect(ctx)
	if err != nil {
		t.Fatalf("connect console: %v", err)
	}
	return &consoleConn{t: t, sc: sc, s: s}
}

func (c *consoleConn) expect(ctx context.Context, re, send string) string {
	c.t.Helper()
	ectx, cancel := context.WithTimeout(ctx, 90*time.Second)
	defer cancel()
	m, tail, err := c.sc.Expect(ectx, c.s, regexp.MustCompile(re), []byte(send))
	if err != nil {
		c.t.Fatalf("expect %q: %v; output:\n%s", re, err, tail)
	}
	return string(m)
}

// TestBoard drives a real guest through the exporter: boot, console, command, crash recovery,
// flash and read back from inside the guest, screen snapshot, power off.
func TestBoard(t *testing.T) {
	kernel, initrd := needGuest(t)
	dir := t.TempDir()
	disk := filepath.Join(dir, "disk.img")
	lb := startLab(t, boardConfig("vm1", kernel, initrd, disk))
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()

	desc, err := lb.Exporter.Describe(ctx)
	if err != nil {
		t.Fatal(err)
	}
	ifaces := map[string]string{}
	for _, n := range desc.Drivers[0].Children {
		ifaces[n.Name] = n.Interface
	}
	want := map[string]string{"power": power.Interface, "console": serial.Interface, "storage": storage.Interface,
		"video": video.Interface, "ssh": "jsn.network.v1"}
	for name, iface := range want {
		if ifaces[name] != iface {
			t.Errorf("child %s: got interface %q, want %q", name, ifaces[name], iface)
		}
	}

	pw := power.NewClient(lb.Driver("vm1.power"))
	video := video.NewClient(lb.Driver("vm1.video"))
	st := storage.NewClient(lb.Driver("vm1.storage"))

	// Off: the console is unavailable, snapshots need a running board.
	if _, err := serial.NewClient(lb.Driver("vm1.console")).Connect(ctx); !errors.Is(err, client.ErrUnavailable) {
		t.Fatalf("console while off: got %v, want UNAVAILABLE", err)
	}
	if _, err := video.Snapshot(ctx); !errors.Is(err, client.ErrFailedPrecondition) {
		t.Fatalf("snapshot while off: got %v, want FAILED_PRECONDITION", err)
	}

	// Flash a disk image while off.
	image := append([]byte("HELLO-JSN-DISK-0"), make([]byte, 64<<10)...)
	if _, err := st.Write(ctx, bytes.NewReader(image), storage.WriteOptions{}); err != nil {
		t.Fatalf("flash while off: %v", err)
	}

	if err := pw.On(ctx); err != nil {
		t.Fatalf("power on: %v", err)
	}
	if s, _ := pw.Status(ctx); s != power.On {
		t.Fatalf("status: got %q, want on", s)
	}
	if err := pw.On(ctx); !errors.Is(err, client.ErrFailedPrecondition) || !strings.Contains(err.Error(), "already on") {
		t.Fatalf("power on twice: got %v, want FAILED_PRECONDITION already on", err)
	}
	if _, err := st.Write(ctx, bytes.NewReader(image), storage.WriteOptions{}); !errors.Is(err, client.ErrFailedPrecondition) ||
		!strings.Contains(err.Error(), "power the board off first") {
		t.Fatalf("flash while on: got %v, want FAILED_PRECONDITION power the board off first", err)
	}

	con := openConsole(t, ctx, lb, "vm1")
	con.expect(ctx, `jsn-guest ready`, "")
	con.expect(ctx, `/ # `, "\n")
	con.expect(ctx, `\n42\r?\n`, "echo $((6*7))\n")
	if got := con.expect(ctx, `HELLO-[A-Z]+-DISK-0`, "head -c 16 /dev/vda; echo\n"); got != "HELLO-JSN-DISK-0" {
		t.Fatalf("disk content: got %q", got)
	}

	// The hostfwd child reaches the guest's port 22.
	testkit.CheckFor(t, 60*time.Second, func() error {
		s, err := network.NewClient(lb.Driver("vm1.ssh")).Dial(ctx)
		if err != nil {
			return err
		}
		defer s.Close()
		b, _ := io.ReadAll(io.LimitReader(s, 64))
		if !strings.Contains(string(b), "hello-from-guest") {
			return fmt.Errorf("the guest's port 22 through board.ssh said %q, want hello-from-guest", b)
		}
		return nil
	})

	// The screen: VGA text mode, 80x25 cells of 9x16 pixels.
	shot, err := video.Snapshot(ctx)
	if err != nil {
		t.Fatalf("snapshot: %v", err)
	}
	img, err := png.Decode(bytes.NewReader(shot))
	if err != nil {
		t.Fatalf("snapshot is not a PNG: %v", err)
	}
	if b := img.Bounds(); b.Dx() != 720 || b.Dy() != 400 {
		t.Fatalf("snapshot: got %v, want 720x400 (VGA text mode)", b)
	}

	// QEMU killed: status says so, the console stream ends with the reason, power on works.
	pids := qemuPids("vm1")
	if len(pids) != 1 {
		t.Fatalf("got qemu pids %v, want one", pids)
	}
	if err := syscall.Kill(pids[0], syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 4096)
	var rerr error
	for rerr == nil {
		_, rerr = con.s.Read(buf)
	}
	if !strings.Contains(rerr.Error(), "the board stopped") || !strings.Contains(rerr.Error(), "killed") {
		t.Fatalf("console after kill: got %v, want the board stopped … killed", rerr)
	}
	con.s.Close()
	testkit.CheckFor(t, 30*time.Second, func() error {
		s, err := pw.Status(ctx)
		if err != nil {
			return err
		}
		if !strings.HasPrefix(string(s), "off (") || !strings.Contains(string(s), "killed") {
			return fmt.Errorf("status after the kill: got %q, want off (… killed …)", s)
		}
		return nil
	})
	if err := pw.On(ctx); err != nil {
		t.Fatalf("power on after a crash: %v", err)
	}
	con = openConsole(t, ctx, lb, "vm1")
	con.expect(ctx, `jsn-guest ready`, "")
	con.expect(ctx, `\n7\r?\n`, "\necho $((3+4))\n")

	// Cycle resets the guest: it boots again.
	if err := pw.Cycle(ctx, time.Millisecond); err != nil {
		t.Fatalf("cycle: %v", err)
	}
	con.expect(ctx, `jsn-guest ready`, "")

	if err := pw.Off(ctx); err != nil {
		t.Fatalf("power off: %v", err)
	}
	if s, _ := pw.Status(ctx); s != power.Off {
		t.Fatalf("status after off: got %q, want off", s)
	}
	con.s.Close()
	if pids := qemuPids("vm1"); len(pids) != 0 {
		t.Fatalf("qemu still running after off: %v", pids)
	}

	// The exporter's end stops a running board.
	if err := pw.On(ctx); err != nil {
		t.Fatal(err)
	}
	lb.Local.Close()
	if pids := qemuPids("vm1"); len(pids) != 0 {
		t.Fatalf("qemu still running after the exporter closed: %v", pids)
	}
}
