package kerneltest

import (
	"bufio"
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"

	"jsn.dev/jsn/bus"
	"jsn.dev/jsn/client"
)

// SimLines is the number of lines of the guest's simulated GPIO chip.
const SimLines = 8

// SimChip is the label of the guest's simulated GPIO chip.
const SimChip = "jsn-sim"

// Options say what the guest needs.
type Options struct {
	GPIO bool // gpio-sim with one chip "jsn-sim" of SimLines lines
	CAN  bool // vcan, can-raw, can-isotp; vcan0 and vcan1 up
	// Files are added to the initramfs: guest path (relative, "bin/tool") → host file.
	Files map[string]string
	// Programs are host programs (paths, or names looked up in PATH) copied into the guest's
	// /bin with the shared libraries they need (as ldd lists them), so a test can run the real
	// tools (candump, cansend) beside jsn.
	Programs []string
	// Memory is the guest's RAM in MiB (default 512).
	Memory int
	// Log receives the guest's console while it boots and the harness's steps; nil discards.
	Log io.Writer
}

// Guest is a booted QEMU guest and the host bus it reaches.
type Guest struct {
	Kernel Kernel
	URL    string // the host bus, as the host reaches it (nats://127.0.0.1:PORT)
	port   int

	srv   *bus.Server
	cmd   *exec.Cmd
	stdin io.WriteCloser
	lines chan string
	dir   string
	log   io.Writer

	mu     sync.Mutex // one Run at a time
	exited chan struct{}
	tail   []string // the last console lines, for errors
	tmu    sync.Mutex
	nextID int
}

// moduleRoot returns the directory of jsn's go.mod (this file is in internal/kerneltest).
func moduleRoot() string {
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		return ""
	}
	dir := filepath.Join(filepath.Dir(file), "..", "..")
	if _, err := os.Stat(filepath.Join(dir, "go.mod")); err != nil {
		return ""
	}
	return dir
}

// Boot builds the guest and boots it; it returns an error wrapping ErrSkip when a part is not
// installed. The guest is up (modules loaded, devices made, network configured) when Boot
// returns. Close stops it.
func Boot(ctx context.Context, o Options) (g *Guest, err error) {
	if _, err := exec.LookPath("qemu-system-x86_64"); err != nil {
		return nil, skipf("qemu-system-x86_64 not installed (Debian package qemu-system-x86)")
	}
	k, err := FindKernel(o.GPIO)
	if err != nil {
		return nil, err
	}
	bb, err := staticBusybox()
	if err != nil {
		return nil, err
	}
	if _, err := exec.LookPath("go"); err != nil {
		return nil, skipf("no go command to build the guest's exporter")
	}
	logw := o.Log
	if logw == nil {
		logw = io.Discard
	}
	var simKO string
	if o.GPIO {
		start := time.Now()
		if simKO, err = GPIOSimModule(k); err != nil {
			return nil, err
		}
		fmt.Fprintf(logw, "kerneltest: gpio-sim module %s (%s)\n", simKO, time.Since(start).Round(time.Millisecond))
	}
	dir, err := os.MkdirTemp("", "jsn-kerneltest-")
	if err != nil {
		return nil, err
	}
	g = &Guest{Kernel: k, dir: dir, log: logw, lines: make(chan string, 1024), exited: make(chan struct{})}
	defer func() {
		if err != nil {
			g.Close()
			g = nil
		}
	}()
	start := time.Now()
	guestBin := filepath.Join(dir, "jsnguest")
	build := exec.CommandContext(ctx, "go", "build", "-trimpath", "-o", guestBin, "jsn.dev/jsn/internal/kerneltest/jsnguest")
	build.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH=amd64")
	build.Dir = moduleRoot() // jsnguest's dependencies are jsn's, whichever module the caller is
	if out, err := build.CombinedOutput(); err != nil {
		return g, fmt.Errorf("build jsnguest: %v\n%s", err, out)
	}
	fmt.Fprintf(logw, "kerneltest: built jsnguest (%s)\n", time.Since(start).Round(time.Millisecond))

	mods := []string{"virtio_pci", "virtio_net"}
	if o.GPIO {
		mods = append(mods, "configfs")
	}
	if o.CAN {
		mods = append(mods, "can_raw", "can_isotp", "vcan")
	}
	paths, err := k.modulePaths(mods...)
	if err != nil {
		return g, err
	}
	if simKO != "" {
		paths = append(paths, simKO)
	}
	initrd := filepath.Join(dir, "initrd.cpio")
	if err := writeInitramfs(initrd, bb, guestBin, paths, o); err != nil {
		return g, err
	}

	g.srv, err = bus.StartServer(ctx, bus.ServerOptions{TCP: "127.0.0.1:0"})
	if err != nil {
		return g, err
	}
	g.URL = g.srv.URL()
	if i := strings.LastIndex(g.URL, ":"); i >= 0 {
		g.port, _ = strconv.Atoi(g.URL[i+1:])
	}
	if g.port == 0 {
		return g, fmt.Errorf("kerneltest: no port in the bus URL %q", g.URL)
	}

	mem := o.Memory
	if mem == 0 {
		mem = 512
	}
	g.cmd = exec.Command("qemu-system-x86_64",
		"-machine", "q35,accel=tcg", "-cpu", "max", "-smp", "1", "-m", strconv.Itoa(mem),
		"-kernel", k.Image, "-initrd", initrd,
		"-append", "console=ttyS0,115200 quiet loglevel=1 panic=-1 rdinit=/init",
		"-display", "none", "-monitor", "none", "-no-reboot",
		"-chardev", "stdio,id=con,signal=off", "-serial", "chardev:con",
		"-netdev", "user,id=n0", "-device", "virtio-net-pci,netdev=n0",
	)
	g.stdin, err = g.cmd.StdinPipe()
	if err != nil {
		return g, err
	}
	out, err := g.cmd.StdoutPipe()
	if err != nil {
		return g, err
	}
	g.cmd.Stderr = logw
	if err := g.cmd.Start(); err != nil {
		return g, fmt.Errorf("start qemu: %w", err)
	}
	go g.read(out)
	go func() { _ = g.cmd.Wait(); close(g.exited) }()

	start = time.Now()
	bctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()
	if _, err := g.until(bctx, func(l string) bool { return l == "JSN-GUEST-READY" }); err != nil {
		return g, fmt.Errorf("boot: %w", err)
	}
	fmt.Fprintf(logw, "kerneltest: guest %s up (%s)\n", k.Release, time.Since(start).Round(time.Millisecond))
	return g, nil
}

func (g *Guest) read(r io.Reader) {
	defer close(g.lines)
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		l := strings.TrimRight(sc.Text(), "\r")
		g.tmu.Lock()
		g.tail = append(g.tail, l)
		if len(g.tail) > 60 {
			g.tail = g.tail[len(g.tail)-60:]
		}
		g.tmu.Unlock()
		g.lines <- l
	}
}

// GuestURL is the host bus as the guest reaches it (nats://10.0.2.2:PORT).
func (g *Guest) GuestURL() string { return fmt.Sprintf("nats://10.0.2.2:%d", g.port) }

// Tail returns the last lines of the guest's console.
func (g *Guest) Tail() string {
	g.tmu.Lock()
	defer g.tmu.Unlock()
	return strings.Join(g.tail, "\n")
}

// until reads console lines until stop(line) is true, returning the lines before it.
func (g *Guest) until(ctx context.Context, stop func(string) bool) ([]string, error) {
	var got []string
	for {
		select {
		case <-ctx.Done():
			return got, fmt.Errorf("%w; console:\n%s", ctx.Err(), g.Tail())
		case l, ok := <-g.lines:
			if !ok {
				return got, fmt.Errorf("the guest stopped; console:\n%s", g.Tail())
			}
			fmt.Fprintln(g.log, "guest:", l)
			if stop(l) {
				return got, nil
			}
			got = append(got, l)
		}
	}
}

// Run runs a shell command line in the guest (busybox sh, as root) and returns its output
// (stdout and stderr) and exit status. Commands run one at a time; background a long one
// with `cmd >/tmp/log 2>&1 &`.
func (g *Guest) Run(ctx context.Context, command string) (string, int, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.nextID++
	marker := fmt.Sprintf("@@JSN-DONE-%d ", g.nextID)
	// The command travels base64-encoded on one line, so no quoting or line length of the
	// console's line discipline gets in the way.
	enc := base64.StdEncoding.EncodeToString([]byte(command))
	if len(enc) > 3000 {
		return "", -1, fmt.Errorf("kerneltest: command too long (%d bytes): use WriteFile for data", len(command))
	}
	if _, err := fmt.Fprintf(g.stdin, "%d %s\n", g.nextID, enc); err != nil {
		return "", -1, err
	}
	var code int
	lines, err := g.until(ctx, func(l string) bool {
		if rest, ok := strings.CutPrefix(l, marker); ok {
			code, _ = strconv.Atoi(strings.TrimSuffix(rest, "@@"))
			return true
		}
		return false
	})
	out := strings.Join(lines, "\n")
	if len(lines) > 0 {
		out += "\n"
	}
	return out, code, err
}

// MustRun is Run that fails when the command exits non-zero.
func (g *Guest) MustRun(ctx context.Context, command string) (string, error) {
	out, code, err := g.Run(ctx, command)
	if err != nil {
		return out, err
	}
	if code != 0 {
		return out, fmt.Errorf("guest: %q: exit %d: %s", command, code, out)
	}
	return out, nil
}

// WriteFile writes data to path in the guest.
func (g *Guest) WriteFile(ctx context.Context, path string, data []byte) error {
	if _, err := g.MustRun(ctx, "rm -f "+shellQuote(path)+".b64"); err != nil {
		return err
	}
	enc := base64.StdEncoding.EncodeToString(data)
	for len(enc) > 0 {
		n := min(len(enc), 1500)
		if _, err := g.MustRun(ctx, "printf %s "+enc[:n]+" >> "+shellQuote(path)+".b64"); err != nil {
			return err
		}
		enc = enc[n:]
	}
	_, err := g.MustRun(ctx, "base64 -d "+shellQuote(path)+".b64 > "+shellQuote(path)+" && rm "+shellQuote(path)+".b64")
	return err
}

func shellQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

// Exporter is an exporter served in the guest.
type Exporter struct {
	*client.Exporter
	Name, Lease string
	Env         map[string]string // JSN_HOST, JSN_EXPORTER and JSN_LEASE for jsn commands on the host
	Client      *client.Client
	g           *Guest
	pidfile     string
}

// Export serves config (a whole ExporterConfig) in the guest with jsnguest under a fresh lease
// and returns a client of it, once it answers describe. Stop it with Exporter.Stop (Close
// stops it too).
func (g *Guest) Export(ctx context.Context, name, config string) (*Exporter, error) {
	g.mu.Lock()
	g.nextID++
	id := g.nextID
	g.mu.Unlock()
	file := fmt.Sprintf("/tmp/exporter-%d.yaml", id)
	if err := g.WriteFile(ctx, file, []byte(config)); err != nil {
		return nil, err
	}
	lease := fmt.Sprintf("guest-lease-%d", id)
	e := &Exporter{Name: name, Lease: lease, g: g, pidfile: fmt.Sprintf("/tmp/exporter-%d.pid", id)}
	logf := fmt.Sprintf("/tmp/exporter-%d.log", id)
	cmd := fmt.Sprintf("jsnguest -c %s -url nats://10.0.2.2:%d -lease %s >%s 2>&1 & echo $! > %s",
		file, g.port, lease, logf, e.pidfile)
	if _, err := g.MustRun(ctx, cmd); err != nil {
		return nil, err
	}
	c, err := client.Connect(ctx, g.URL, "kerneltest")
	if err != nil {
		return nil, err
	}
	e.Client = c
	e.Exporter = c.Exporter(name, lease)
	e.Env = map[string]string{client.EnvHost: g.URL, client.EnvExporter: name, client.EnvLease: lease}
	deadline := time.Now().Add(60 * time.Second)
	for {
		dctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		_, err := e.Describe(dctx)
		cancel()
		if err == nil {
			return e, nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			log, _, _ := g.Run(context.Background(), "cat "+logf)
			c.Close()
			return nil, fmt.Errorf("the guest's exporter does not answer: %v\nits log:\n%s", err, log)
		}
		select {
		case <-ctx.Done():
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// Stop stops the exporter (SIGTERM) and waits for it to end; it returns its log.
func (e *Exporter) Stop(ctx context.Context) (string, error) {
	e.Client.Close()
	logf := strings.TrimSuffix(e.pidfile, ".pid") + ".log"
	cmd := fmt.Sprintf("p=$(cat %s); kill $p; i=0; while kill -0 $p 2>/dev/null && [ $i -lt 100 ]; do sleep 0.1; i=$((i+1)); done; cat %s", e.pidfile, logf)
	return e.g.MustRun(ctx, cmd)
}

// SimPull pulls line n of the simulated GPIO chip up or down, as a device driving it would:
// an input line of it changes and reports the edge.
func (g *Guest) SimPull(ctx context.Context, n int, up bool) error {
	v := "pull-down"
	if up {
		v = "pull-up"
	}
	_, err := g.MustRun(ctx, fmt.Sprintf("echo %s > $(simdir)/sim_gpio%d/pull", v, n))
	return err
}

// SimValue reads the level of line n of the simulated chip as the outside world sees it (what
// an output drives: physical, active-low not applied).
func (g *Guest) SimValue(ctx context.Context, n int) (int, error) {
	out, err := g.MustRun(ctx, fmt.Sprintf("cat $(simdir)/sim_gpio%d/value", n))
	if err != nil {
		return 0, err
	}
	return strconv.Atoi(strings.TrimSpace(out))
}

// Close stops the guest and the bus and removes the build directory.
func (g *Guest) Close() error {
	if g == nil {
		return nil
	}
	if g.cmd != nil && g.cmd.Process != nil {
		_ = g.cmd.Process.Kill()
		<-g.exited
	}
	if g.srv != nil {
		g.srv.Shutdown()
	}
	return os.RemoveAll(g.dir)
}
