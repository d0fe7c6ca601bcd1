package network

import (
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"jsn.dev/jsn/drivers/driver"
)

func TestBuildConfig(t *testing.T) {
	tests := []struct {
		src     string
		wantErr string
	}{
		{"type: jumpstarter_driver_network.driver.TcpNetwork\nconfig: {host: 192.168.1.2, port: 5201, enable_address: false}", ""},
		{"type: network.TCP\nconfig: {host: h, port: 0}", "must be 1..65535, got 0"},
		{"type: network.TCP\nconfig: {host: h, port: 70000}", "must be 1..65535, got 70000"},
		{"type: network.TCP\nconfig: {host: h}", `missing required field "port"`},
	}
	for _, tt := range tests {
		var doc yaml.Node
		if err := yaml.Unmarshal([]byte("net:\n  "+strings.ReplaceAll(tt.src, "\n", "\n  ")), &doc); err != nil {
			t.Fatal(err)
		}
		tree, err := driver.Build("exporter.yaml", doc.Content[0], driver.BuildOptions{})
		if tt.wantErr == "" {
			if err != nil {
				t.Fatalf("%s: %v", tt.src, err)
			}
			d := tree.Find("net").Driver.(*TCP)
			if d.Addr() != "192.168.1.2:5201" || d.EnableAddress {
				t.Fatalf("decoded: got %s enable_address=%v", d.Addr(), d.EnableAddress)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !strings.Contains(err.Error(), "exporter.yaml:") {
			t.Fatalf("%s: got %v, want a positioned error containing %q", tt.src, err, tt.wantErr)
		}
	}
}

func TestBuildUDPAndUnix(t *testing.T) {
	src := `dns:
  type: jumpstarter_driver_network.driver.UdpNetwork
  config: {host: 10.0.0.2, port: 53}
qmp:
  type: jumpstarter_driver_network.driver.UnixNetwork
  config: {path: run/qmp.sock}
bad:
  type: network.UDP
  config: {host: h, port: 0, bogus: 1}
`
	var doc yaml.Node
	if err := yaml.Unmarshal([]byte(src), &doc); err != nil {
		t.Fatal(err)
	}
	_, err := driver.Build("/etc/jsn/exporter.yaml", doc.Content[0], driver.BuildOptions{})
	for _, want := range []string{"bad.config", `unknown field "bogus"`} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Fatalf("got %v, want an error containing %q", err, want)
		}
	}
	doc.Content[0].Content = doc.Content[0].Content[:4] // without bad
	tree, err := driver.Build("/etc/jsn/exporter.yaml", doc.Content[0], driver.BuildOptions{Dir: "/etc/jsn"})
	if err != nil {
		t.Fatal(err)
	}
	if u := tree.Find("dns").Driver.(*UDP); u.Addr() != "10.0.0.2:53" || !u.EnableAddress {
		t.Errorf("udp: got %s enable_address=%v", u.Addr(), u.EnableAddress)
	}
	if u := tree.Find("qmp").Driver.(*Unix); u.SocketPath() != "/etc/jsn/run/qmp.sock" {
		t.Errorf("unix: got %q, want the path relative to the config file", u.SocketPath())
	}
}
