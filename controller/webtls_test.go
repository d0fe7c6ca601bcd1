package controller

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"jsn.dev/jsn/controller/api"
)

// TestHTTPTLS: --http-tls serves the dashboard, its login exchange and /healthz over TLS with
// the controller's own certificate (verified against the CA issued configs carry); a plain
// request gets nothing; the login URL says https; without a certificate it is a clear error.
func TestHTTPTLS(t *testing.T) {
	dir := t.TempDir()
	adminCfg, err := Init(dir, InitOptions{})
	if err != nil {
		t.Fatal(err)
	}
	l := &lab{t: t, dir: dir}
	o := testOptions(dir)
	o.HTTP, o.HTTPTLS = "127.0.0.1:0", true
	o.WebSocket = "127.0.0.1:0"
	o.Dashboard = fstest.MapFS{"index.html": {Data: []byte("<html>jsn</html>")}}
	l.start(o)
	l.admin = l.connectConfig(adminCfg)
	alice, _ := l.client("alice", api.CreateClientRequest{})

	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(l.ctl.CA()) {
		t.Fatal("the controller has no CA")
	}
	hc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, ServerName: "127.0.0.1"}}}
	base := "https://" + l.ctl.HTTPAddr()
	resp, err := hc.Get(base + "/healthz")
	if err != nil {
		t.Fatalf("https healthz: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || string(body) != "ok\n" {
		t.Fatalf("https healthz: %d %q", resp.StatusCode, body)
	}
	if resp, err := (&http.Client{Timeout: 10 * time.Second}).Get("http://" + l.ctl.HTTPAddr() + "/healthz"); err == nil {
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			t.Fatalf("plain http to the TLS listener answered %d %q", resp.StatusCode, b)
		}
	}

	tok := callOK[api.DashboardToken](t, alice, api.ClientSubject("alice", api.VerbDashboard), api.Empty{})
	if !strings.HasPrefix(tok.URL, base+"/#token=") {
		t.Fatalf("login URL %q, want %s/#token=…", tok.URL, base)
	}
	b, _ := json.Marshal(map[string]string{"token": tok.Token})
	resp, err = hc.Post(base+"/api/exchange", "application/json", bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var s api.BrowserSession
	if err := json.NewDecoder(resp.Body).Decode(&s); err != nil || resp.StatusCode != http.StatusOK || s.JWT == "" || !strings.HasPrefix(s.WS, "wss://") {
		t.Fatalf("exchange over https: %d %+v %v", resp.StatusCode, s, err)
	}

	// No certificate to serve: refused at start, naming the flag.
	dir2 := t.TempDir()
	if _, err := Init(dir2, InitOptions{NoTLS: true}); err != nil {
		t.Fatal(err)
	}
	o2 := testOptions(dir2)
	o2.NoTLS, o2.HTTP, o2.HTTPTLS = true, "127.0.0.1:0", true
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if c, err := Start(ctx, o2); err == nil {
		c.Close()
		t.Fatal("--http-tls without a certificate started")
	} else if !strings.Contains(err.Error(), "--http-tls") {
		t.Fatalf("got %v, want an error naming --http-tls", err)
	}
}
