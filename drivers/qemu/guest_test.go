package qemu

import (
	"bytes"
	"compress/gzip"
	"debug/elf"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/klauspost/compress/zstd"
	"github.com/ulikunitz/xz"

	"jsn.dev/jsn/drivers/driver"
	"jsn.dev/jsn/drivers/drivertest"
)

// The end-to-end tests boot a real Linux guest under QEMU (TCG): Debian's cloud kernel and a tiny
// initramfs built here from busybox-static. They skip when those are not installed.

const kernelGlob = "/boot/vmlinuz-*-cloud-amd64"

// guestInit is the initramfs's /init: it loads the virtio disk and network drivers when the
// kernel has them as modules, serves "hello-from-guest" on TCP port 22, prints the ready message
// and runs a shell on the console.
const guestInit = `#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
for m in virtio_ring virtio virtio_pci_legacy_dev virtio_pci_modern_dev virtio_pci virtio_blk failover net_failover virtio_net; do
  [ -f /lib/modules/$m.ko ] && insmod /lib/modules/$m.ko 2>/dev/null
done
if grep -qE '0x1001|0x1042' /sys/bus/pci/devices/*/device 2>/dev/null; then
  i=0; while [ ! -e /dev/vda ] && [ $i -lt 50 ]; do sleep 0.1; i=$((i+1)); done
fi
if ip link set eth0 up 2>/dev/null; then
  ip addr add 10.0.2.15/24 dev eth0
  (while true; do echo hello-from-guest | nc -l -p 22; done) </dev/null >/dev/null 2>&1 &
fi
echo jsn-guest ready
exec setsid cttyhack sh
`

// guestModules are the kernel modules the guest needs for /dev/vda and eth0 (paths under
// kernel/drivers), in load order.
var guestModules = []string{
	"virtio/virtio_ring", "virtio/virtio", "virtio/virtio_pci_legacy_dev",
	"virtio/virtio_pci_modern_dev", "virtio/virtio_pci", "block/virtio_blk",
	"../net/core/failover", "net/net_failover", "net/virtio_net",
}

var (
	guestOnce   sync.Once
	guestDir    string // holds initrd.cpio; removed by TestMain
	guestKernel string
	guestSkip   string
	guestErr    error
)

// needGuest returns the kernel and initramfs of the test guest, or skips the test when QEMU,
// the kernel or busybox is absent.
func needGuest(t *testing.T) (kernel, initrd string) {
	t.Helper()
	if testing.Short() {
		t.Skip("boots a QEMU guest")
	}
	guestOnce.Do(func() {
		if _, err := exec.LookPath("qemu-system-x86_64"); err != nil {
			guestSkip = "qemu-system-x86_64 not installed (Debian package qemu-system-x86)"
			return
		}
		ks, _ := filepath.Glob(kernelGlob)
		sort.Strings(ks)
		if len(ks) == 0 {
			guestSkip = "no " + kernelGlob + " (Debian package linux-image-cloud-amd64)"
			return
		}
		guestKernel = ks[len(ks)-1]
		if f, err := os.Open(guestKernel); err != nil {
			guestSkip = "kernel not readable: " + err.Error()
			return
		} else {
			f.Close()
		}
		bb, err := exec.LookPath("busybox")
		if err != nil {
			guestSkip = "busybox not installed (Debian package busybox-static)"
			return
		}
		if dynamic(bb) {
			guestSkip = bb + " is dynamically linked: install the Debian package busybox-static"
			return
		}
		guestDir, guestErr = os.MkdirTemp("", "jsn-qemu-guest-")
		if guestErr != nil {
			return
		}
		guestErr = buildInitramfs(filepath.Join(guestDir, "initrd.cpio"), bb, guestKernel)
	})
	if guestSkip != "" {
		t.Skip(guestSkip)
	}
	if guestErr != nil {
		t.Fatalf("build the guest: %v", guestErr)
	}
	return guestKernel, filepath.Join(guestDir, "initrd.cpio")
}

// dynamic reports whether the ELF binary at path needs a dynamic loader.
func dynamic(path string) bool {
	f, err := elf.Open(path)
	if err != nil {
		return true
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			return true
		}
	}
	return false
}

// buildInitramfs writes a newc cpio archive with busybox, /init and the virtio modules.
func buildInitramfs(out, busybox, kernel string) error {
	bbData, err := os.ReadFile(busybox)
	if err != nil {
		return err
	}
	var buf bytes.Buffer
	w := &cpioWriter{w: &buf}
	for _, d := range []string{"bin", "dev", "proc", "sys", "lib", "lib/modules"} {
		w.add(d, 0o40755, nil)
	}
	w.add("bin/busybox", 0o100755, bbData)
	w.add("init", 0o100755, []byte(guestInit))
	release := strings.TrimPrefix(filepath.Base(kernel), "vmlinuz-")
	for _, m := range guestModules {
		data, err := readModule(filepath.Join("/lib/modules", release, "kernel/drivers", m))
		if err != nil {
			continue // built in, or absent: the guest works without a disk
		}
		w.add("lib/modules/"+filepath.Base(m)+".ko", 0o100644, data)
	}
	w.trailer()
	if w.err != nil {
		return w.err
	}
	return os.WriteFile(out, buf.Bytes(), 0o644)
}

// readModule reads path.ko, or a compressed path.ko.{xz,zst,gz}, decompressed.
func readModule(path string) ([]byte, error) {
	if b, err := os.ReadFile(path + ".ko"); err == nil {
		return b, nil
	}
	for _, ext := range []string{".ko.xz", ".ko.zst", ".ko.gz"} {
		f, err := os.Open(path + ext)
		if err != nil {
			continue
		}
		defer f.Close()
		var r io.Reader
		switch ext {
		case ".ko.xz":
			r, err = xz.NewReader(f)
		case ".ko.zst":
			var d *zstd.Decoder
			d, err = zstd.NewReader(f)
			if err == nil {
				defer d.Close()
				r = d
			}
		default:
			r, err = gzip.NewReader(f)
		}
		if err != nil {
			return nil, err
		}
		return io.ReadAll(r)
	}
	return nil, os.ErrNotExist
}

// cpioWriter writes the newc ("070701") cpio format the kernel unpacks.
type cpioWriter struct {
	w   io.Writer
	ino int
	err error
}

func (c *cpioWriter) add(name string, mode int, data []byte) {
	if c.err != nil {
		return
	}
	c.ino++
	nlink := 1
	if mode&0o40000 != 0 {
		nlink = 2
	}
	hdr := fmt.Sprintf("070701%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X",
		c.ino, mode, 0, 0, nlink, 0, len(data), 0, 0, 0, 0, len(name)+1, 0)
	c.write([]byte(hdr))
	c.write([]byte(name + "\x00"))
	c.pad(len(hdr) + len(name) + 1)
	c.write(data)
	c.pad(len(data))
}

func (c *cpioWriter) trailer() { c.ino = 0; c.add("TRAILER!!!", 0, nil) }

func (c *cpioWriter) write(b []byte) {
	if c.err == nil {
		_, c.err = c.w.Write(b)
	}
}

func (c *cpioWriter) pad(n int) {
	if r := n % 4; r != 0 {
		c.write(make([]byte, 4-r))
	}
}

func testEnv(path string) driver.Env { return drivertest.Env(path) }
