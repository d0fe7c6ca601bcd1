package qemu

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync"
	"time"

	"jsn.dev/jsn/drivers/debug"
	"jsn.dev/jsn/drivers/driver"
	"jsn.dev/jsn/drivers/network"
	"jsn.dev/jsn/drivers/power"
	"jsn.dev/jsn/drivers/serial"
	"jsn.dev/jsn/drivers/storage"
	"jsn.dev/jsn/drivers/video"
	"jsn.dev/jsn/drivers/vnc"
)

// Registered types: the board, and its built-in power and video children (registered so that
// describe shows their interfaces; they cannot be used alone).
const (
	Type      = "qemu.QEMU"
	PowerType = "qemu.Power"
	VideoType = "qemu.Video"
	GDBType   = "qemu.GDB"
	VNCType   = "qemu.VNC"
)

func init() {
	driver.MustRegister(driver.Info{
		Type: Type,
		Doc:  "a virtual board: a QEMU guest with power, console, storage, network and video children",
		New:  New,
		Aliases: []string{
			"jumpstarter_driver_qemu.driver.Qemu",
			"jumpstarter_driver_qemu.driver.QEMU",
		},
	})
	driver.MustRegister(driver.Info{
		Type: PowerType, Interface: power.Interface, New: func(driver.Env) driver.Driver { return &powerChild{} },
		Doc: "power of a QEMU board: on starts the guest, off quits it, cycle resets it",
	})
	driver.MustRegister(driver.Info{
		Type: VideoType, Interface: video.Interface, New: func(driver.Env) driver.Driver { return &videoChild{} },
		Doc: "screen of a QEMU board: snapshot returns a PNG, stream an MJPEG of snapshots",
	})
	driver.MustRegister(driver.Info{
		Type: GDBType, Interface: debug.GDBInterface, New: func(env driver.Env) driver.Driver { return &gdbChild{env: env, name: "gdb"} },
		Doc: "gdbstub of a QEMU board: a GDB remote (jsn debug gdb)",
	})
	driver.MustRegister(driver.Info{
		Type: VNCType, Interface: vnc.Interface, New: func(env driver.Env) driver.Driver { return &gdbChild{env: env, name: "vnc"} },
		Doc: "VNC server of a QEMU board's screen (jsn vnc)",
	})
}

// Hostfwd forwards a TCP port of the exporter's loopback interface to a port of the guest.
// Both jsn's short keys and Jumpstarter's keys are accepted.
type Hostfwd struct {
	Guest     int    `yaml:"guest"`     // guest port, 1..65535
	Host      int    `yaml:"host"`      // loopback port; 0 = a free one picked at Open
	GuestPort int    `yaml:"guestport"` // Jumpstarter spelling of guest
	HostPort  int    `yaml:"hostport"`  // Jumpstarter spelling of host
	HostAddr  string `yaml:"hostaddr"`  // Jumpstarter; only 127.0.0.1 (the default) is accepted
	Protocol  string `yaml:"protocol"`  // Jumpstarter; only tcp (the default)
}

// QEMU is the qemu.QEMU driver: a virtual board.
//
// Config (Jumpstarter's Qemu keys mem, smp, cpu, disk_size and hostfwd load too):
//
//	arch: x86_64            # x86_64 or aarch64; default: the exporter's own architecture
//	memory: 512MiB          # guest RAM (alias mem), at least 16MiB
//	cpu_cores: 1            # virtual CPUs (alias smp), 1..64
//	cpu: ""                 # -cpu model; default QEMU's (x86_64), cortex-a57 (aarch64 on TCG)
//	machine: ""             # -machine; default q35 (x86_64), virt (aarch64)
//	accel: tcg              # tcg (software, works everywhere) | kvm | auto (kvm when /dev/kvm opens and the arch is the host's)
//	image_path: disk.img    # disk image attached as a virtio disk (/dev/vda), flashed by `storage`
//	disk_format: raw        # raw | qcow2
//	disk_size: ""           # create image_path sparse with this size when absent (e.g. 1GiB); without
//	                        # image_path the board gets a scratch disk of this size, removed at close
//	default_partitions: {}  # Jumpstarter's: what boots when nothing was flashed: root (disk image),
//	                        # bios (-bios), OVMF_CODE.fd and OVMF_VARS.fd (UEFI pflash, vars as a snapshot)
//	hostname, username, password: accepted for Jumpstarter configs (jsn makes no cloud-init disk)
//	kernel: ""              # direct kernel boot; a glob is allowed (/boot/vmlinuz-*-cloud-amd64)
//	initrd: ""              # with kernel; a glob is allowed
//	append: ""              # kernel command line, e.g. "console=ttyS0 panic=-1"
//	firmware: ""            # -bios file
//	hostfwd: {ssh: {guest: 22, host: 0}}  # each entry becomes a network.TCP child
//	extra_args: []          # appended to the qemu command line
//	qemu: ""                # qemu binary; default qemu-system-<arch> from PATH
//	stop_timeout: 10s       # how long off waits for QMP quit before killing the process
type QEMU struct {
	Arch        string             `yaml:"arch"`
	Memory      string             `yaml:"memory"`
	Mem         string             `yaml:"mem"`
	CPUCores    int                `yaml:"cpu_cores"`
	SMP         int                `yaml:"smp"`
	CPU         string             `yaml:"cpu"`
	Machine     string             `yaml:"machine"`
	Accel       string             `yaml:"accel"`
	ImagePath   string             `yaml:"image_path"`
	DiskFormat  string             `yaml:"disk_format"`
	DiskSize    string             `yaml:"disk_size"`
	Kernel      string             `yaml:"kernel"`
	Initrd      string             `yaml:"initrd"`
	Append      string             `yaml:"append"`
	Firmware    string             `yaml:"firmware"`
	Hostfwd     map[string]Hostfwd `yaml:"hostfwd"`
	ExtraArgs   []string           `yaml:"extra_args"`
	QEMU        string             `yaml:"qemu"`
	StopTimeout time.Duration      `yaml:"stop_timeout"`

	DefaultPartitions map[string]string `yaml:"default_partitions"`
	Hostname          string            `yaml:"hostname"`
	Username          string            `yaml:"username"`
	Password          string            `yaml:"password"`

	scratch string // the scratch disk of disk_size without image_path; set by Children

	env driver.Env
	log *slog.Logger

	memMiB int64          // parsed memory; set by Validate
	fwd    []fwd          // parsed hostfwd, sorted by name; set by Validate
	kids   []driver.Child // built once by Children
	pw     *powerChild    // set by Children
	con    *console       // set by Children
	disk   *diskChild     // nil without image_path; set by Children
	nets   map[string]*network.TCP

	prepOnce sync.Once
	prepErr  error
	dir      string // private runtime directory (sockets, screendumps); set by prepare

	qmpMu sync.Mutex // one QMP session at a time

	mu       sync.Mutex
	proc     *process // the running QEMU, nil when off; guarded by mu
	lastExit string   // why the last QEMU ended on its own, "" if it did not; guarded by mu
	flashing int      // storage writes in progress; guarded by mu
	closed   bool     // Close ran; guarded by mu
}

// fwd is one parsed hostfwd entry.
type fwd struct {
	name        string
	guest, host int
}

// builtin are the names of the built-in children.
var builtin = []string{"power", "console", "storage", "video", "gdb", "vnc"}

// New is the qemu.QEMU constructor: defaults only, no side effects.
func New(env driver.Env) driver.Driver {
	return &QEMU{Arch: hostArch(), Memory: "512MiB", CPUCores: 1, Accel: "tcg", DiskFormat: "raw",
		StopTimeout: defaultStopTimeout, env: env, log: env.Log}
}

func hostArch() string {
	if runtime.GOARCH == "arm64" {
		return "aarch64"
	}
	return "x86_64"
}

// Validate checks the config.
func (q *QEMU) Validate() error {
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, driver.FieldErrorf(field, format, args...))
	}
	switch q.Arch {
	case "x86_64", "aarch64":
	default:
		bad("arch", "want x86_64 or aarch64, got %q", q.Arch)
	}
	memField, mem := "memory", q.Memory
	if q.Mem != "" {
		memField, mem = "mem", q.Mem
		if q.Mem != "" && q.Memory != "512MiB" && q.Memory != q.Mem {
			bad("mem", "give memory or mem, not both")
		}
	}
	if n, err := storage.ParseSize(strings.TrimSuffix(mem, "i")); err != nil {
		bad(memField, "%v", err)
	} else if n < 16<<20 || n > 1<<40 {
		bad(memField, "must be 16MiB..1TiB, got %s", mem)
	} else {
		q.memMiB = n >> 20
	}
	if q.SMP != 0 {
		q.CPUCores = q.SMP
	}
	if q.CPUCores < 1 || q.CPUCores > 64 {
		bad("cpu_cores", "must be 1..64, got %d", q.CPUCores)
	}
	switch q.Accel {
	case "auto", "kvm", "tcg":
	default:
		bad("accel", "want auto, kvm or tcg, got %q", q.Accel)
	}
	switch q.DiskFormat {
	case "raw", "qcow2":
	default:
		bad("disk_format", "want raw or qcow2, got %q", q.DiskFormat)
	}
	for name, p := range q.DefaultPartitions {
		switch name {
		case "root", "bios", "OVMF_CODE.fd", "OVMF_VARS.fd":
		default:
			bad("default_partitions", "unknown partition %q: want root, bios, OVMF_CODE.fd or OVMF_VARS.fd", name)
		}
		if p == "" || strings.ContainsRune(p, 0) {
			bad("default_partitions."+name, "want a file path, got %q", p)
		}
	}
	if (q.DefaultPartitions["OVMF_CODE.fd"] == "") != (q.DefaultPartitions["OVMF_VARS.fd"] == "") {
		bad("default_partitions", "give OVMF_CODE.fd and OVMF_VARS.fd together")
	}
	if q.DefaultPartitions["bios"] != "" && q.Firmware != "" {
		bad("default_partitions", "give bios here or firmware, not both")
	}
	if q.DiskSize != "" {
		if _, err := storage.ParseSize(q.DiskSize); err != nil {
			bad("disk_size", "%v", err)
		}
	}
	if q.Kernel == "" {
		if q.Initrd != "" {
			bad("initrd", "needs kernel")
		}
		if q.Append != "" {
			bad("append", "needs kernel")
		}
	}
	for _, f := range []struct{ name, val string }{{"image_path", q.ImagePath}, {"kernel", q.Kernel},
		{"initrd", q.Initrd}, {"firmware", q.Firmware}, {"qemu", q.QEMU}} {
		if strings.ContainsRune(f.val, 0) {
			bad(f.name, "must not contain NUL bytes")
		}
	}
	if strings.ContainsRune(q.Append, 0) {
		bad("append", "must not contain NUL bytes")
	}
	if q.StopTimeout <= 0 {
		bad("stop_timeout", "must be positive, got %s", q.StopTimeout)
	}
	q.fwd = nil
	names := make([]string, 0, len(q.Hostfwd))
	for name := range q.Hostfwd {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		h := q.Hostfwd[name]
		field := "hostfwd." + name
		if !validName(name) {
			bad(field, "invalid name: use letters, digits, - and _")
			continue
		}
		if contains(builtin, name) {
			bad(field, "name clashes with the built-in child %q", name)
			continue
		}
		guest, host := h.Guest, h.Host
		if h.GuestPort != 0 {
			guest = h.GuestPort
		}
		if h.HostPort != 0 {
			host = h.HostPort
		}
		if guest < 1 || guest > 65535 {
			bad(field+".guest", "must be 1..65535, got %d", guest)
		}
		if host < 0 || host > 65535 {
			bad(field+".host", "must be 0..65535 (0: pick a free port), got %d", host)
		}
		if h.Protocol != "" && h.Protocol != "tcp" {
			bad(field+".protocol", "only tcp is supported, got %q", h.Protocol)
		}
		if h.HostAddr != "" && h.HostAddr != "127.0.0.1" {
			bad(field+".hostaddr", "only 127.0.0.1 is supported, got %q", h.HostAddr)
		}
		q.fwd = append(q.fwd, fwd{name: name, guest: guest, host: host})
	}
	return errors.Join(errs...)
}

func validName(s string) bool {
	if s == "" {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_') {
			return false
		}
	}
	return true
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// abs resolves a config path against the config file's directory.
func (q *QEMU) abs(p string) string {
	if p == "" || filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(q.env.Dir, p)
}

// Children builds the board's children once: power, console, storage (with image_path), video,
// and one network.TCP per hostfwd entry.
func (q *QEMU) Children() []driver.Child {
	if q.kids != nil {
		return q.kids
	}
	childEnv := q.env.Child // own path, logger and tap subject (`jsn tap board.console`)
	q.pw = &powerChild{q: q}
	port := serial.NewPort(childEnv("console")).(*serial.Port)
	q.con = &console{Port: port, q: q}
	q.kids = []driver.Child{
		{Name: "power", Type: PowerType, Driver: q.pw},
		{Name: "console", Type: "serial.Port", Driver: q.con},
	}
	if q.ImagePath == "" && q.DiskSize != "" && q.scratch == "" {
		// Jumpstarter's board always has a root disk; here it is a scratch file of disk_size.
		var rnd [6]byte
		_, _ = rand.Read(rnd[:])
		q.scratch = filepath.Join(os.TempDir(), fmt.Sprintf("jsn-qemu-%s-%x.img", strings.ReplaceAll(q.env.Path, ".", "-"), rnd))
	}
	if disk := q.diskPath(); disk != "" {
		f := storage.NewFile(childEnv("storage")).(*storage.File)
		f.Path, f.Size = disk, q.DiskSize
		q.disk = &diskChild{q: q, file: f}
		q.kids = append(q.kids, driver.Child{Name: "storage", Type: "storage.File", Driver: q.disk})
	}
	q.kids = append(q.kids, driver.Child{Name: "video", Type: VideoType, Driver: &videoChild{q: q}})
	q.kids = append(q.kids, driver.Child{Name: "gdb", Type: GDBType, Driver: &gdbChild{q: q, env: childEnv("gdb"), name: "gdb"}})
	q.kids = append(q.kids, driver.Child{Name: "vnc", Type: VNCType, Driver: &gdbChild{q: q, env: childEnv("vnc"), name: "vnc"}})
	q.nets = map[string]*network.TCP{}
	for _, f := range q.fwd {
		t := network.NewTCP(childEnv(f.name)).(*network.TCP)
		t.Host, t.Port = "127.0.0.1", f.host
		q.nets[f.name] = t
		q.kids = append(q.kids, driver.Child{Name: f.name, Type: "network.TCP", Driver: t})
	}
	return q.kids
}

// diskPath is the board's disk image: image_path, the scratch disk, or "".
func (q *QEMU) diskPath() string {
	if q.ImagePath != "" {
		return q.abs(q.ImagePath)
	}
	return q.scratch
}

// prepare creates the private runtime directory once. The children call it from their Open,
// which the framework runs before the parent's.
func (q *QEMU) prepare() (string, error) {
	q.prepOnce.Do(func() {
		dir, err := os.MkdirTemp("", "jsn-qemu-")
		if err != nil {
			q.prepErr = fmt.Errorf("runtime directory: %w", err)
			return
		}
		if len(filepath.Join(dir, "console.sock")) > 100 {
			os.RemoveAll(dir)
			q.prepErr = fmt.Errorf("runtime directory %s: path too long for a Unix socket: set TMPDIR to a shorter directory", dir)
			return
		}
		q.dir = dir
	})
	return q.dir, q.prepErr
}

func (q *QEMU) consoleSock() string { return filepath.Join(q.dir, "console.sock") }
func (q *QEMU) qmpSock() string     { return filepath.Join(q.dir, "qmp.sock") }
func (q *QEMU) gdbSock() string     { return filepath.Join(q.dir, "gdb.sock") }
func (q *QEMU) vncSock() string     { return filepath.Join(q.dir, "vnc.sock") }

// Open creates the runtime directory, picks free loopback ports for hostfwd entries with host 0,
// and checks (without failing) that qemu and the kernel are there.
func (q *QEMU) Open(ctx context.Context) error {
	if q.kids == nil {
		q.Children()
	}
	if _, err := q.prepare(); err != nil {
		return err
	}
	for i, f := range q.fwd {
		if f.host != 0 {
			continue
		}
		port, err := freePort()
		if err != nil {
			return fmt.Errorf("hostfwd %s: %w", f.name, err)
		}
		q.fwd[i].host = port
		q.nets[f.name].Port = port
		q.log.Info("hostfwd", "name", f.name, "host", net.JoinHostPort("127.0.0.1", fmt.Sprint(port)), "guest", f.guest)
	}
	if _, err := q.binary(); err != nil {
		q.log.Warn("the board cannot be powered on", "err", err)
	} else if _, _, err := q.bootFiles(); err != nil {
		q.log.Warn("the board cannot be powered on", "err", err)
	}
	return nil
}

// freePort returns a TCP port of 127.0.0.1 that was free a moment ago.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// Reset does nothing itself: the power child powers the board off.
func (q *QEMU) Reset(ctx context.Context) error { return nil }

// Close stops QEMU if it still runs and removes the runtime directory.
func (q *QEMU) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), q.StopTimeout+5*time.Second)
	defer cancel()
	err := q.off(ctx)
	q.mu.Lock()
	q.closed = true
	q.mu.Unlock()
	if q.dir != "" {
		if rerr := os.RemoveAll(q.dir); rerr != nil && err == nil {
			err = rerr
		}
	}
	if q.scratch != "" {
		if rerr := os.Remove(q.scratch); rerr != nil && !os.IsNotExist(rerr) && err == nil {
			err = rerr
		}
	}
	return err
}

var (
	_ driver.Driver    = (*QEMU)(nil)
	_ driver.Validator = (*QEMU)(nil)
	_ driver.Parent    = (*QEMU)(nil)
)
