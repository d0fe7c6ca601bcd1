package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"

	"github.com/nats-io/nats.go"

	"jsn.dev/jsn/drivers/driver"
	"jsn.dev/jsn/drivers/process"
	"jsn.dev/jsn/exporter"
)

// The process benchmark's `jsn shell` stand-in: this binary re-run as a helper process holding
// the session's embedded server and exporter (as `jsn shell` does), while the benchmark's client
// calls it from its own process (as `jsn call` under `jsn shell` does).

// shellInfo is what the shell helper prints once it serves.
type shellInfo struct {
	URL      string `json:"url"`
	Exporter string `json:"exporter"`
	Lease    string `json:"lease"`
}

// runShellHelper serves the exporter config at file in a local session until stdin closes.
func runShellHelper(file string) error {
	ctx := context.Background()
	data, err := os.ReadFile(file)
	if err != nil {
		return err
	}
	cfg, err := exporter.ParseConfig(file, data)
	if err != nil {
		return err
	}
	l, err := exporter.StartLocal(ctx, cfg, exporter.LocalOptions{})
	if err != nil {
		return err
	}
	defer l.Close()
	// The raw NATS baseline's responder lives where the exporter does: in process.
	srv, err := nats.Connect("", nats.InProcessServer(l))
	if err != nil {
		return err
	}
	defer srv.Close()
	if _, err := srv.Subscribe("bench.echo", func(m *nats.Msg) { _ = m.Respond(m.Data) }); err != nil {
		return err
	}
	if err := srv.Flush(); err != nil {
		return err
	}
	if err := json.NewEncoder(os.Stdout).Encode(shellInfo{URL: l.URL, Exporter: l.Exporter, Lease: l.Lease}); err != nil {
		return err
	}
	_, _ = io.Copy(io.Discard, os.Stdin)
	return nil
}

// shellProcess is a running shell helper.
type shellProcess struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	info  shellInfo
}

// startShellProcess runs this binary as a shell helper serving the config at file.
func startShellProcess(ctx context.Context, file string) (*shellProcess, error) {
	cmd := exec.CommandContext(ctx, os.Args[0])
	cmd.Env = append(os.Environ(), envHelper+"=process-shell:"+file)
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("shell helper: %w", err)
	}
	p := &shellProcess{cmd: cmd, stdin: stdin}
	line, err := bufio.NewReader(out).ReadString('\n')
	if err == nil {
		err = json.Unmarshal([]byte(strings.TrimSpace(line)), &p.info)
	}
	if err != nil {
		p.close()
		return nil, fmt.Errorf("shell helper: %v (%q)", err, line)
	}
	return p, nil
}

func (p *shellProcess) close() {
	_ = p.stdin.Close()
	_ = p.cmd.Wait()
}

// pythonEcho is a bare frame echo over fd 3: no SDK, no msgpack; the floor of a Go↔Python round
// trip on this machine.
const pythonEcho = `import socket, struct
s = socket.socket(fileno=3)
rf = s.makefile("rb", buffering=1 << 16)
unpack = struct.Struct(">IBI").unpack
while True:
    hdr = rf.read(9)
    if len(hdr) < 9:
        break
    n = unpack(hdr)[0]
    s.sendall(hdr + rf.read(n - 5))
`

// measureSplit times, in interleaved rounds, the parts of a call to a Python driver: a bare
// socket round trip to a Python process (no SDK), and the call through drivers/process alone (no
// bus).
func measureSplit(ctx context.Context, script string, n int) (echo, alone []time.Duration, err error) {
	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, nil, err
	}
	theirs := os.NewFile(uintptr(fds[1]), "echo-peer")
	cmd := exec.CommandContext(ctx, python, "-c", pythonEcho)
	cmd.ExtraFiles = []*os.File{theirs}
	if err := cmd.Start(); err != nil {
		theirs.Close()
		return nil, nil, err
	}
	theirs.Close()
	f := os.NewFile(uintptr(fds[0]), "echo")
	conn, err := net.FileConn(f)
	f.Close()
	if err != nil {
		return nil, nil, err
	}
	defer func() { conn.Close(); _ = cmd.Wait() }()
	msg := []byte{0, 0, 0, 10, 6, 0, 0, 0, 1, 0x92, 0xa2, 'o', 'n', 0x90}
	buf := make([]byte, len(msg))
	echoOnce := func() error {
		if _, err := conn.Write(msg); err != nil {
			return err
		}
		_, err := io.ReadFull(conn, buf)
		return err
	}

	p := process.New(driver.Env{Path: "py", Log: slog.New(slog.DiscardHandler), Tap: func([]byte) {},
		Child: func(string) driver.Env { return driver.Env{} }})
	p.Command = []string{python, "-m", "jsn_driver", script}
	if err := p.Open(ctx); err != nil {
		return nil, nil, err
	}
	defer p.Close()
	_, ms := p.Declared()
	var on func(context.Context, []byte) ([]byte, error)
	for _, m := range ms {
		if m.Name == "on" {
			on = m.Raw
		}
	}
	if on == nil {
		return nil, nil, fmt.Errorf("driver alone: no raw method on")
	}
	fns := []func() error{echoOnce, func() error { _, err := on(ctx, nil); return err }}
	ds := make([][]time.Duration, 2)
	for range 10 {
		for i, fn := range fns {
			for range 50 {
				if err := fn(); err != nil {
					return nil, nil, err
				}
			}
			for range n / 10 {
				t0 := time.Now()
				if err := fn(); err != nil {
					return nil, nil, err
				}
				ds[i] = append(ds[i], time.Since(t0))
			}
		}
	}
	return ds[0], ds[1], nil
}
