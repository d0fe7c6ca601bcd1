package flasher

import (
	"context"
	"fmt"
	"net"
	"path/filepath"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"jsn.dev/jsn/drivers/driver"
	"jsn.dev/jsn/drivers/fileserver"
	_ "jsn.dev/jsn/drivers/power"
	_ "jsn.dev/jsn/drivers/serial"
	_ "jsn.dev/jsn/drivers/uboot"
)

func buildConfig(src string) error {
	var doc yaml.Node
	if err := yaml.Unmarshal([]byte(src), &doc); err != nil {
		return err
	}
	_, err := driver.Build("exporter.yaml", doc.Content[0], driver.BuildOptions{})
	return err
}

const children = `
  children:
    uboot: {ref: console}
    tftp: {type: fileserver.TFTP, config: {root_dir: /tmp/x, port: 0}}
console: {type: uboot.Console, children: {serial: {ref: s}}}
s: {type: serial.Port, config: {url: "unix:///nonexistent"}}
`

func TestFlasherConfig(t *testing.T) {
	// A Jumpstarter file: BaseFlasher keys accepted.
	ok := `
storage:
  type: jumpstarter_driver_flashers.driver.BaseFlasher
  config: {flasher_bundle: "quay.io/x/y:latest", cache_dir: /var/cache, tftp_dir: /srv/tftp, http_dir: /srv/www, default_target: "mmc 0"}
  children:
    uboot: {type: uboot.Console, children: {serial: {ref: s}}}
    tftp: {type: fileserver.TFTP, config: {root_dir: /tmp/x, port: 0}}
s: {type: serial.Port, config: {url: "unix:///nonexistent"}}
`
	if err := buildConfig(ok); err != nil && !strings.Contains(err.Error(), "serial.Port") {
		t.Fatalf("Jumpstarter BaseFlasher config: %v", err)
	}
	for _, tc := range []struct{ cfg, want string }{
		{"{default_target: 'floppy 0'}", `default_target: target "floppy 0": unknown interface "floppy"`},
		{"{default_target: 'mmc'}", `want "<interface> <device number>"`},
		{"{targets: {a: 'usb x'}}", "targets.a:"},
		{"{method: ftp}", `method: want "tftp" or "http"`},
		{"{load_addr: 'ram'}", "load_addr: want a hex address"},
		{"{block_size: 500}", "block_size: want a power of two"},
		{`{setup: ["a\nb"]}`, "setup[0]: want one U-Boot command line"},
		{"{server_ip: host}", "server_ip: want an IP address"},
		{"{write_timeout: 0}", "write_timeout: must be more than 0"},
		{"{http_port: -1}", "http_port: -1 is out of range"},
	} {
		err := buildConfig("f:\n  type: flasher.UBoot\n  config: " + tc.cfg + children)
		if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "exporter.yaml:") {
			t.Errorf("%s: got %v, want a positioned error containing %q", tc.cfg, err, tc.want)
		}
	}
	err := buildConfig("f:\n  type: flasher.UBoot\n  children: {tftp: {type: power.Mock}}\n")
	for _, want := range []string{`child "tftp" must be a jsn.fileserver.v1 driver`, `child "serial" is required`} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("bad children: got %v, want %q", err, want)
		}
	}
}

func TestParsers(t *testing.T) {
	if v, ok := parseCRC("crc32 for 04000000 ... 043004d1 ==> 1a2b3c4d\n"); !ok || v != 0x1a2b3c4d {
		t.Fatalf("parseCRC: %x %v", v, ok)
	}
	if n, ok := writtenBlocks("\nvirtio write: device 0 block # 0, count 6147 ... 6147 blocks written: OK\n"); !ok || n != 6147 {
		t.Fatalf("writtenBlocks: %d %v", n, ok)
	}
	if _, ok := writtenBlocks("nothing"); ok {
		t.Fatal("writtenBlocks of nothing")
	}
	p, err := ParseProgress(Progress{Phase: "load", Bytes: 3, Total: 9, Command: "tftpboot"}.Map())
	if err != nil || p.Phase != "load" || p.Bytes != 3 || p.Total != 9 || p.Command != "tftpboot" {
		t.Fatalf("ParseProgress: %+v %v", p, err)
	}
}

func FuzzDeviceOutput(f *testing.F) {
	f.Add("crc32 for 04000000 ... 043004d1 ==> 1a2b3c4d", "mmc 0")
	f.Add("6147 blocks written: OK", "usb 12")
	f.Fuzz(func(t *testing.T, out, target string) {
		_, _ = parseCRC(out)
		_, _ = writtenBlocks(out)
		_, _, _ = parseTarget(target)
		_, _ = ParseProgress(map[string]any{"phase": out, "bytes": int64(len(out)), "command": target})
	})
}

// TestAutoServers: without tftp/http children the flasher makes both, a given one is kept, and a
// port that cannot be bound makes the own server unavailable with a reason naming the key.
func TestAutoServers(t *testing.T) {
	build := func(src string) *driver.Tree {
		t.Helper()
		var doc yaml.Node
		if err := yaml.Unmarshal([]byte(src), &doc); err != nil {
			t.Fatal(err)
		}
		tree, err := driver.Build("exporter.yaml", doc.Content[0], driver.BuildOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return tree
	}
	tree := build(`
f:
  type: jumpstarter_driver_flashers.driver.RCarS4Flasher
  children: {serial: {ref: s}}
s: {type: serial.Port, config: {url: "unix:///nonexistent"}}
`)
	for name, typ := range map[string]string{"f.tftp": "fileserver.TFTP", "f.http": "fileserver.HTTP"} {
		n := tree.Find(name)
		if n == nil || n.Info.Type != typ {
			t.Fatalf("%s: got %+v, want a built-in %s", name, n, typ)
		}
	}
	u := tree.Find("f").Driver.(*UBoot)
	if any(u.files) != any(tree.Find("f.tftp").Driver) {
		t.Fatalf("the flasher loads from %v, want its own tftp server", u.files)
	}
	if tft := tree.Find("f.tftp").Driver.(*fileserver.TFTP); tft.Port != 69 || !strings.Contains(tft.RootDir, filepath.Join("jsn-flasher", "f", "tftp")) {
		t.Fatalf("own tftp defaults: port %d root %q", tft.Port, tft.RootDir)
	}

	// A given tftp child is used; only http is made.
	tree = build(`
f:
  type: flasher.UBoot
  children:
    serial: {ref: s}
    tftp: {type: fileserver.TFTP, config: {root_dir: /tmp/x, port: 0}}
s: {type: serial.Port, config: {url: "unix:///nonexistent"}}
`)
	if n := tree.Find("f.tftp"); n == nil || any(tree.Find("f").Driver.(*UBoot).files) != any(n.Driver) {
		t.Fatal("the given tftp child is not the one used")
	}
	if tree.Find("f.http") == nil {
		t.Fatal("no own http server")
	}

	// A taken port: the own server is unavailable, the reason names tftp_port.
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	port := pc.LocalAddr().(*net.UDPAddr).Port
	tree = build(fmt.Sprintf(`
f:
  type: flasher.UBoot
  config: {tftp_dir: %s, host: 127.0.0.1, tftp_port: %d}
  children: {serial: {ref: s}}
s: {type: serial.Port, config: {url: "unix:///nonexistent"}}
`, t.TempDir(), port))
	tft := tree.Find("f.tftp").Driver.(*fileserver.TFTP)
	if err := tft.Open(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer tft.Close()
	if why := tft.Unavailable(); !strings.Contains(why, "address already in use") || !strings.Contains(why, "set the flasher's tftp_port") {
		t.Fatalf("unavailable reason %q, want the bind error and the key tftp_port", why)
	}
	if err := buildConfig("f:\n  type: flasher.UBoot\n  config: {tftp_port: 70000, host: x}\n  children: {serial: {ref: s}}\ns: {type: serial.Port, config: {url: \"unix:///n\"}}\n"); err == nil ||
		!strings.Contains(err.Error(), "tftp_port: 70000 is out of range") || !strings.Contains(err.Error(), "host: want an IP address") {
		t.Fatalf("bad ports: got %v", err)
	}
}
