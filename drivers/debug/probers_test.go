package debug

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"jsn.dev/jsn/cmd/jsn/cli/clitest"
	"jsn.dev/jsn/drivers/drivertest"
)

// fakeProbeRS writes a stand-in for probe-rs: it records its argv, keeps a copy of the firmware
// it is given to download, answers read with words and fails erase as a probe that lost the
// target does.
func fakeProbeRS(t *testing.T) (tool, log, flashed string) {
	dir := t.TempDir()
	tool, log, flashed = filepath.Join(dir, "probe-rs"), filepath.Join(dir, "argv"), filepath.Join(dir, "flashed")
	script := fmt.Sprintf(`#!/bin/sh
echo "$*" >> %[1]s
case "$1" in
info) echo "ARM Chip with debug port Default: RP2350";;
reset) ;;
read) echo "20000000: deadbeef 00000001";;
erase) echo "Error: no probe was found" >&2; exit 1;;
download) for last; do :; done; cp "$last" %[2]s; echo "      Finished in 0.42s";;
esac
`, log, flashed)
	if err := os.WriteFile(tool, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return tool, log, flashed
}

// TestProbeRSThroughJSN: firmware uploaded with jsn probe download reaches probe-rs on the
// exporter, with the config's probe, chip, protocol and speed; output and failures come back.
func TestProbeRSThroughJSN(t *testing.T) {
	tool, log, flashed := fakeProbeRS(t)
	s := clitest.Start(t, fmt.Sprintf(`apiVersion: jumpstarter.dev/v1alpha1
kind: ExporterConfig
metadata: {name: mcu}
export:
  probe:
    type: jumpstarter_driver_probe_rs.driver.ProbeRs
    config:
      probe: "2e8a:000c:5798DE5E500ACB60"
      probe_rs_path: %s
      chip: RP2350
      protocol: swd
      connect_under_reset: true
      speed: 4000
`, tool))
	fw := bytes.Repeat([]byte("\x7fELF-firmware-"), 100000) // 1.4 MB: more than one message
	fwFile := filepath.Join(t.TempDir(), "fw.elf")
	os.WriteFile(fwFile, fw, 0o644)
	r := s.Run("probe", "download", fwFile)
	r.Want(t, 0)
	if !strings.Contains(r.Stdout, "Finished in 0.42s") {
		t.Errorf("download output %q", r.Stdout)
	}
	if got, _ := os.ReadFile(flashed); !bytes.Equal(got, fw) {
		t.Errorf("probe-rs got %d bytes of firmware, want the %d sent", len(got), len(fw))
	}
	if r := s.Run("probe", "read", "0x20000000", "2"); !strings.Contains(r.Stdout, "deadbeef") {
		t.Errorf("read: %q %q", r.Stdout, r.Stderr)
	}
	if r := s.Run("probe", "info"); !strings.Contains(r.Stdout, "RP2350") {
		t.Errorf("info: %q", r.Stdout)
	}
	r = s.Run("probe", "erase")
	if r.Code == 0 || !strings.Contains(r.Stderr, "no probe was found") {
		t.Errorf("erase: exit %d, %q", r.Code, r.Stderr)
	}
	argv, _ := os.ReadFile(log)
	lines := strings.Split(strings.TrimSpace(string(argv)), "\n")
	want := "download --probe 2e8a:000c:5798DE5E500ACB60 --chip RP2350 --protocol swd --speed 4000 --connect-under-reset "
	if len(lines) < 4 || !strings.HasPrefix(lines[0], want) ||
		lines[1] != "read --probe 2e8a:000c:5798DE5E500ACB60 --chip RP2350 --protocol swd --speed 4000 --connect-under-reset b32 0x20000000 2" ||
		lines[2] != "info --probe 2e8a:000c:5798DE5E500ACB60 --protocol swd --speed 4000 --connect-under-reset" {
		t.Errorf("probe-rs command lines:\n%s", argv)
	}
}

func TestProbeRSMissingTool(t *testing.T) {
	p := NewProbeRS(drivertest.Env("probe")).(*ProbeRS)
	p.ProbeRSPath = "/nonexistent/probe-rs"
	if why := p.Unavailable(); !strings.Contains(why, "not found") {
		t.Errorf("unavailable: %q", why)
	}
	p.Probe, p.Protocol = "nope", "i2c"
	if err := p.Validate(); err == nil || !strings.Contains(err.Error(), "VID:PID") || !strings.Contains(err.Error(), `"swd" or "jtag"`) {
		t.Errorf("validate: %v", err)
	}
}

// TestProbeRSHardware talks to a real probe: JSN_PROBE_RS_CHIP names the target chip (and
// JSN_PROBE_RS_PROBE the probe when several are attached).
func TestProbeRSHardware(t *testing.T) {
	chip := os.Getenv("JSN_PROBE_RS_CHIP")
	if chip == "" {
		t.Skip("set JSN_PROBE_RS_CHIP (and JSN_PROBE_RS_PROBE) to talk to a real probe with probe-rs")
	}
	p := NewProbeRS(drivertest.Env("probe")).(*ProbeRS)
	p.Chip, p.Probe = chip, os.Getenv("JSN_PROBE_RS_PROBE")
	if err := p.Validate(); err != nil {
		t.Fatal(err)
	}
	out, err := drivertest.CallMethod(context.Background(), p, "info")
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("probe-rs info:\n%s", out)
}
