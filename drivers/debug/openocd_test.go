package debug

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"jsn.dev/jsn/cmd/jsn/cli/clitest"
	"jsn.dev/jsn/drivers/drivertest"
)

// fakeOpenOCD writes a stand-in for openocd: it records each run's arguments (one a line, runs
// separated by "--"), copies the file it is asked to program, answers mdw and targets, and
// fails a flash erase as a probe without a target does.
func fakeOpenOCD(t *testing.T) (tool, log, flashed string) {
	dir := t.TempDir()
	tool, log, flashed = filepath.Join(dir, "openocd"), filepath.Join(dir, "argv"), filepath.Join(dir, "flashed")
	script := fmt.Sprintf(`#!/bin/sh
for a; do printf '%%s\n' "$a"; done >> %[1]s
echo -- >> %[1]s
for a; do
  case "$a" in
  "program {"*) f=${a#program \{}; f=${f%%%%\}*}; cp "$f" %[2]s; echo "** Programming Finished **"; echo "** Verified OK **";;
  "mdw "*) echo "0x20000000: deadbeef 00000001";;
  targets) echo " 0* rp2040.core0  cortex_m  little rp2040.core0  halted";;
  "flash erase_sector"*) echo "Error: no device found" >&2; exit 1;;
  esac
done
`, log, flashed)
	if err := os.WriteFile(tool, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return tool, log, flashed
}

// TestOpenOCDThroughJSN: `jsn probe` drives a debug.OpenOCD node: firmware uploaded through jsn
// reaches openocd's program command with the config's scripts, speed and args; output and
// failures come back.
func TestOpenOCDThroughJSN(t *testing.T) {
	tool, log, flashed := fakeOpenOCD(t)
	s := clitest.Start(t, fmt.Sprintf(`apiVersion: jumpstarter.dev/v1alpha1
kind: ExporterConfig
metadata: {name: mcu}
export:
  probe:
    type: debug.OpenOCD
    config:
      openocd: %s
      interface: interface/cmsis-dap.cfg
      target: target/rp2040.cfg
      config: [board/extra.cfg]
      adapter_speed: 4000
      args: [-s, /opt/scripts]
      flash_address: "0x10000000"
`, tool))
	fw := bytes.Repeat([]byte("\x7fELF-firmware-"), 100000) // 1.4 MB: more than one message
	fwFile := filepath.Join(t.TempDir(), "fw.elf")
	os.WriteFile(fwFile, fw, 0o644)
	r := s.Run("probe", "download", fwFile)
	r.Want(t, 0)
	if !strings.Contains(r.Stdout, "Verified OK") {
		t.Errorf("download output %q", r.Stdout)
	}
	if got, _ := os.ReadFile(flashed); !bytes.Equal(got, fw) {
		t.Errorf("openocd got %d bytes of firmware, want the %d sent", len(got), len(fw))
	}
	r = s.Run("probe", "download", fwFile, "--format", "bin")
	r.Want(t, 0)
	if r := s.Run("probe", "read", "0x20000000", "2"); !strings.Contains(r.Stdout, "deadbeef") {
		t.Errorf("read: %q %q", r.Stdout, r.Stderr)
	}
	if r := s.Run("probe", "info"); !strings.Contains(r.Stdout, "rp2040.core0") {
		t.Errorf("info: %q", r.Stdout)
	}
	s.Run("probe", "reset").Want(t, 0)
	r = s.Run("probe", "erase")
	if r.Code == 0 || !strings.Contains(r.Stderr, "no device found") {
		t.Errorf("erase: exit %d, %q", r.Code, r.Stderr)
	}
	if r := s.Run("probe", "download", fwFile, "--format", "uf2"); r.Code == 0 || !strings.Contains(r.Stderr, "elf, hex or bin") {
		t.Errorf("uf2: exit %d, %q", r.Code, r.Stderr)
	}

	b, _ := os.ReadFile(log)
	runs := strings.Split(strings.TrimSuffix(string(b), "--\n"), "--\n")
	common := "-f\ninterface/cmsis-dap.cfg\n-f\ntarget/rp2040.cfg\n-f\nboard/extra.cfg\n-c\nadapter speed 4000\n-s\n/opt/scripts\n"
	want := []string{
		"-c\nprogram {*/firmware.elf} verify reset exit\n",
		"-c\nprogram {*/firmware.bin} verify reset exit 0x10000000\n",
		"-c\ninit\n-c\nhalt\n-c\nmdw 0x20000000 2\n-c\nresume\n-c\nshutdown\n",
		"-c\ninit\n-c\ntargets\n-c\nflash banks\n-c\nshutdown\n",
		"-c\ninit\n-c\nreset run\n-c\nshutdown\n",
		"-c\ninit\n-c\nreset halt\n-c\nflash erase_sector 0 0 last\n-c\nshutdown\n",
	}
	if len(runs) != len(want) {
		t.Fatalf("%d openocd runs, want %d:\n%s", len(runs), len(want), b)
	}
	for i, w := range want {
		got := runs[i]
		if !strings.HasPrefix(got, common) {
			t.Errorf("run %d does not start with the scripts, speed and args:\n%s", i, got)
			continue
		}
		re := regexp.MustCompile("^" + strings.ReplaceAll(regexp.QuoteMeta(w), `\*`, ".+") + "$")
		if !re.MatchString(strings.TrimPrefix(got, common)) {
			t.Errorf("run %d commands:\n%s\nwant:\n%s", i, strings.TrimPrefix(got, common), w)
		}
	}
}

func TestOpenOCDConfig(t *testing.T) {
	o := NewOpenOCD(drivertest.Env("probe")).(*OpenOCD)
	o.OpenOCDPath = "/nonexistent/openocd"
	if why := o.Unavailable(); !strings.Contains(why, "/nonexistent/openocd not found") {
		t.Errorf("unavailable: %q", why)
	}
	if err := o.Validate(); err == nil || !strings.Contains(err.Error(), "give interface and target") {
		t.Errorf("validate without scripts: %v", err)
	}
	o.Interface, o.Target, o.Config, o.AdapterSpeed, o.FlashAddress = "-d3", "t.cfg", []string{""}, -1, "zero"
	err := o.Validate()
	for _, want := range []string{`interface`, `"-d3"`, `config`, `adapter_speed`, `flash_address`} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("validate: %v lacks %q", err, want)
		}
	}
	o.Interface, o.Config, o.AdapterSpeed, o.FlashAddress = "i.cfg", nil, 0, ""
	if err := o.Validate(); err != nil {
		t.Errorf("valid config: %v", err)
	}
}

// TestOpenOCDHardware talks to a real probe: JSN_OPENOCD_CONFIG names an OpenOCD config file
// (interface and target) for the attached probe and board.
func TestOpenOCDHardware(t *testing.T) {
	cfg := os.Getenv("JSN_OPENOCD_CONFIG")
	if cfg == "" {
		t.Skip("set JSN_OPENOCD_CONFIG to an openocd config file for the attached probe and board")
	}
	o := NewOpenOCD(drivertest.Env("probe")).(*OpenOCD)
	o.Config = []string{cfg}
	if err := o.Validate(); err != nil {
		t.Fatal(err)
	}
	if why := o.Unavailable(); why != "" {
		t.Fatal(why)
	}
	out, err := drivertest.CallMethod(context.Background(), o, "info")
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("openocd info:\n%s", out)
}

// TestOpenOCDAbsentInDescribe: without the tool, describe shows the node unavailable with the
// reason, and a call fails with it instead of running anything.
func TestOpenOCDAbsentInDescribe(t *testing.T) {
	s := clitest.Start(t, `apiVersion: jumpstarter.dev/v1alpha1
kind: ExporterConfig
metadata: {name: mcu}
export:
  probe:
    type: debug.OpenOCD
    config: {openocd: /nonexistent/openocd, interface: interface/cmsis-dap.cfg, target: target/rp2040.cfg}
`)
	r := s.Run("describe")
	if !strings.Contains(r.Stdout, "/nonexistent/openocd not found: install openocd or set openocd:") {
		t.Errorf("describe lacks the reason:\n%s%s", r.Stdout, r.Stderr)
	}
	r = s.Run("probe", "info")
	if r.Code == 0 || !strings.Contains(r.Stderr, "openocd") {
		t.Errorf("info without openocd: exit %d, %q", r.Code, r.Stderr)
	}
}

// TestOpenOCDReal runs Debian's openocd through jsn with its dummy adapter (no hardware): the
// command line the driver builds is one openocd accepts (scripts, adapter speed, commands,
// shutdown exiting 0), and a command the setup cannot do fails with openocd's own error.
func TestOpenOCDReal(t *testing.T) {
	if _, err := exec.LookPath("openocd"); err != nil {
		if os.Getenv("CI") == "true" || os.Getenv("JSN_CI") == "1" {
			t.Fatal("CI: no openocd on PATH (Debian: openocd)")
		}
		t.Skip("no openocd on PATH (Debian: openocd)")
	}
	s := clitest.Start(t, `apiVersion: jumpstarter.dev/v1alpha1
kind: ExporterConfig
metadata: {name: mcu}
export:
  probe:
    type: debug.OpenOCD
    config: {interface: interface/dummy.cfg, adapter_speed: 4000, timeout: 30s}
`)
	r := s.Run("probe", "info")
	r.Want(t, 0)
	for _, want := range []string{"adapter speed: 4000 kHz", "TargetName", "shutdown command invoked"} {
		if !strings.Contains(r.Stdout, want) {
			t.Errorf("info output lacks %q:\n%s", want, r.Stdout)
		}
	}
	r = s.Run("probe", "erase")
	if r.Code == 0 || !strings.Contains(r.Stderr, `invalid command name "reset"`) {
		t.Errorf("erase without a target: exit %d, %q", r.Code, r.Stderr)
	}
}
