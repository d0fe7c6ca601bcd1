package flasher

import (
	"bufio"
	"context"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"jsn.dev/jsn/cmd/jsn/cli/clitest"
	"jsn.dev/jsn/drivers/driver"
	"jsn.dev/jsn/drivers/serial"
)

// miniBoard is a stand-in for a board at the U-Boot prompt, for the `jsn flasher` verb through
// a lab (the real U-Boot runs in TestBootAndFlashThroughUBoot): tftpboot reads the file from
// the TFTP root, crc32 and virtio write act on that "RAM", and the disk is a file.
type miniBoard struct {
	Root string `yaml:"root"`
	Disk string `yaml:"disk"`

	mu  sync.Mutex
	ram []byte
	env map[string]string
}

func init() {
	driver.MustRegister(driver.Info{Type: "test.MiniBoard", Interface: serial.Interface,
		New: func(driver.Env) driver.Driver { return &miniBoard{env: map[string]string{}} }})
}

func (b *miniBoard) Connect(ctx context.Context, s driver.Stream) error {
	r := bufio.NewReader(s)
	var cur []byte
	for {
		c, err := r.ReadByte()
		if err != nil {
			return nil
		}
		switch c {
		case 3:
			cur = nil
			io.WriteString(s, "<INTERRUPT>\r\n=> ")
			continue
		case '\n':
		default:
			cur = append(cur, c)
			continue
		}
		line := string(cur)
		cur = nil
		io.WriteString(s, line+"\r\n")
		status := 0
		for _, c := range strings.Split(line, ";") {
			f := strings.Fields(strings.ReplaceAll(c, "$?", strconv.Itoa(status)))
			if len(f) == 0 {
				continue
			}
			status = 0
			b.mu.Lock()
			switch f[0] {
			case "echo":
				io.WriteString(s, strings.Join(f[1:], " ")+"\r\n")
			case "setenv", "dhcp", "virtio":
				if f[0] == "virtio" && f[1] == "write" {
					n, _ := strconv.ParseUint(strings.TrimPrefix(f[4], "0x"), 16, 64)
					os.WriteFile(b.Disk, b.ram[:min(int(n)*512, len(b.ram))], 0o644)
					fmt.Fprintf(s, "virtio write: device 0 block # 0, count %d ... %d blocks written: OK\r\n", n, n)
				}
			case "tftpboot":
				data, err := os.ReadFile(filepath.Join(b.Root, f[2]))
				if err != nil {
					io.WriteString(s, "TFTP error: 'File not found' (1)\r\n")
					status = 1
					break
				}
				b.ram = data
				b.env["filesize"] = strconv.FormatInt(int64(len(data)), 16)
			case "printenv":
				fmt.Fprintf(s, "%s=%s\r\n", f[1], b.env[f[1]])
			case "crc32":
				fmt.Fprintf(s, "crc32 for %s ... ==> %08x\r\n", f[1], crc32.ChecksumIEEE(b.ram))
			default:
				fmt.Fprintf(s, "Unknown command '%s' - try 'help'\r\n", f[0])
				status = 1
			}
			b.mu.Unlock()
		}
		io.WriteString(s, "=> ")
	}
}

func (b *miniBoard) SetBaudrate(context.Context, int64) error       { return nil }
func (b *miniBoard) SetDTR(context.Context, bool) error             { return nil }
func (b *miniBoard) SetRTS(context.Context, bool) error             { return nil }
func (b *miniBoard) SendBreak(context.Context, time.Duration) error { return nil }
func (b *miniBoard) Log(time.Time) []byte                           { return nil }
func (b *miniBoard) Info() serial.Status                            { return serial.Status{} }
func (b *miniBoard) Open(context.Context) error                     { return nil }
func (b *miniBoard) Reset(context.Context) error                    { return nil }
func (b *miniBoard) Close() error                                   { return nil }
func (b *miniBoard) Methods() []driver.Method                       { return serial.Methods(b, serial.Options{}) }

// TestCLIFlash runs `jsn flasher flash` through a lab against the stand-in.
func TestCLIFlash(t *testing.T) {
	root := t.TempDir()
	s := clitest.Start(t, fmt.Sprintf(`apiVersion: jsn.dev/v1alpha1
kind: ExporterConfig
metadata: {name: fl}
export:
  storage:
    type: jumpstarter_driver_flashers.driver.BaseFlasher
    config: {default_target: "virtio 0", load_addr: "0x4000000", http_port: 0}
    children:
      serial: {type: test.MiniBoard, config: {root: %s, disk: %s}}
      tftp: {type: fileserver.TFTP, config: {root_dir: %s, host: 127.0.0.1, port: 0}}
`, root, filepath.Join(root, "disk.img"), root))
	t.Chdir(s.Dir)
	img := []byte(strings.Repeat("image!", 1000))
	os.WriteFile("rootfs.img", img, 0o644)
	r := s.Run("flasher", "flash", "rootfs.img", "--no-reboot")
	r.Want(t, 0)
	for _, want := range []string{"uploaded rootfs.img (6000 bytes)", "load: tftpboot 0x4000000 rootfs.img", "verify: crc32 0x4000000 1770", "write: virtio write 0x4000000 0x0 0xc"} {
		if !strings.Contains(r.Stderr, want) {
			t.Errorf("stderr lacks %q:\n%s", want, r.Stderr)
		}
	}
	if got, _ := os.ReadFile(filepath.Join(root, "disk.img")); string(got) != string(img) {
		t.Fatalf("disk: %d bytes, want the image", len(got))
	}
	r = s.Run("flasher", "flash", "rootfs.img", "--no-reboot", "--target", "mmc 0")
	r.Want(t, 1)
	if !strings.Contains(r.Stderr, `U-Boot command "mmc dev 0" failed (status 1): Unknown command 'mmc'`) {
		t.Fatalf("flash to mmc: stderr %q", r.Stderr)
	}
	r = s.Run("flasher", "flash", "rootfs.img", "--reboot")
	r.Want(t, 1)
	if !strings.Contains(r.Stderr, "no power child") {
		t.Fatalf("--reboot without power: stderr %q", r.Stderr)
	}
}

// TestCLIFlashAutoServers flashes with a Jumpstarter-style config that gives only serial and
// power: the flasher makes its own tftp and http servers (tftp_dir, host, ports), describe shows
// them as its children, and the image goes through the one it made.
func TestCLIFlashAutoServers(t *testing.T) {
	root := t.TempDir()
	s := clitest.Start(t, fmt.Sprintf(`apiVersion: jsn.dev/v1alpha1
kind: ExporterConfig
metadata: {name: fl}
export:
  storage:
    type: jumpstarter_driver_flashers.driver.TIJ784S4Flasher
    config: {default_target: "virtio 0", load_addr: "0x4000000", tftp_dir: %s, host: 127.0.0.1, tftp_port: 0, http_port: 0}
    children:
      serial: {ref: board}
      power: {ref: power}
  board: {type: test.MiniBoard, config: {root: %s, disk: %s}}
  power: {type: power.Mock}
`, root, root, filepath.Join(root, "disk.img")))
	t.Chdir(s.Dir)
	r := s.Run("describe")
	r.Want(t, 0)
	for _, want := range []string{"storage.tftp", "fileserver.TFTP", "storage.http", "fileserver.HTTP"} {
		if !strings.Contains(r.Stdout, want) {
			t.Errorf("describe lacks %q:\n%s", want, r.Stdout)
		}
	}
	img := []byte(strings.Repeat("auto!", 1000))
	os.WriteFile("rootfs.img", img, 0o644)
	r = s.Run("flasher", "flash", "rootfs.img", "--no-reboot")
	r.Want(t, 0)
	if !strings.Contains(r.Stderr, "load: tftpboot 0x4000000 rootfs.img") {
		t.Errorf("stderr lacks the tftpboot:\n%s", r.Stderr)
	}
	if got, _ := os.ReadFile(filepath.Join(root, "rootfs.img")); string(got) != string(img) {
		t.Fatalf("the own TFTP server's root (tftp_dir) has %d bytes, want the image", len(got))
	}
	if got, _ := os.ReadFile(filepath.Join(root, "disk.img")); string(got) != string(img) {
		t.Fatalf("disk: %d bytes, want the image", len(got))
	}
}
