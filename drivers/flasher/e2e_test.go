package flasher

import (
	"bufio"
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
	"syscall"
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
// user networking. jsn interrupts autoboot (uboot.Console), runs commands and reads/sets the
// environment; flashes an image through U-Boot (flasher.UBoot: TFTP from the exporter's
// fileserver.TFTP, crc32, virtio write) and finds it in the disk image; then loads a Linux
// kernel over TFTP and boots it, watching its first console lines.
//
// U-Boot's tftpboot asks port 69 (this build has no tftpdstp), and QEMU's user networking
// answers TFTP to 10.0.2.2 (the host's loopback) with its own server, so the exporter's TFTP
// server must listen on port 69 of another address of the host. The test never uses the
// machine's real interfaces: it runs itself again (its own test binary, -test.run of this
// test) in a network namespace it creates (CLONE_NEWNET), where it brings up lo and a dummy
// interface d0 (a veth pair if the kernel has no dummy module) with 10.77.0.1/24 and a default route through it (iproute2's ip); the TFTP
// server binds 10.77.0.1:69, which QEMU's user networking reaches like any host address.
// The child's output is streamed to this test's log and its exit status is the result. It
// needs root (CLONE_NEWNET, port 69); without it, or without ip, it skips naming why, except
// under CI=true or JSN_CI=1 where it fails.
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
	if os.Getenv(netnsEnv) != netnsAddr {
		runInNetns(t)
		return
	}
	// In the namespace made by runInNetns.
	setupNetns(t)
	hostIP := outbound(t)
	if hostIP != netnsAddr {
		t.Fatalf("the default route's address in the test's namespace is %s, want %s", hostIP, netnsAddr)
	}
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

// outbound is the exporter's address on its default route (in the test's namespace).
func outbound(t *testing.T) string {
	c, err := net.Dial("udp4", "192.0.2.1:9")
	if err != nil {
		t.Fatalf("no default route in the test's network namespace: %v", err)
	}
	defer c.Close()
	return c.LocalAddr().(*net.UDPAddr).IP.String()
}

const (
	// netnsEnv marks the child test process that runs in the namespace made by runInNetns;
	// its value is the address the child gives its dummy interface.
	netnsEnv  = "JSN_TEST_UBOOT_NETNS"
	netnsAddr = "10.77.0.1"
)

// skipOrFail skips with why, or fails under CI, where the test must run.
func skipOrFail(t *testing.T, why string) {
	t.Helper()
	if os.Getenv("CI") != "" || os.Getenv("JSN_CI") != "" {
		t.Fatal(why + " (CI must run this test)")
	}
	t.Skip(why)
}

// runInNetns runs this test again, in a child test process inside a new network namespace,
// and makes the child's result this test's result.
func runInNetns(t *testing.T) {
	if os.Geteuid() != 0 {
		skipOrFail(t, "needs root: the test makes a network namespace (CLONE_NEWNET) and binds TFTP port 69 in it")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		skipOrFail(t, "ip not installed (Debian package iproute2): it sets up the test's network namespace")
	}
	ctx := context.Background()
	timeout := 15 * time.Minute
	if d, ok := t.Deadline(); ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(ctx, d.Add(-10*time.Second))
		defer cancel()
		timeout = time.Until(d) - 15*time.Second
	}
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run", "^"+t.Name()+"$", "-test.v", "-test.count=1",
		"-test.timeout", timeout.Round(time.Second).String())
	cmd.Env = append(os.Environ(), netnsEnv+"="+netnsAddr)
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWNET, Pdeathsig: syscall.SIGKILL}
	cmd.WaitDelay = 10 * time.Second
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		skipOrFail(t, fmt.Sprintf("cannot make a network namespace for the test (clone with CLONE_NEWNET): %v", err))
	}
	var all bytes.Buffer
	sc := bufio.NewScanner(out)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		t.Log("netns: " + sc.Text())
		all.Write(sc.Bytes())
		all.WriteByte('\n')
	}
	err = cmd.Wait()
	switch {
	case err != nil:
		t.Fatalf("the test in its network namespace failed (%v); its output ends with:\n%s", err, tail(all.Bytes()))
	case bytes.Contains(all.Bytes(), []byte("--- SKIP: "+t.Name())):
		t.Skipf("the test in its network namespace skipped:\n%s", tail(all.Bytes()))
	case !bytes.Contains(all.Bytes(), []byte("--- PASS: "+t.Name())):
		t.Fatalf("the test in its network namespace exited 0 without passing; its output ends with:\n%s", tail(all.Bytes()))
	}
}

// setupNetns brings up the child's namespace: lo, and a dummy interface with netnsAddr and the
// default route. It refuses to touch a namespace that has other interfaces (a marker set by
// hand in the host's namespace).
func setupNetns(t *testing.T) {
	ifs, err := net.Interfaces()
	if err != nil {
		t.Fatal(err)
	}
	for _, i := range ifs {
		if i.Name != "lo" {
			t.Fatalf("%s is set but this process's network namespace has interface %s: not the fresh namespace made by the test, refusing to configure it", netnsEnv, i.Name)
		}
	}
	ip := func(args ...string) error {
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			return fmt.Errorf("ip %s in the test's network namespace: %v: %s", strings.Join(args, " "), err, bytes.TrimSpace(out))
		}
		return nil
	}
	if err := ip("link", "set", "lo", "up"); err != nil {
		t.Fatal(err)
	}
	// A dummy interface; kernels without the dummy module get a veth pair (its peer d1 up too,
	// or d0 stays down).
	if err := ip("link", "add", "d0", "type", "dummy"); err != nil {
		if err2 := ip("link", "add", "d0", "type", "veth", "peer", "name", "d1"); err2 != nil {
			t.Fatalf("%v; %v", err, err2)
		}
		if err := ip("link", "set", "d1", "up"); err != nil {
			t.Fatal(err)
		}
	}
	for _, args := range [][]string{
		{"addr", "add", netnsAddr + "/24", "dev", "d0"},
		{"link", "set", "d0", "up"},
		{"route", "add", "default", "dev", "d0"},
	} {
		if err := ip(args...); err != nil {
			t.Fatal(err)
		}
	}
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
