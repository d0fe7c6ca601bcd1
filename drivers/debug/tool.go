package debug

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"jsn.dev/jsn/bus/wire"
)

// A tool is a probe program the exporter runs (probe-rs, openocd): name for messages, the
// configured path (relative paths with a slash are relative to the config's directory).
type tool struct {
	name, path, dir string
	timeout         time.Duration
}

// bin is the program to run.
func (t tool) bin() string {
	if strings.ContainsRune(t.path, '/') && !filepath.IsAbs(t.path) {
		return filepath.Join(t.dir, t.path)
	}
	return t.path
}

// run runs the tool with argv in its own process group (killed whole on timeout or cancel) and
// returns its output (the last 64 KiB); a failure is UNAVAILABLE with that output, a timeout
// DEADLINE_EXCEEDED. what names the operation in messages.
func (t tool) run(ctx context.Context, what string, argv []string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, t.timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, t.bin(), argv...)
	cmd.Dir = t.dir
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = time.Second
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	text := out.String()
	if len(text) > 64<<10 {
		text = text[len(text)-64<<10:]
	}
	switch {
	case err == nil:
		return text, nil
	case ctx.Err() == context.DeadlineExceeded:
		return text, wire.Errorf(wire.DeadlineExceeded, "%s %s: no result within %s", t.name, what, t.timeout)
	case errors.Is(err, exec.ErrNotFound):
		return "", wire.Errorf(wire.Unavailable, "%s %s: %s not found", t.name, what, t.path)
	}
	return text, wire.Errorf(wire.Unavailable, "%s %s: %v: %s", t.name, what, err, strings.TrimSpace(text))
}

// receiveFirmware stores the firmware sent on r (at most MaxFirmware bytes, not empty) in a
// private file named name in a new temporary directory; remove deletes both.
func receiveFirmware(r io.Reader, name string) (file string, remove func(), err error) {
	dir, err := os.MkdirTemp("", "jsn-probe-")
	if err != nil {
		return "", nil, wire.Errorf(wire.Internal, "download: %v", err)
	}
	remove = func() { _ = os.RemoveAll(dir) }
	file = filepath.Join(dir, name)
	f, err := os.OpenFile(file, os.O_CREATE|os.O_WRONLY|os.O_EXCL, 0o600)
	if err != nil {
		remove()
		return "", nil, wire.Errorf(wire.Internal, "download: %v", err)
	}
	n, err := io.Copy(f, io.LimitReader(r, MaxFirmware+1))
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	switch {
	case err != nil:
		err = wire.Errorf(wire.Unavailable, "download: upload: %v", err)
	case n > MaxFirmware:
		err = wire.Errorf(wire.InvalidArgument, "download: firmware larger than %d bytes", MaxFirmware)
	case n == 0:
		err = wire.Errorf(wire.InvalidArgument, "download: no firmware sent")
	}
	if err != nil {
		remove()
		return "", nil, err
	}
	return file, remove, nil
}
