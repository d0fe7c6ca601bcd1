package storage

import (
	"net"
	"strings"
	"testing"
)

var urlAllowTests = []struct {
	list  []string
	err   string
	hosts map[string]bool // URL host → allowed
	addrs map[string]bool // connection address → allowed
}{
	{list: nil,
		hosts: map[string]bool{"images.example": true, "127.0.0.1": false, "169.254.169.254": false, "::1": false, "10.1.2.3": true},
		addrs: map[string]bool{"192.0.2.1": true, "127.0.0.1": false, "127.9.9.9": false, "fe80::1": false, "0.0.0.0": false, "224.0.0.1": false}},
	{list: []string{"images.lab.example", "*.cdn.example", "10.1.0.0/16", "127.0.0.1"},
		hosts: map[string]bool{"images.lab.example": true, "IMAGES.lab.example.": true, "a.cdn.example": true, "cdn.example": false,
			"evil.example": false, "127.0.0.1": true, "127.0.0.2": false, "10.1.9.9": true},
		addrs: map[string]bool{"127.0.0.1": true, "127.0.0.2": false, "10.1.9.9": true, "192.0.2.1": true, "169.254.169.254": false}},
	{list: []string{"192.0.2.0/24"},
		hosts: map[string]bool{"anything.example": true, "192.0.2.9": true, "198.51.100.1": false},
		addrs: map[string]bool{"192.0.2.9": true, "198.51.100.1": false}},
	{list: []string{""}, err: "url_allow[0]: empty"},
	{list: []string{"10.0.0.0/33"}, err: "not a network"},
	{list: []string{"http://x"}, err: "not a URL"},
	{list: []string{"x y"}, err: "want a host name"},
	{list: []string{"a..b"}, err: "want a host name"},
}

func TestURLAllow(t *testing.T) {
	for _, tt := range urlAllowTests {
		p, err := parseURLAllow(tt.list)
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("%q: got %v, want an error containing %q", tt.list, err, tt.err)
			}
			continue
		}
		if err != nil {
			t.Fatalf("%q: %v", tt.list, err)
		}
		for h, want := range tt.hosts {
			if got := p.checkHost(h) == nil; got != want {
				t.Errorf("%q: host %s allowed %v, want %v (%v)", tt.list, h, got, want, p.checkHost(h))
			}
		}
		for a, want := range tt.addrs {
			if got := p.checkAddr(net.ParseIP(a)) == nil; got != want {
				t.Errorf("%q: address %s allowed %v, want %v", tt.list, a, got, want)
			}
		}
	}
}

func FuzzParseURLAllow(f *testing.F) {
	for _, tt := range urlAllowTests {
		f.Add(strings.Join(tt.list, "\n"))
	}
	f.Fuzz(func(t *testing.T, s string) {
		p, err := parseURLAllow(strings.Split(s, "\n"))
		if err != nil {
			return
		}
		_ = p.checkHost("example.com")
		_ = p.checkAddr(net.ParseIP("127.0.0.1"))
	})
}
