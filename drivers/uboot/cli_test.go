package uboot

import (
	"strings"
	"testing"

	"jsn.dev/jsn/cmd/jsn/cli/clitest"
	"jsn.dev/jsn/drivers/driver"
	"jsn.dev/jsn/drivers/serial"
)

func init() {
	driver.MustRegister(driver.Info{Type: "test.UBootBoard", Interface: serial.Interface, Doc: "U-Boot stand-in",
		New: func(driver.Env) driver.Driver { return &board{env: map[string]string{"bootdelay": "3"}} }})
}

// TestCLI runs the `jsn uboot` verbs in-process against a lab whose console is the stand-in.
func TestCLI(t *testing.T) {
	s := clitest.Start(t, `apiVersion: jsn.dev/v1alpha1
kind: ExporterConfig
metadata: {name: ub}
export:
  uboot:
    type: jumpstarter_driver_uboot.driver.UbootConsole
    children:
      serial: {type: test.UBootBoard}
`)
	s.Run("uboot", "interrupt").Want(t, 0)
	r := s.Run("uboot", "run", "echo", "hello")
	r.Want(t, 0)
	if !strings.Contains(r.Stdout, "hello") {
		t.Fatalf("run echo: stdout %q", r.Stdout)
	}
	r = s.Run("uboot", "run", "nosuch")
	r.Want(t, 1) // the command's status
	if !strings.Contains(r.Stdout, "Unknown command") {
		t.Fatalf("run nosuch: stdout %q", r.Stdout)
	}
	s.Run("uboot", "env", "set", "bootargs", "console=ttyS0").Want(t, 0)
	r = s.Run("uboot", "env", "get", "bootargs")
	r.Want(t, 0)
	if r.Stdout != "console=ttyS0\n" {
		t.Fatalf("env get: %q", r.Stdout)
	}
	r = s.Run("uboot", "env", "get", "nope")
	r.Want(t, 3)
	r = s.Run("uboot", "reboot")
	r.Want(t, 1)
	if !strings.Contains(r.Stderr, "no power child") {
		t.Fatalf("reboot without power: %q", r.Stderr)
	}
}
