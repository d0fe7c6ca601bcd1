package qemu

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"jsn.dev/jsn/bus/wire"
)

const (
	defaultStopTimeout = 10 * time.Second
	// startTimeout bounds how long on waits for QEMU to serve its console and QMP sockets.
	startTimeout = 30 * time.Second
	// stderrTail is how much of QEMU's stderr is kept for error messages.
	stderrTail = 4 << 10
)

// debianPackage names the Debian package that ships qemu-system-<arch>.
var debianPackage = map[string]string{"x86_64": "qemu-system-x86", "aarch64": "qemu-system-arm"}

// process is one run of QEMU.
type process struct {
	cmd    *exec.Cmd
	stderr *tailBuffer
	done   chan struct{} // closed when the process has been waited for
	err    error         // from Wait; set before done is closed
	// stopping is set when off asked it to stop; guarded by QEMU.mu
	stopping bool
}

// exitReason describes how p ended, after done.
func (p *process) exitReason() string {
	why := "qemu exited"
	if p.err != nil {
		why += ": " + p.err.Error()
	}
	if tail := strings.TrimSpace(p.stderr.String()); tail != "" {
		lines := strings.Split(tail, "\n")
		why += ": " + strings.TrimSpace(lines[len(lines)-1])
	}
	return why
}

// tailBuffer keeps the last stderrTail bytes written to it.
type tailBuffer struct {
	mu  sync.Mutex
	buf []byte
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, p...)
	if over := len(t.buf) - stderrTail; over > 0 {
		t.buf = append([]byte(nil), t.buf[over:]...)
	}
	return len(p), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(t.buf)
}

// binary returns the qemu binary to run, or a FAILED_PRECONDITION error naming the package.
func (q *QEMU) binary() (string, error) {
	name := q.QEMU
	if name == "" {
		name = "qemu-system-" + q.Arch
	} else {
		name = q.abs(name)
	}
	p, err := exec.LookPath(name)
	if err != nil {
		return "", wire.Errorf(wire.FailedPrecondition, "%s not found: install the Debian package %s (or set qemu: to the binary)",
			name, debianPackage[q.Arch])
	}
	return p, nil
}

// glob resolves a config path that may be a glob to one existing file: the last match in
// sorted order (the newest kernel version, usually).
func (q *QEMU) glob(field, pattern string) (string, error) {
	if pattern == "" {
		return "", nil
	}
	p := q.abs(pattern)
	matches, err := filepath.Glob(p)
	if err != nil {
		return "", wire.Errorf(wire.FailedPrecondition, "%s %s: %v", field, p, err)
	}
	sort.Strings(matches)
	if len(matches) == 0 {
		hint := ""
		if field == "kernel" && q.Arch == "x86_64" {
			hint = ": install a kernel, e.g. the Debian package linux-image-cloud-amd64"
		}
		return "", wire.Errorf(wire.FailedPrecondition, "%s %s: no such file%s", field, p, hint)
	}
	return matches[len(matches)-1], nil
}

// bootFiles resolves kernel and initrd.
func (q *QEMU) bootFiles() (kernel, initrd string, err error) {
	if kernel, err = q.glob("kernel", q.Kernel); err != nil {
		return "", "", err
	}
	if initrd, err = q.glob("initrd", q.Initrd); err != nil {
		return "", "", err
	}
	if q.Firmware != "" {
		if _, err := os.Stat(q.abs(q.Firmware)); err != nil {
			return "", "", wire.Errorf(wire.FailedPrecondition, "firmware %s: no such file", q.abs(q.Firmware))
		}
	}
	return kernel, initrd, nil
}

// kvmUsable reports whether /dev/kvm can be opened for the host's own architecture.
func (q *QEMU) kvmUsable() bool {
	if q.Arch != hostArch() {
		return false
	}
	f, err := os.OpenFile("/dev/kvm", os.O_RDWR, 0)
	if err != nil {
		return false
	}
	f.Close()
	return true
}

// qemuOpt escapes a value for a QEMU -option list (commas are doubled).
func qemuOpt(s string) string { return strings.ReplaceAll(s, ",", ",,") }

// args builds QEMU's command line. disk is the image to attach ("" for none).
func (q *QEMU) args(kernel, initrd, disk string, kvm bool) []string {
	a := []string{"-nodefaults", "-no-user-config", "-name", "jsn-" + q.env.Path}
	machine, cpu := q.Machine, q.CPU
	switch q.Arch {
	case "aarch64":
		if machine == "" {
			machine = "virt"
		}
		if cpu == "" {
			cpu = "cortex-a57"
			if kvm {
				cpu = "host"
			}
		}
	default:
		if machine == "" {
			machine = "q35"
		}
	}
	accel := "tcg"
	if kvm {
		accel = "kvm"
	}
	a = append(a, "-machine", machine, "-accel", accel, "-m", strconv.FormatInt(q.memMiB, 10)+"M",
		"-smp", strconv.Itoa(q.CPUCores))
	if cpu != "" {
		a = append(a, "-cpu", cpu)
	}
	a = append(a, "-display", "none", "-vnc", "unix:"+qemuOpt(q.vncSock()))
	if q.Arch == "aarch64" {
		a = append(a, "-device", "virtio-gpu-pci")
	} else {
		a = append(a, "-vga", "std")
	}
	a = append(a,
		"-chardev", "socket,id=console,path="+qemuOpt(q.consoleSock())+",server=on,wait=on",
		"-serial", "chardev:console",
		"-qmp", "unix:"+qemuOpt(q.qmpSock())+",server=on,wait=off",
		"-chardev", "socket,id=gdb,path="+qemuOpt(q.gdbSock())+",server=on,wait=off",
		"-gdb", "chardev:gdb",
	)
	netdev := "user,id=net0"
	for _, f := range q.fwd {
		netdev += fmt.Sprintf(",hostfwd=tcp:127.0.0.1:%d-:%d", f.host, f.guest)
	}
	a = append(a, "-netdev", netdev, "-device", "virtio-net-pci,netdev=net0")
	if disk != "" {
		a = append(a, "-drive", "file="+qemuOpt(disk)+",format="+q.DiskFormat+",if=virtio")
	}
	if kernel != "" {
		a = append(a, "-kernel", kernel)
	}
	if initrd != "" {
		a = append(a, "-initrd", initrd)
	}
	if q.Append != "" {
		a = append(a, "-append", q.Append)
	}
	if q.Firmware != "" {
		a = append(a, "-bios", q.abs(q.Firmware))
	} else if b := q.DefaultPartitions["bios"]; b != "" {
		a = append(a, "-bios", q.abs(b))
	}
	if code, vars := q.DefaultPartitions["OVMF_CODE.fd"], q.DefaultPartitions["OVMF_VARS.fd"]; code != "" && vars != "" {
		a = append(a, "-drive", "file="+qemuOpt(q.abs(code))+",if=pflash,format=raw,unit=0,readonly=on",
			"-drive", "file="+qemuOpt(q.abs(vars))+",if=pflash,format=raw,unit=1,snapshot=on")
	}
	return append(a, q.ExtraArgs...)
}

// running returns the live process, or nil.
func (q *QEMU) running() *process {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.proc
}

// on starts QEMU and returns once its console is attached and QMP answers.
func (q *QEMU) on(ctx context.Context) error {
	bin, err := q.binary()
	if err != nil {
		return fmt.Errorf("on: %w", err)
	}
	kernel, initrd, err := q.bootFiles()
	if err != nil {
		return fmt.Errorf("on: %w", err)
	}
	if _, err := q.prepare(); err != nil {
		return wire.Errorf(wire.Internal, "on: %v", err)
	}
	disk := ""
	if p := q.diskPath(); p != "" {
		if _, err := os.Stat(p); err == nil {
			disk = p
		} else if root := q.DefaultPartitions["root"]; root == "" {
			q.log.Warn("no disk attached", "image_path", p, "err", err)
		}
	}
	if root := q.DefaultPartitions["root"]; disk == "" && root != "" {
		disk = q.abs(root) // nothing flashed: boot the default root (Jumpstarter's default_partitions)
	}
	kvm := q.Accel == "kvm" || q.Accel == "auto" && q.kvmUsable()

	q.mu.Lock()
	switch {
	case q.closed:
		q.mu.Unlock()
		return wire.Errorf(wire.Unavailable, "on: driver closed")
	case q.proc != nil:
		q.mu.Unlock()
		return wire.Errorf(wire.FailedPrecondition, "on: the board is already on")
	case q.flashing > 0:
		q.mu.Unlock()
		return wire.Errorf(wire.FailedPrecondition, "on: the storage is being flashed; wait for it to finish")
	}
	os.Remove(q.consoleSock())
	os.Remove(q.qmpSock())
	p := &process{stderr: &tailBuffer{}, done: make(chan struct{})}
	p.cmd = exec.Command(bin, q.args(kernel, initrd, disk, kvm)...)
	p.cmd.Dir = q.dir
	p.cmd.Stderr = p.stderr
	p.cmd.SysProcAttr = sysProcAttr()
	if err := p.cmd.Start(); err != nil {
		q.mu.Unlock()
		return wire.Errorf(wire.FailedPrecondition, "on: start %s: %v", bin, err)
	}
	q.proc, q.lastExit = p, ""
	q.mu.Unlock()
	q.log.Info("qemu started", "pid", p.cmd.Process.Pid, "args", strings.Join(p.cmd.Args, " "))
	go q.wait(p)

	if err := q.awaitStart(ctx, p); err != nil {
		q.stop(context.Background(), p, false)
		return err
	}
	return nil
}

// wait reaps p and records why it ended if nobody asked it to.
func (q *QEMU) wait(p *process) {
	p.err = p.cmd.Wait()
	q.mu.Lock()
	if q.proc == p {
		q.proc = nil
		if !p.stopping {
			q.lastExit = p.exitReason()
		}
	}
	stopping := p.stopping
	q.mu.Unlock()
	close(p.done)
	if !stopping {
		q.log.Warn("qemu ended on its own", "reason", p.exitReason())
	} else {
		q.log.Info("qemu stopped")
	}
}

// awaitStart waits until the console is attached and QMP answers, or QEMU exits.
func (q *QEMU) awaitStart(ctx context.Context, p *process) error {
	ctx, cancel := context.WithTimeout(ctx, startTimeout)
	defer cancel()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	consoleUp, qmpUp := false, false
	for !consoleUp || !qmpUp {
		select {
		case <-p.done:
			return wire.Errorf(wire.FailedPrecondition, "on: %s", p.exitReason())
		case <-ctx.Done():
			return wire.Errorf(wire.DeadlineExceeded, "on: qemu did not come up within %s (console attached: %t, qmp: %t)",
				startTimeout, consoleUp, qmpUp)
		case <-tick.C:
		}
		if !consoleUp {
			consoleUp = q.con.Port.Unavailable() == ""
			continue
		}
		if _, err := q.qmp(ctx, "query-status", nil); err == nil {
			qmpUp = true
		}
	}
	return nil
}

// qmp runs one QMP command on the running QEMU.
func (q *QEMU) qmp(ctx context.Context, cmd string, args any) ([]byte, error) {
	q.qmpMu.Lock()
	defer q.qmpMu.Unlock()
	c, err := dialQMP(ctx, q.qmpSock())
	if err != nil {
		return nil, err
	}
	defer c.Close()
	return c.execute(cmd, args)
}

// off stops QEMU: QMP quit, then SIGKILL after StopTimeout. It does nothing when off.
func (q *QEMU) off(ctx context.Context) error {
	q.mu.Lock()
	p := q.proc
	q.lastExit = ""
	q.mu.Unlock()
	if p == nil {
		return nil
	}
	return q.stop(ctx, p, true)
}

// stop ends p; graceful tries QMP quit first.
func (q *QEMU) stop(ctx context.Context, p *process, graceful bool) error {
	q.mu.Lock()
	p.stopping = true
	q.mu.Unlock()
	if graceful {
		qctx, cancel := context.WithTimeout(ctx, q.StopTimeout)
		if _, err := q.qmp(qctx, "quit", nil); err != nil {
			q.log.Info("qmp quit", "err", err)
		}
		select {
		case <-p.done:
		case <-qctx.Done():
		}
		cancel()
	}
	select {
	case <-p.done:
	default:
		p.cmd.Process.Signal(syscall.SIGKILL)
		select {
		case <-p.done:
		case <-time.After(10 * time.Second):
			return wire.Errorf(wire.Internal, "off: qemu pid %d did not exit after SIGKILL", p.cmd.Process.Pid)
		}
	}
	q.mu.Lock()
	if q.proc == p {
		q.proc = nil
	}
	q.mu.Unlock()
	os.Remove(q.consoleSock())
	os.Remove(q.qmpSock())
	return nil
}

// status returns "on", "off", or "off (<why QEMU ended on its own>)".
func (q *QEMU) status() string {
	q.mu.Lock()
	defer q.mu.Unlock()
	switch {
	case q.proc != nil:
		return "on"
	case q.lastExit != "":
		return "off (" + q.lastExit + ")"
	}
	return "off"
}

// cycle resets the guest: paused for wait, then system_reset. An off board is powered on.
func (q *QEMU) cycle(ctx context.Context, wait time.Duration) error {
	if q.running() == nil {
		return q.on(ctx)
	}
	if wait > 0 {
		if _, err := q.qmp(ctx, "stop", nil); err != nil {
			return wire.Errorf(wire.Unavailable, "cycle: %v", err)
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			q.qmp(context.Background(), "cont", nil)
			return ctx.Err()
		case <-t.C:
		}
	}
	if _, err := q.qmp(ctx, "system_reset", nil); err != nil {
		return wire.Errorf(wire.Unavailable, "cycle: %v", err)
	}
	if wait > 0 {
		if _, err := q.qmp(ctx, "cont", nil); err != nil {
			return wire.Errorf(wire.Unavailable, "cycle: %v", err)
		}
	}
	return nil
}

// errOff is returned by operations that need a running guest.
func errOff(op string) error {
	return wire.Errorf(wire.FailedPrecondition, "%s: the board is off: run `jsn power on` first", op)
}

var _ = errors.New
