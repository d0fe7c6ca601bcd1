package qemu

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"jsn.dev/jsn/client"
	"jsn.dev/jsn/drivers/driver"
	"jsn.dev/jsn/drivers/power"
	"jsn.dev/jsn/exporter"
)

func parse(t testing.TB, node string) error {
	t.Helper()
	cfg := "apiVersion: jsn.dev/v1alpha1\nkind: ExporterConfig\nmetadata: {name: x}\nexport:\n  board:\n" + indent(node, "    ")
	c, err := exporter.ParseConfig("lab.yaml", []byte(cfg))
	if err != nil {
		return err
	}
	_, err = driver.Build(c.File, c.Export, driver.BuildOptions{})
	return err
}

func indent(s, pre string) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	for i := range lines {
		lines[i] = pre + lines[i]
	}
	return strings.Join(lines, "\n") + "\n"
}

var configTests = []struct {
	node    string
	wantErr string // "" = valid
}{
	{"type: qemu.QEMU", ""},
	{"type: jumpstarter_driver_qemu.driver.Qemu\nconfig: {mem: 1G, smp: 2, disk_size: 2G, hostfwd: {ssh: {hostport: 2222, guestport: 22}}}", ""},
	{"type: jumpstarter_driver_qemu.driver.Qemu\nconfig: {hostname: demo, username: u, password: p, default_partitions: {root: /var/lib/disk.img, OVMF_CODE.fd: /usr/share/OVMF/OVMF_CODE.fd, OVMF_VARS.fd: /usr/share/OVMF/OVMF_VARS.fd}}", ""},
	{"type: qemu.QEMU\nconfig: {default_partitions: {boot: /x}}", "unknown partition \"boot\""},
	{"type: qemu.QEMU\nconfig: {default_partitions: {OVMF_CODE.fd: /x}}", "give OVMF_CODE.fd and OVMF_VARS.fd together"},
	{"type: qemu.QEMU\nconfig: {firmware: /a, default_partitions: {bios: /b}}", "give bios here or firmware, not both"},
	{"type: jumpstarter_driver_qemu.driver.QEMU\nconfig: {mem: 1G, smp: 2, cpu: max, hostfwd: {ssh: {hostport: 2222, guestport: 22, protocol: tcp, hostaddr: 127.0.0.1}}}", ""},
	{"type: qemu.QEMU\nconfig: {arch: riscv64}", "want x86_64 or aarch64"},
	{"type: qemu.QEMU\nconfig: {memory: 1MiB}", "must be 16MiB..1TiB"},
	{"type: qemu.QEMU\nconfig: {memory: lots}", "size \"lots\""},
	{"type: qemu.QEMU\nconfig: {cpu_cores: 0}", "cpu_cores: must be 1..64"},
	{"type: qemu.QEMU\nconfig: {accel: hvf}", "want auto, kvm or tcg"},
	{"type: qemu.QEMU\nconfig: {disk_format: vmdk}", "want raw or qcow2"},
	{"type: qemu.QEMU\nconfig: {initrd: /x}", "initrd: needs kernel"},
	{"type: qemu.QEMU\nconfig: {append: quiet}", "append: needs kernel"},
	{"type: qemu.QEMU\nconfig: {hostfwd: {power: {guest: 22}}}", "clashes with the built-in child"},
	{"type: qemu.QEMU\nconfig: {hostfwd: {ssh: {guest: 0}}}", "hostfwd.ssh.guest: must be 1..65535"},
	{"type: qemu.QEMU\nconfig: {hostfwd: {ssh: {guest: 22, host: 70000}}}", "hostfwd.ssh.host: must be 0..65535"},
	{"type: qemu.QEMU\nconfig: {hostfwd: {ssh: {guest: 22, protocol: udp}}}", "only tcp"},
	{"type: qemu.QEMU\nconfig: {hostfwd: {'a.b': {guest: 22}}}", "invalid name"},
	{"type: qemu.QEMU\nconfig: {stop_timeout: 0s}", "stop_timeout: must be positive"},
	{"type: qemu.QEMU\nconfig: {imagepath: x}", "unknown field \"imagepath\""},
	{"type: qemu.QEMU\nchildren: {console: {type: power.Mock}}", "clashes with a built-in child"},
	{"type: qemu.Power", ""}, // builds; fails at open
}

func TestConfig(t *testing.T) {
	for _, tt := range configTests {
		err := parse(t, tt.node)
		if tt.wantErr == "" {
			if err != nil {
				t.Errorf("%q: got %v, want no error", tt.node, err)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
			t.Errorf("%q: got %v, want an error containing %q", tt.node, err, tt.wantErr)
		}
	}
}

func FuzzConfig(f *testing.F) {
	for _, tt := range configTests {
		f.Add(tt.node)
	}
	f.Fuzz(func(t *testing.T, node string) { _ = parse(t, node) })
}

func TestArgs(t *testing.T) {
	q := New(testEnv("lab.vm")).(*QEMU)
	q.Kernel, q.Append, q.ImagePath = "/k", "console=ttyS0", "d,1.img"
	q.Hostfwd = map[string]Hostfwd{"ssh": {Guest: 22, Host: 2222}, "web": {GuestPort: 80, HostPort: 8080}}
	if err := q.Validate(); err != nil {
		t.Fatal(err)
	}
	q.dir = "/run/x"
	got := strings.Join(q.args("/boot/k", "/i", "/d,1.img", false), " ")
	for _, want := range []string{
		"-name jsn-lab.vm", "-machine q35", "-accel tcg", "-m 512M", "-smp 1", "-vga std",
		"-chardev socket,id=console,path=/run/x/console.sock,server=on,wait=on", "-serial chardev:console",
		"-qmp unix:/run/x/qmp.sock,server=on,wait=off",
		"-netdev user,id=net0,hostfwd=tcp:127.0.0.1:2222-:22,hostfwd=tcp:127.0.0.1:8080-:80",
		"-drive file=/d,,1.img,format=raw,if=virtio", "-kernel /boot/k", "-initrd /i", "-append console=ttyS0",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("args lack %q:\n%s", want, got)
		}
	}
	q.Arch = "aarch64"
	got = strings.Join(q.args("", "", "", false), " ")
	for _, want := range []string{"-machine virt", "-cpu cortex-a57", "-device virtio-gpu-pci"} {
		if !strings.Contains(got, want) {
			t.Errorf("aarch64 args lack %q:\n%s", want, got)
		}
	}
	if slices.Contains(q.args("", "", "", false), "-kernel") {
		t.Errorf("args without a kernel have -kernel")
	}
}

// TestMissingFiles: power on names the missing binary or kernel and the Debian package; the
// exporter starts anyway.
func TestMissingFiles(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		config string
		want   []string
	}{
		{"qemu: " + filepath.Join(dir, "no-qemu"), []string{"no-qemu not found", "qemu-system-x86"}},
		{"qemu: /bin/true\n      kernel: " + filepath.Join(dir, "vmlinuz-*"), []string{"vmlinuz-*: no such file", "linux-image-cloud-amd64"}},
		{"qemu: /bin/true\n      firmware: nofw.bin", []string{"firmware", "nofw.bin: no such file"}},
	}
	for i, tt := range tests {
		name := fmt.Sprintf("b%d", i)
		lb := startLab(t, fmt.Sprintf("apiVersion: jsn.dev/v1alpha1\nkind: ExporterConfig\nmetadata: {name: x}\nexport:\n  %s:\n    type: qemu.QEMU\n    config:\n      arch: x86_64\n      %s\n", name, tt.config))
		err := power.NewClient(lb.Driver(name + ".power")).On(context.Background())
		if !errors.Is(err, client.ErrFailedPrecondition) {
			t.Errorf("%s: got %v, want FAILED_PRECONDITION", tt.config, err)
			continue
		}
		for _, w := range tt.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: got %v, want it to say %q", tt.config, err, w)
			}
		}
	}
}

// TestQEMUFailsToStart: a QEMU that exits at once reports its stderr.
func TestQEMUFailsToStart(t *testing.T) {
	needGuest(t)
	lb := startLab(t, "apiVersion: jsn.dev/v1alpha1\nkind: ExporterConfig\nmetadata: {name: x}\nexport:\n  vm3:\n    type: qemu.QEMU\n    config:\n      arch: x86_64\n      extra_args: [-no-such-option]\n")
	pw := power.NewClient(lb.Driver("vm3.power"))
	err := pw.On(context.Background())
	if !errors.Is(err, client.ErrFailedPrecondition) || !strings.Contains(err.Error(), "no-such-option") {
		t.Fatalf("got %v, want FAILED_PRECONDITION naming the bad option", err)
	}
	if s, _ := pw.Status(context.Background()); !strings.HasPrefix(string(s), "off (qemu exited: exit status 1") {
		t.Fatalf("status: got %q, want off with the reason", s)
	}
}

func TestOrphanChild(t *testing.T) {
	for _, typ := range []string{PowerType, VideoType} {
		cfg, err := exporter.ParseConfig("lab.yaml", []byte("apiVersion: jsn.dev/v1alpha1\nkind: ExporterConfig\nmetadata: {name: x}\nexport:\n  p: {type: "+typ+"}\n"))
		if err != nil {
			t.Fatal(err)
		}
		_, err = exporter.StartLocal(context.Background(), cfg, exporter.LocalOptions{})
		if err == nil || !strings.Contains(err.Error(), "built-in child of qemu.QEMU") {
			t.Errorf("%s alone: got %v, want built-in child of qemu.QEMU", typ, err)
		}
	}
}

// TestScratchDisk: Jumpstarter's disk_size without image_path gives the board a scratch disk of
// that size (its storage child), made at open and removed at close.
func TestScratchDisk(t *testing.T) {
	t.Setenv("TMPDIR", t.TempDir())
	c, err := exporter.ParseConfig("lab.yaml", []byte("apiVersion: jumpstarter.dev/v1alpha1\nkind: ExporterConfig\nmetadata: {name: x}\nexport:\n  board:\n    type: jumpstarter_driver_qemu.driver.Qemu\n    config: {disk_size: 2MiB}\n"))
	if err != nil {
		t.Fatal(err)
	}
	tree, err := driver.Build(c.File, c.Export, driver.BuildOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if tree.Find("board.storage") == nil {
		t.Fatal("no storage child for disk_size without image_path")
	}
	q := tree.Find("board").Driver.(*QEMU)
	if q.scratch == "" || !strings.HasPrefix(q.scratch, os.Getenv("TMPDIR")) {
		t.Fatalf("scratch disk %q", q.scratch)
	}
	if err := tree.Open(context.Background()); err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(q.scratch)
	if err != nil || st.Size() != 2<<20 {
		t.Errorf("scratch disk after open: %v, %v; want 2 MiB", st, err)
	}
	if err := tree.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(q.scratch); !os.IsNotExist(err) {
		t.Errorf("scratch disk left after close: %v", err)
	}
}
