package storage

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"syscall"
	"time"
)

// urlPolicy is where write_url may download images from: the url_allow key of the storage
// drivers. Without a list any host may be named, but never a loopback, link-local, unspecified
// or multicast address: an exporter must not become a way into its own services (a
// controller's /metrics on 127.0.0.1, a cloud metadata endpoint on 169.254.169.254). With a
// list, a URL's host must be a listed name ("images.lab.example", or "*.lab.example" for every
// name below it) or an address in a listed network ("10.1.0.0/16", "192.0.2.7"); a loopback or
// link-local address is allowed only if a listed network holds it. The address is checked where
// the connection is made, so a name that resolves (or redirects) elsewhere is refused too.
type urlPolicy struct {
	names []string     // lower case; "*.x" matches names below x
	nets  []*net.IPNet // allowed addresses
}

// errURLRefused marks a download refused by the policy.
type errURLRefused struct{ msg string }

func (e *errURLRefused) Error() string { return e.msg }

// parseURLAllow parses the url_allow list.
func parseURLAllow(list []string) (urlPolicy, error) {
	var p urlPolicy
	var errs []error
	for i, s := range list {
		s = strings.TrimSpace(strings.ToLower(s))
		switch {
		case s == "":
			errs = append(errs, fmt.Errorf("url_allow[%d]: empty", i))
		case strings.Contains(s, "://"):
			errs = append(errs, fmt.Errorf("url_allow[%d]: %q: want a host name, address or network, not a URL", i, s))
		case strings.Contains(s, "/"):
			_, n, err := net.ParseCIDR(s)
			if err != nil {
				errs = append(errs, fmt.Errorf("url_allow[%d]: %q is not a network (10.1.0.0/16): %v", i, s, err))
				continue
			}
			p.nets = append(p.nets, n)
		case net.ParseIP(s) != nil:
			ip := net.ParseIP(s)
			bits := 128
			if ip.To4() != nil {
				ip, bits = ip.To4(), 32
			}
			p.nets = append(p.nets, &net.IPNet{IP: ip, Mask: net.CIDRMask(bits, bits)})
		case validHostPattern(s):
			p.names = append(p.names, s)
		default:
			errs = append(errs, fmt.Errorf("url_allow[%d]: %q: want a host name (images.lab.example, *.lab.example), an address or a network", i, s))
		}
	}
	return p, errors.Join(errs...)
}

func validHostPattern(s string) bool {
	s = strings.TrimPrefix(s, "*.")
	if s == "" || len(s) > 253 {
		return false
	}
	for _, label := range strings.Split(s, ".") {
		if label == "" || len(label) > 63 {
			return false
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
				return false
			}
		}
	}
	return true
}

// listed reports whether a url_allow list is configured.
func (p urlPolicy) listed() bool { return len(p.names) > 0 || len(p.nets) > 0 }

// checkHost says why a URL naming host (a name or a literal address) may not be fetched.
func (p urlPolicy) checkHost(host string) error {
	host = strings.ToLower(strings.TrimSuffix(host, "."))
	if ip := net.ParseIP(host); ip != nil {
		return p.checkAddr(ip)
	}
	if !p.listed() {
		return nil
	}
	for _, n := range p.names {
		if n == host || strings.HasPrefix(n, "*.") && strings.HasSuffix(host, n[1:]) {
			return nil
		}
	}
	if len(p.names) == 0 && len(p.nets) > 0 {
		return nil // only networks are listed: the address decides, where the connection is made
	}
	return &errURLRefused{fmt.Sprintf("host %s is not in url_allow", host)}
}

// checkAddr says why a connection to ip may not be made.
func (p urlPolicy) checkAddr(ip net.IP) error {
	for _, n := range p.nets {
		if n.Contains(ip) {
			return nil
		}
	}
	switch {
	case ip.IsLoopback():
		return &errURLRefused{fmt.Sprintf("address %s is loopback; list it in url_allow to fetch from it", ip)}
	case ip.IsLinkLocalUnicast(), ip.IsLinkLocalMulticast():
		return &errURLRefused{fmt.Sprintf("address %s is link-local; list it in url_allow to fetch from it", ip)}
	case ip.IsUnspecified(), ip.IsMulticast(), ip.IsInterfaceLocalMulticast():
		return &errURLRefused{fmt.Sprintf("address %s cannot be fetched from", ip)}
	case len(p.names) == 0 && len(p.nets) > 0:
		return &errURLRefused{fmt.Sprintf("address %s is not in url_allow", ip)}
	}
	return nil
}

// client returns the HTTP client write_url uses under p. Keep-alives are off so no idle
// connection (and its goroutines) outlives a download. Every connection's address is checked
// (a name may resolve anywhere), and so is every redirect's host. A proxy from the environment
// is a connection like any other: its address must be allowed.
func (p urlPolicy) client() *http.Client {
	d := &net.Dialer{Timeout: 30 * time.Second, Control: func(network, address string, _ syscall.RawConn) error {
		host, _, err := net.SplitHostPort(address)
		if err != nil {
			return err
		}
		ip := net.ParseIP(host)
		if ip == nil {
			return &errURLRefused{fmt.Sprintf("address %q is not an IP address", host)}
		}
		return p.checkAddr(ip)
	}}
	return &http.Client{
		Transport: &http.Transport{
			Proxy:                 http.ProxyFromEnvironment,
			DialContext:           d.DialContext,
			DisableKeepAlives:     true,
			TLSHandshakeTimeout:   30 * time.Second,
			ResponseHeaderTimeout: time.Minute,
		},
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			if len(via) >= 10 {
				return errors.New("stopped after 10 redirects")
			}
			if req.URL.Scheme != "http" && req.URL.Scheme != "https" {
				return &errURLRefused{fmt.Sprintf("redirect to %s: not http or https", req.URL.Redacted())}
			}
			if err := p.checkHost(req.URL.Hostname()); err != nil {
				return &errURLRefused{fmt.Sprintf("redirect to %s: %v", req.URL.Redacted(), err)}
			}
			return nil
		},
	}
}
