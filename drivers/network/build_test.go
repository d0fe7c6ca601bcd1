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
