package video

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"jsn.dev/jsn/drivers/driver"
)

func init() {
	driver.MustRegister(driver.Info{
		Type:      "video.UStreamer",
		Interface: Interface,
		Doc:       "a capture device streamed by ustreamer, run by the exporter",
		New:       NewUStreamer,
		Aliases:   []string{"jumpstarter_driver_ustreamer.driver.UStreamer"},
	})
}

// UStreamer is the video.UStreamer driver: the exporter runs ustreamer (PiKVM's MJPEG server for
// V4L2 capture devices) listening on a private Unix socket, and serves its /stream and
// /snapshot.
//
// Config (Jumpstarter's UStreamer keys):
//
//	executable: ustreamer            # name on PATH or path
//	args: {device: /dev/video0, resolution: 1920x1080}   # each becomes --KEY VALUE
//
// The process starts at Open; while it is not serving (not started yet, or exited) the driver
// is unavailable, and it is restarted at the next Reset.
type UStreamer struct {
	Executable string            `yaml:"executable"`
	Args       map[string]string `yaml:"args"`

	log *slog.Logger
	dir string // config file's directory

	mu      sync.Mutex
	tmp     string    // private directory holding the socket
	cmd     *exec.Cmd // the running ustreamer, nil when stopped
	exited  chan struct{}
	lastErr string // why ustreamer is not running
	src     *source
}

// NewUStreamer is the video.UStreamer constructor: defaults only, no side effects.
func NewUStreamer(env driver.Env) driver.Driver {
	return &UStreamer{Executable: "ustreamer", log: env.Log, dir: env.Dir, lastErr: "not open"}
}

// Validate checks the keys of args.
func (u *UStreamer) Validate() error {
	var errs []error
	if u.Executable == "" {
		errs = append(errs, driver.FieldErrorf("executable", "must not be empty"))
	}
	for k, v := range u.Args {
		switch {
		case k == "" || strings.HasPrefix(k, "-") || strings.ContainsAny(k, " =\x00"):
			errs = append(errs, driver.FieldErrorf("args", "invalid option name %q (write it without the leading --)", k))
		case k == "unix" || k == "host" || k == "port":
			errs = append(errs, driver.FieldErrorf("args."+k, "jsn sets --unix itself; ustreamer listens on a private socket"))
		case strings.ContainsRune(v, 0):
			errs = append(errs, driver.FieldErrorf("args."+k, "must not contain NUL bytes"))
		}
	}
	return errors.Join(errs...)
}

// Open starts ustreamer; a missing executable or a device that fails makes the driver
// unavailable, not the exporter fail.
func (u *UStreamer) Open(ctx context.Context) error {
	tmp, err := os.MkdirTemp("", "jsn-ustreamer-")
	if err != nil {
		return fmt.Errorf("open: %w", err)
	}
	sock := filepath.Join(tmp, "socket")
	tr := &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", sock)
	}, ResponseHeaderTimeout: 10 * time.Second}
	u.mu.Lock()
	u.tmp = tmp
	u.src = &source{client: &http.Client{Transport: tr}, streamURL: "http://ustreamer/stream",
		snapshotURL: "http://ustreamer/snapshot", name: "ustreamer"}
	u.mu.Unlock()
	u.start()
	// Give it a moment to listen, so the first call does not race its start-up.
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		u.mu.Lock()
		running := u.cmd != nil
		u.mu.Unlock()
		if _, err := os.Stat(sock); err == nil || !running {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	return nil
}

func (u *UStreamer) socket() string { return filepath.Join(u.tmp, "socket") }

// start runs ustreamer unless it runs already.
func (u *UStreamer) start() {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.cmd != nil || u.tmp == "" {
		return
	}
	exe := u.Executable
	if strings.ContainsRune(exe, '/') && !filepath.IsAbs(exe) {
		exe = filepath.Join(u.dir, exe)
	}
	path, err := exec.LookPath(exe)
	if err != nil {
		u.lastErr = fmt.Sprintf("%s not found: install ustreamer or set executable:", u.Executable)
		return
	}
	keys := make([]string, 0, len(u.Args))
	for k := range u.Args {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var argv []string
	for _, k := range keys {
		argv = append(argv, "--"+k, u.Args[k])
	}
	_ = os.Remove(u.socket())
	argv = append(argv, "--unix", u.socket())
	cmd := exec.Command(path, argv...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		u.lastErr = fmt.Sprintf("start %s: %v", u.Executable, err)
		return
	}
	u.log.Info("ustreamer started", "pid", cmd.Process.Pid, "argv", argv)
	u.cmd, u.exited, u.lastErr = cmd, make(chan struct{}), ""
	go func(cmd *exec.Cmd, exited chan struct{}) {
		err := cmd.Wait()
		u.mu.Lock()
		if u.cmd == cmd {
			u.cmd = nil
			u.lastErr = fmt.Sprintf("ustreamer exited: %v", err)
			u.log.Warn("ustreamer exited", "err", err)
		}
		u.mu.Unlock()
		close(exited)
	}(cmd, u.exited)
}

// stop ends ustreamer (SIGTERM, then SIGKILL after 5s) and waits for it.
func (u *UStreamer) stop() {
	u.mu.Lock()
	cmd, exited := u.cmd, u.exited
	u.cmd = nil
	u.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
	select {
	case <-exited:
	case <-time.After(5 * time.Second):
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-exited
	}
}

// Unavailable says why ustreamer is not serving, or "".
func (u *UStreamer) Unavailable() string {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.cmd == nil {
		return u.lastErr
	}
	return ""
}

// Reset restarts ustreamer if it exited.
func (u *UStreamer) Reset(ctx context.Context) error {
	u.start()
	return nil
}

// Close stops ustreamer and removes its socket.
func (u *UStreamer) Close() error {
	u.stop()
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.tmp != "" {
		os.RemoveAll(u.tmp)
		u.tmp = ""
	}
	return nil
}

// Snapshot returns ustreamer's /snapshot as a PNG.
func (u *UStreamer) Snapshot(ctx context.Context) ([]byte, error) { return u.src.Snapshot(ctx) }

// Frames relays ustreamer's /stream.
func (u *UStreamer) Frames(ctx context.Context, send func([]byte) error) error {
	return u.src.Frames(ctx, send)
}

// Methods returns the jsn.video.v1 method table.
func (u *UStreamer) Methods() []driver.Method { return Methods(u, Options{}) }

var (
	_ Device              = (*UStreamer)(nil)
	_ Streamer            = (*UStreamer)(nil)
	_ driver.Availability = (*UStreamer)(nil)
	_ driver.Validator    = (*UStreamer)(nil)
)
