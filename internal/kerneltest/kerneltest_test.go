package kerneltest

import (
	"bytes"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

func TestVersionLess(t *testing.T) {
	for _, tt := range [][2]string{
		{"6.1.0-9-amd64", "6.1.0-57-amd64"},
		{"6.1.0-57-amd64", "6.10.0-1-amd64"},
		{"5.10.0-30-amd64", "6.1.0-1-amd64"},
	} {
		if !versionLess(tt[0], tt[1]) || versionLess(tt[1], tt[0]) {
			t.Errorf("versionLess(%s, %s) is wrong", tt[0], tt[1])
		}
	}
}

func TestModulePaths(t *testing.T) {
	dir := t.TempDir()
	dep := `kernel/net/can/can.ko:
kernel/net/can/can-raw.ko: kernel/net/can/can.ko
kernel/drivers/net/can/dev/can-dev.ko:
kernel/drivers/net/can/vcan.ko: kernel/drivers/net/can/dev/can-dev.ko
kernel/net/can/can-isotp.ko.xz: kernel/net/can/can.ko
`
	if err := os.WriteFile(filepath.Join(dir, "modules.dep"), []byte(dep), 0o644); err != nil {
		t.Fatal(err)
	}
	k := Kernel{Release: "test", Modules: dir}
	got, err := k.modulePaths("can-raw", "vcan", "can_isotp", "can")
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, p := range got {
		names = append(names, strings.TrimPrefix(p, dir+"/"))
	}
	want := "kernel/net/can/can.ko kernel/net/can/can-raw.ko kernel/drivers/net/can/dev/can-dev.ko kernel/drivers/net/can/vcan.ko kernel/net/can/can-isotp.ko.xz"
	if strings.Join(names, " ") != want {
		t.Errorf("got %v, want %s (dependencies first, each once)", names, want)
	}
	if _, err := k.modulePaths("gpio_sim"); err == nil || !strings.Contains(err.Error(), "gpio_sim") {
		t.Errorf("unknown module: got %v, want an error naming it", err)
	}
}

// TestCpio reads back the archive's headers: names, sizes and the console device node.
func TestCpio(t *testing.T) {
	var buf bytes.Buffer
	w := &cpioWriter{w: &buf}
	w.add("dev", 0o40755, nil, 0, 0)
	w.add("dev/console", 0o20600, nil, 5, 1)
	w.add("init", 0o100755, []byte("#!/bin/sh\n"), 0, 0)
	w.trailer()
	b := buf.Bytes()
	var names []string
	for len(b) > 0 {
		if len(b) < 110 || string(b[:6]) != "070701" {
			t.Fatalf("bad header at %q", b[:min(len(b), 16)])
		}
		field := func(i int) int {
			n, err := strconv.ParseUint(string(b[6+8*i:14+8*i]), 16, 32)
			if err != nil {
				t.Fatal(err)
			}
			return int(n)
		}
		mode, size, rmajor, rminor, namesize := field(1), field(6), field(9), field(10), field(11)
		name := string(b[110 : 110+namesize-1])
		names = append(names, name)
		if name == "dev/console" && (mode != 0o20600 || rmajor != 5 || rminor != 1) {
			t.Errorf("console: mode %o rdev %d:%d", mode, rmajor, rminor)
		}
		off := (110 + namesize + 3) &^ 3
		off = (off + size + 3) &^ 3
		if name == "TRAILER!!!" {
			break
		}
		b = b[off:]
	}
	if strings.Join(names, ",") != "dev,dev/console,init,TRAILER!!!" {
		t.Errorf("got %v", names)
	}
}
