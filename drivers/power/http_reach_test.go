package power

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"jsn.dev/jsn/drivers/drivertest"
	"jsn.dev/jsn/internal/testkit"
)

// TestHTTPUnreachableIsUnavailable: a relay whose host does not answer is unavailable with the
// reason from Open on, and available again once it answers.
func TestHTTPUnreachableIsUnavailable(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now
	h := NewHTTP(drivertest.Env("power")).(*HTTP)
	h.Preset, h.Host = "shelly", addr
	if err := h.Validate(); err != nil {
		t.Fatal(err)
	}
	if err := h.Open(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	if why := h.Unavailable(); !strings.Contains(why, "relay "+addr+" unreachable") {
		t.Fatalf("unavailable: %q", why)
	}
	ln, err = net.Listen("tcp", addr)
	if err != nil {
		t.Skipf("port %s taken meanwhile: %v", addr, err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, `{"ison": false}`)
	})}
	go srv.Serve(ln)
	defer srv.Close()
	testkit.CheckFor(t, 20*time.Second, func() error {
		if why := h.Unavailable(); why != "" {
			return errors.New(why)
		}
		return nil
	})
}
