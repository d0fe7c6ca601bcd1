package serial

import (
	"fmt"
	"net"
	"path/filepath"
	"strconv"
	"strings"
)

// target is a parsed `url`: a device path or a raw TCP address.
type target struct {
	path string // device path, "/dev/ttyUSB0"; "" for a socket
	addr string // host:port of a socket:// url, or the path of a unix:// url; "" for a device
	unix bool   // addr is a Unix socket path (unix.go)
	loop bool   // loop://: a loopback, what is written is read back (loop.go)
}

// isSocket reports a target with no serial line under it (no baud rate, no modem lines).
func (t target) isSocket() bool { return t.addr != "" || t.loop }

// parseURL parses a Port's url: an absolute device path, or socket://host:port (a raw TCP port
// such as ser2net's, as in pyserial's URL handlers).
func parseURL(s string) (target, error) {
	if s == "" {
		return target{}, fmt.Errorf("must not be empty")
	}
	if strings.ContainsRune(s, 0) {
		return target{}, fmt.Errorf("must not contain NUL bytes")
	}
	if scheme, rest, ok := strings.Cut(s, "://"); ok {
		if scheme == "loop" {
			if rest != "" && rest != "/" {
				return target{}, fmt.Errorf("loop url %q: want loop:// with no path or options", s)
			}
			return target{loop: true}, nil
		}
		if scheme == "unix" {
			return parseUnixURL(s, rest)
		}
		if scheme != "socket" {
			return target{}, fmt.Errorf("unsupported url %q: want a device path such as /dev/ttyUSB0, socket://host:port, unix:///path or loop://", s)
		}
		rest = strings.TrimSuffix(rest, "/")
		if strings.ContainsAny(rest, "/?#") {
			return target{}, fmt.Errorf("socket url %q: want socket://host:port with no path or options", s)
		}
		host, port, err := net.SplitHostPort(rest)
		if err != nil {
			return target{}, fmt.Errorf("socket url %q: %w", s, err)
		}
		if host == "" {
			return target{}, fmt.Errorf("socket url %q: empty host", s)
		}
		n, err := strconv.Atoi(port)
		if err != nil || n < 1 || n > 65535 {
			return target{}, fmt.Errorf("socket url %q: port must be 1..65535, got %q", s, port)
		}
		return target{addr: net.JoinHostPort(host, strconv.Itoa(n))}, nil
	}
	if !filepath.IsAbs(s) {
		return target{}, fmt.Errorf("%q is not an absolute device path: want a path such as /dev/ttyUSB0 or socket://host:port", s)
	}
	return target{path: filepath.Clean(s)}, nil
}

// String returns the url in canonical form.
func (t target) String() string {
	if t.loop {
		return "loop://"
	}
	if t.unix {
		return "unix://" + t.addr
	}
	if t.isSocket() {
		return "socket://" + t.addr
	}
	return t.path
}
