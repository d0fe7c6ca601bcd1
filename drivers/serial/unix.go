package serial

import (
	"fmt"
	"path/filepath"
	"strings"
)

// maxUnixPath is the longest Unix socket path Linux accepts (sun_path without its NUL).
const maxUnixPath = 107

// parseUnixURL parses unix:///abs/path: a stream Unix socket served by something that speaks raw
// console bytes, such as QEMU's `-chardev socket,path=…,server=on`. Like socket://, it carries
// only data (no baud rate, modem lines or break).
func parseUnixURL(s, rest string) (target, error) {
	if rest == "" || !filepath.IsAbs(rest) {
		return target{}, fmt.Errorf("unix url %q: want unix:///absolute/path", s)
	}
	if strings.ContainsAny(rest, "?#") {
		return target{}, fmt.Errorf("unix url %q: want unix:///absolute/path with no options", s)
	}
	p := filepath.Clean(rest)
	if len(p) > maxUnixPath {
		return target{}, fmt.Errorf("unix url %q: path longer than %d bytes", s, maxUnixPath)
	}
	return target{addr: p, unix: true}, nil
}

// network is the net.Dial network of a socket target.
func (t target) network() string {
	if t.unix {
		return "unix"
	}
	return "tcp"
}
