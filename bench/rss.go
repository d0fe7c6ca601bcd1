package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// buildJSN builds the jsn binary into dir.
func buildJSN(dir string) (string, error) {
	jsn := filepath.Join(dir, "jsn")
	// Built as shipped (deploy/container): static, without cgo. With cgo the dynamic loader and
	// libc's start add about a quarter to the whole-process start of every command.
	cmd := exec.Command("go", "build", "-o", jsn, "./cmd/jsn")
	cmd.Dir = ".." // the main module, with its own go.sum: the bench module does not import the CLI
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("build jsn: %v\n%s", err, out)
	}
	return jsn, nil
}

// rssTree is an exporter config with 20 drivers: a composite board of five, eight more power
// switches, three TCP ports, a second disk, a second shell and a second console.
func rssTree(dir, tty1, tty2 string) string {
	var b strings.Builder
	fmt.Fprintf(&b, `apiVersion: jsn.dev/v1alpha1
kind: ExporterConfig
metadata: {name: bench-rss}
export:
  board:
    type: composite
    children:
      power: {type: power.Mock}
      console: {type: serial.Port, config: {url: %q}}
      disk: {type: storage.File, config: {path: %q, cache_dir: %q}}
      ssh: {type: network.TCP, config: {host: 127.0.0.1, port: 22}}
      shell: {type: shell, config: {methods: {uname: "uname -a"}}}
`, tty1, filepath.Join(dir, "disk1.img"), filepath.Join(dir, "cache"))
	for i := range 8 {
		fmt.Fprintf(&b, "  power%d: {type: power.Mock}\n", i+1)
	}
	for i := range 3 {
		fmt.Fprintf(&b, "  net%d: {type: network.TCP, config: {host: 127.0.0.1, port: %d}}\n", i+1, 8000+i)
	}
	fmt.Fprintf(&b, "  disk2: {type: storage.File, config: {path: %q, cache_dir: %q}}\n", filepath.Join(dir, "disk2.img"), filepath.Join(dir, "cache"))
	fmt.Fprintf(&b, "  shell2: {type: shell, config: {methods: {date: date}}}\n")
	fmt.Fprintf(&b, "  console2: {type: serial.Port, config: {url: %q}}\n", tty2)
	return b.String()
}

// benchRSS measures the resident memory of a real `jsn shell` process (embedded server + exporter
// with a 20-driver tree) while idle, next to the same for an exporter with a single driver.
func benchRSS(ctx context.Context, s *suite) error {
	dir, err := os.MkdirTemp("", "jsn-bench-rss-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	jsn, err := buildJSN(dir)
	if err != nil {
		return err
	}
	tty1, err := startEchoPty()
	if err != nil {
		return err
	}
	defer tty1.close()
	tty2, err := startEchoPty()
	if err != nil {
		return err
	}
	defer tty2.close()
	for _, name := range []string{"disk1.img", "disk2.img"} {
		if err := os.WriteFile(filepath.Join(dir, name), nil, 0o644); err != nil {
			return err
		}
	}
	big := filepath.Join(dir, "tree20.yaml")
	if err := os.WriteFile(big, []byte(rssTree(dir, tty1.Path, tty2.Path)), 0o644); err != nil {
		return err
	}
	small := filepath.Join(dir, "tree1.yaml")
	if err := os.WriteFile(small, []byte("apiVersion: jsn.dev/v1alpha1\nkind: ExporterConfig\nmetadata: {name: bench-one}\nexport:\n  power: {type: power.Mock}\n"), 0o644); err != nil {
		return err
	}
	rss20, err := shellRSS(ctx, jsn, big)
	if err != nil {
		return fmt.Errorf("20 drivers: %w", err)
	}
	rss1, err := shellRSS(ctx, jsn, small)
	if err != nil {
		return fmt.Errorf("1 driver: %w", err)
	}
	s.add(Result{Name: "exporter idle RSS, 20-driver tree (jsn shell process)", Unit: "MB", Value: rss20,
		Baseline: map[string]float64{"1-driver-tree": rss1}, RatioTo: "1-driver-tree", Target: "< 40 MB"})
	return nil
}

// shellRSS runs `jsn shell -c cfg -- CMD`, waits until CMD runs (the exporter is up), lets the
// process idle, and returns its VmRSS in MB.
func shellRSS(ctx context.Context, jsn, cfg string) (float64, error) {
	cmd := exec.CommandContext(ctx, jsn, "shell", "-c", cfg, "--", "sh", "-c", "echo ready; exec sleep 60")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return 0, err
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		return 0, err
	}
	defer func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		_ = cmd.Wait()
	}()
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil || strings.TrimSpace(line) != "ready" {
		return 0, fmt.Errorf("jsn shell did not start: %q %v: %s", line, err, stderr.String())
	}
	time.Sleep(2 * time.Second) // idle: the measurement is of a settled process, not a timing
	return vmRSS(cmd.Process.Pid)
}

// vmRSS returns the VmRSS of process pid in MB (1e6 bytes).
func vmRSS(pid int) (float64, error) {
	if runtime.GOOS != "linux" {
		return 0, errors.New("rss: needs /proc (linux)")
	}
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, l := range strings.Split(string(data), "\n") {
		if f := strings.Fields(l); len(f) == 3 && f[0] == "VmRSS:" {
			kb, err := strconv.Atoi(f[1])
			if err != nil {
				return 0, err
			}
			return float64(kb) * 1024 / 1e6, nil
		}
	}
	return 0, errors.New("rss: no VmRSS in /proc status")
}
