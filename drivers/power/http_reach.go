package power

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"sync"
	"time"
)

// reach tracks whether an HTTP relay's host answers at all (a TCP connection), so that a relay
// that is unplugged or unreachable shows as unavailable in describe, with the reason, instead of
// only failing each call.
type reach struct {
	addr string // host:port of the relay; "" = unknown, not tracked

	mu  sync.Mutex
	why string    // "" while the host answers (or was not found unreachable)
	at  time.Time // when why was last checked
}

// reachRecheck is how often an unreachable relay is tried again when someone asks.
const reachRecheck = 2 * time.Second

// reachAddr returns host:port of an http(s) URL, or "".
func reachAddr(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return ""
	}
	port := u.Port()
	if port == "" {
		port = "80"
		if u.Scheme == "https" {
			port = "443"
		}
	}
	return net.JoinHostPort(u.Hostname(), port)
}

// probe dials the relay and records the outcome.
func (r *reach) probe() string {
	if r.addr == "" {
		return ""
	}
	d := net.Dialer{Timeout: time.Second}
	c, err := d.Dial("tcp", r.addr)
	why := ""
	if err != nil {
		why = fmt.Sprintf("relay %s unreachable: %v", r.addr, unwrapOp(err))
	} else {
		c.Close()
	}
	r.mu.Lock()
	r.why, r.at = why, time.Now()
	r.mu.Unlock()
	return why
}

// failed records that a request could not connect; ok that one got an answer.
func (r *reach) failed(err error) {
	var op *net.OpError
	if r.addr == "" || !errors.As(err, &op) || op.Op != "dial" {
		return
	}
	r.mu.Lock()
	r.why, r.at = fmt.Sprintf("relay %s unreachable: %v", r.addr, unwrapOp(err)), time.Now()
	r.mu.Unlock()
}

func (r *reach) ok() {
	r.mu.Lock()
	r.why = ""
	r.mu.Unlock()
}

// unavailable returns why the relay cannot be reached, trying it again when the last check is
// older than reachRecheck.
func (r *reach) unavailable() string {
	r.mu.Lock()
	why, at := r.why, r.at
	r.mu.Unlock()
	if why == "" || time.Since(at) < reachRecheck {
		return why
	}
	return r.probe()
}

func unwrapOp(err error) error {
	var op *net.OpError
	if errors.As(err, &op) && op.Err != nil {
		return op.Err
	}
	return err
}
