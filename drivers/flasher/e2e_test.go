package flasher

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"jsn.dev/jsn/bus/wire"
	"jsn.dev/jsn/drivers/driver"
	"jsn.dev/jsn/drivers/drivertest"
	_ "jsn.dev/jsn/drivers/qemu"
	"jsn.dev/jsn/drivers/uboot"
	"jsn.dev/jsn/internal/testkit"
)

// The 32-bit build: the 64-bit one (qemu-x86_64) resets the board in zboot.
const ubootROM = "/usr/lib/u-boot/qemu-x86/u-boot.rom"

// TestBootAndFlashThroughUBoot is the end to end test of the bootloader drivers, on one boot of
// a virtual board: QEMU runs Debian's U-Boot for x86 with a virtio disk and an e1000 NIC on
// user networking (the guest reaches the host's 127.0.0.1 at 10.0.2.2). jsn interrupts
// autoboot (uboot.Console), runs commands and reads/sets the environment; flashes an image
// through U-Boot (flasher.UBoot: TFTP from the exporter's fileserver.TFTP, crc32, virtio write)
// and finds it in the disk image; then loads a Linux kernel over TFTP and boots it, watching
// its first console lines.
//
// U-Boot's tftpboot asks port 69 (this build has no tftpdstp), so the exporter's TFTP server
// listens on port 69 of the exporter's address: the test needs root and a network interface
// other than loopback.
func TestBootAndFlashThroughUBoot(t *testing.T) {
	if testing.Short() {
		t.Skip("boots a QEMU board")
	}
	if _, err := exec.LookPath("qemu-system-x86_64"); err != nil {
		t.Skip("qemu-system-x86_64 not installed (Debian package qemu-system-x86)")
	}
	if _, err := os.Stat(ubootROM); err != nil {
		t.Skip("no " + ubootROM + " (Debian package u-boot-qemu)")
	}
	kernels, _ := filepath.Glob("/boot/vmlinuz-*-cloud-amd64")
	if len(kernels) == 0 {
		t.Skip("no /boot/vmlinuz-*-cloud-amd64 (Debian package linux-image-cloud-amd64)")
	}
	if os.Geteuid() != 0 {
		t.Skip("U-Boot's tftpboot only asks port 69: the TFTP server must bind 127.0.0.1:69, which needs root")
	}
	// QEMU's user networking answers TFTP to 10.0.2.2 itself (its own server), so the board
	// loads from the exporter's address on its network, which user networking reaches like
	// any host.
	hostIP := outbound(t)
	dir := t.TempDir()
	disk := filepath.Join(dir, "disk.img")
	cfg := fmt.Sprintf(`
board:
  type: qemu.QEMU
  config:
    firmware: %s
    machine: pc
    memory: 512MiB
    image_path: %s
    disk_size: 64MiB
    extra_args: [-netdev, "user,id=net1", -device, "e1000,netdev=net1"]
tftp:
  type: jumpstarter_driver_tftp.driver.Tftp
  config: {root_dir: %s, host: %s, port: 69}
uboot:
  type: jumpstarter_driver_uboot.driver.UbootConsole
  config: {prompt: "=>", boot_timeout: 3m}
  children:
    serial: {ref: board.console}
    power: {ref: board.power}
flasher:
  type: flasher.UBoot
  config: {default_target: "virtio 0", load_addr: "0x4000000", targets: {disk: "virtio 0", emmc: "mmc 0"}}
  children:
    uboot: {ref: uboot}
    tftp: {ref: tftp}
`, ubootROM, disk, filepath.Join(dir, "tftp"), hostIP)
	var doc yaml.Node
	if err := yaml.Unmarshal([]byte(cfg), &doc); err != nil {
		t.Fatal(err)
	}
	tree, err := driver.Build("exporter.yaml", doc.Content[0], driver.BuildOptions{Dir: dir, Log: slog.New(slog.NewTextHandler(testWriter{t}, nil))})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	if err := tree.Open(ctx); err != nil {
		t.Fatal(err)
	}
	defer tree.Close()
	ub := tree.Find("uboot").Driver
	fl := tree.Find("flasher").Driver
	tftp := tree.Find("tftp").Driver
	console := tree.Find("board.console").Driver

	// 1. Power on and interrupt autoboot.
	start := time.Now()
	if _, err := drivertest.CallMethod(ctx, ub, "reboot_to_console"); err != nil {
		t.Fatalf("reboot_to_console: %v", err)
	}
	t.Logf("at the U-Boot prompt after %s", time.Since(start).Round(time.Millisecond))

	// 2. Commands, status, environment.
	run := func(cmd string) uboot.Result {
		t.Helper()
		v, err := drivertest.CallMethod(ctx, ub, "run", cmd)
		if err != nil {
			t.Fatalf("run %q: %v", cmd, err)
		}
		r, err := uboot.ParseResult(v)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	if r := run("version"); !strings.Contains(r.Output, "U-Boot 20") || r.Status != 0 {
		t.Fatalf("version: got %+v", r)
	}
	if r := run("test 1 -eq 2"); r.Status != 1 {
		t.Fatalf("a failing command: got status %d, want 1", r.Status)
	}
	if r := run("nosuchcommand"); r.Status == 0 || !strings.Contains(r.Output, "Unknown command") {
		t.Fatalf("an unknown command: got %+v", r)
	}
	if v, err := drivertest.CallMethod(ctx, ub, "get_env", "bootdelay"); err != nil || v != "2" {
		t.Fatalf("get_env bootdelay: got %v, %v, want 2", v, err)
	}
	if _, err := drivertest.CallMethod(ctx, ub, "set_env", "jsn_test", "a b;c"); err != nil {
		t.Fatal(err)
	}
	if v, err := drivertest.CallMethod(ctx, ub, "get_env", "jsn_test"); err != nil || v != "a b;c" {
		t.Fatalf("get_env jsn_test after set_env: got %q, %v", v, err)
	}
	if _, err := drivertest.CallMethod(ctx, ub, "get_env", "jsn_unset"); wire.CodeOf(err) != wire.NotFound {
		t.Fatalf("get_env of an unset variable: got %v, want NOT_FOUND", err)
	}
	if _, err := drivertest.CallMethod(ctx, ub, "run", "sleep 5", 500*time.Millisecond); wire.CodeOf(err) != wire.DeadlineExceeded || !strings.Contains(err.Error(), `"sleep 5"`) {
		t.Fatalf("a command over its timeout: got %v, want DEADLINE_EXCEEDED naming it", err)
	}
	if r := run("echo still here"); !strings.Contains(r.Output, "still here") {
		t.Fatalf("after an interrupted command: got %+v", r)
	}

	// 3. Flash an image through U-Boot.
	img := make([]byte, 3<<20+1234) // not a whole number of blocks
	rand.Read(img)
	upload(t, ctx, fl, "rootfs.img", img)
	items, err := drivertest.CollectStream(ctx, fl, "flash", "rootfs.img", "disk", false)
	if err != nil {
		t.Fatalf("flash: %v", err)
	}
	var phases []string
	var loaded int64
	for _, it := range items {
		m := it.(map[string]any)
		ph := m["phase"].(string)
		if len(phases) == 0 || phases[len(phases)-1] != ph {
			phases = append(phases, ph)
		}
		if ph == "load" {
			loaded = m["bytes"].(int64)
		}
	}
	if got := strings.Join(phases, ","); got != "console,setup,load,verify,write,done" {
		t.Fatalf("flash phases: got %s", got)
	}
	if loaded != int64(len(img)) {
		t.Fatalf("load progress: last %d bytes, want %d", loaded, len(img))
	}
	testkit.CheckFor(t, 10*time.Second, func() error {
		f, err := os.Open(disk)
		if err != nil {
			return err
		}
		defer f.Close()
		got := make([]byte, len(img))
		if _, err := io.ReadFull(f, got); err != nil {
			return err
		}
		if !bytes.Equal(got, img) {
			return fmt.Errorf("the disk image does not start with the flashed image")
		}
		return nil
	})
	// A target U-Boot lacks: the error names the U-Boot command that failed.
	_, err = drivertest.CollectStream(ctx, fl, "flash", "rootfs.img", "emmc", false)
	if wire.CodeOf(err) != wire.FailedPrecondition || !strings.Contains(err.Error(), `U-Boot command "mmc dev 0" failed`) {
		t.Fatalf("flash to mmc: got %v, want FAILED_PRECONDITION naming \"mmc dev 0\"", err)
	}

	// 4. Load a kernel over TFTP and boot it.
	k, err := os.Open(kernels[len(kernels)-1])
	if err != nil {
		t.Fatal(err)
	}
	kb, _ := io.ReadAll(k)
	k.Close()
	upload(t, ctx, tftp, "vmlinuz", kb)
	run("setenv tftpblocksize 1468")
	v, err := drivertest.CallMethod(ctx, ub, "run", "tftpboot 0x1000000 vmlinuz", 5*time.Minute)
	if err != nil {
		t.Fatalf("tftpboot: %v", err)
	}
	if r, _ := uboot.ParseResult(v); r.Status != 0 {
		t.Fatalf("tftpboot: %+v", r)
	}
	if r := run("printenv filesize"); !strings.Contains(r.Output, fmt.Sprintf("filesize=%x", len(kb))) {
		t.Fatalf("filesize after tftpboot: %q, want %x", r.Output, len(kb))
	}
	if _, err := drivertest.CallMethod(ctx, ub, "set_env", "bootargs", "console=ttyS0 panic=-1"); err != nil {
		t.Fatal(err)
	}
	kctx, kcancel := context.WithTimeout(ctx, 3*time.Minute)
	defer kcancel()
	c, err := drivertest.OpenStream(kctx, console, "connect")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Write([]byte("zboot 0x1000000 ${filesize}\n")); err != nil {
		t.Fatal(err)
	}
	var seen bytes.Buffer
	buf := make([]byte, 4096)
	for !bytes.Contains(seen.Bytes(), []byte("Linux version")) {
		n, err := c.Read(buf) // ends when kctx does
		seen.Write(buf[:n])
		if err != nil {
			t.Fatalf("no kernel output (%v); the console printed %q", err, tail(seen.Bytes()))
		}
	}
	t.Logf("kernel booted through U-Boot after %s", time.Since(start).Round(time.Millisecond))
}

// outbound is the exporter's address on its default route.
func outbound(t *testing.T) string {
	c, err := net.Dial("udp4", "192.0.2.1:9")
	if err != nil {
		t.Skip("no network interface besides loopback: QEMU's user networking keeps TFTP to 10.0.2.2 for itself")
	}
	defer c.Close()
	return c.LocalAddr().(*net.UDPAddr).IP.String()
}

func tail(b []byte) string {
	if len(b) > 2000 {
		b = b[len(b)-2000:]
	}
	return string(b)
}

// upload puts data as name through a byte-stream method ("upload" of a flasher, "put" of a
// file server).
func upload(t *testing.T, ctx context.Context, d driver.Driver, name string, data []byte) {
	t.Helper()
	method := "upload"
	if _, err := drivertest.Method(d, "put"); err == nil {
		method = "put"
	}
	c, err := drivertest.OpenStream(ctx, d, method, name)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Write(data); err != nil {
		t.Fatal(err)
	}
	c.CloseWrite()
	if _, err := io.ReadAll(c); err != nil {
		t.Fatalf("%s %s: %v (%v)", method, name, err, c.Wait())
	}
}

// testWriter sends the drivers' log to the test's log.
type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}
