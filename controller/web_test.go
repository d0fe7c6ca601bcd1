package controller

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/nats-io/nats.go"

	"jsn.dev/jsn/bus"
	"jsn.dev/jsn/bus/wire"
	"jsn.dev/jsn/controller/api"
	"jsn.dev/jsn/internal/testkit"
)

func startWebLab(t *testing.T) *lab {
	t.Helper()
	dir := t.TempDir()
	adminCfg, err := Init(dir, InitOptions{})
	if err != nil {
		t.Fatal(err)
	}
	l := &lab{t: t, dir: dir}
	o := testOptions(dir)
	o.HTTP, o.WebSocket, o.WebSocketNoTLS = "127.0.0.1:0", "127.0.0.1:0", true
	o.Dashboard = fstest.MapFS{"index.html": {Data: []byte("<html>jsn</html>")}}
	l.start(o)
	l.admin = l.connectConfig(adminCfg)
	return l
}

// exchange posts token to the controller's /api/exchange.
func (l *lab) exchange(token string) (*api.BrowserSession, int, error) {
	b, _ := json.Marshal(map[string]string{"token": token})
	resp, err := http.Post("http://"+l.ctl.HTTPAddr()+"/api/exchange", "application/json", bytes.NewReader(b))
	if err != nil {
		return nil, 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		var e struct{ Error string }
		_ = json.NewDecoder(resp.Body).Decode(&e)
		return nil, resp.StatusCode, errors.New(e.Error)
	}
	var s api.BrowserSession
	if err := json.NewDecoder(resp.Body).Decode(&s); err != nil {
		return nil, resp.StatusCode, err
	}
	return &s, resp.StatusCode, nil
}

// browser connects over the WebSocket listener with the session's credential, as the page does.
func (l *lab) browser(t *testing.T, s *api.BrowserSession) *attacker {
	t.Helper()
	a := &attacker{errs: make(chan error, 64)}
	nc, err := nats.Connect(s.WS, nats.UserJWTAndSeed(s.JWT, s.Seed), nats.MaxReconnects(0),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
			select {
			case a.errs <- err:
			default:
			}
		}))
	if err != nil {
		t.Fatalf("browser credential over %s: %v", s.WS, err)
	}
	a.nc = nc
	t.Cleanup(nc.Close)
	return a
}

func TestWebSocketPlainOnlyOnLoopback(t *testing.T) {
	for _, addr := range []string{"0.0.0.0:8443", "192.0.2.1:8443", "[::]:8443", "lab.example:8443"} {
		err := checkWebSocket(&Options{WebSocket: addr, WebSocketNoTLS: true})
		if err == nil || !strings.Contains(err.Error(), "loopback") || !strings.Contains(err.Error(), addr) {
			t.Errorf("plain websocket on %s: %v, want a refusal naming the address and loopback", addr, err)
		}
		if err := checkWebSocket(&Options{WebSocket: addr, NoTLS: true}); err == nil {
			t.Errorf("--no-tls controller with websocket on %s accepted", addr)
		}
		if err := checkWebSocket(&Options{WebSocket: addr}); err != nil {
			t.Errorf("TLS websocket on %s: %v", addr, err)
		}
	}
	for _, addr := range []string{"127.0.0.1:8443", "[::1]:8443", "localhost:8443"} {
		if err := checkWebSocket(&Options{WebSocket: addr, WebSocketNoTLS: true}); err != nil {
			t.Errorf("plain websocket on %s: %v", addr, err)
		}
	}
	if err := checkWebSocket(&Options{WebSocket: "127.0.0.1:8443", NatsURL: "nats://x"}); err == nil {
		t.Error("websocket with --nats-url accepted")
	}
}

// TestBrowserCredential: the one-time token works once, expires, is refused for a deleted
// client; the browser credential it buys can do exactly the watch rights and nothing else.
func TestBrowserCredential(t *testing.T) {
	l := startWebLab(t)
	e1 := l.exporter("e1", nil)
	l.exporter("e2", nil)
	alice, _ := l.client("alice", api.CreateClientRequest{})
	callOK[api.LeaseReply](t, alice, api.ClientSubject("alice", api.VerbLeaseRequest), api.LeaseRequest{Exporter: "e1", Duration: time.Minute})

	tok := callOK[api.DashboardToken](t, alice, api.ClientSubject("alice", api.VerbDashboard), api.Empty{})
	if !strings.HasPrefix(tok.URL, "http://"+l.ctl.HTTPAddr()+"/#token=") || !strings.HasSuffix(tok.URL, tok.Token) {
		t.Fatalf("dashboard URL %q", tok.URL)
	}
	s, code, err := l.exchange(tok.Token)
	if err != nil {
		t.Fatalf("exchange: %d %v", code, err)
	}
	if s.Name != "alice" || fmt.Sprint(s.Watch) != "[e1]" || !strings.HasPrefix(s.WS, "ws://127.0.0.1:") || len(s.State.Exporters) != 2 {
		t.Fatalf("session %+v", s)
	}
	// Once only.
	if _, code, err := l.exchange(tok.Token); code != http.StatusUnauthorized || !strings.Contains(err.Error(), "used") {
		t.Errorf("second exchange: %d %v, want 401 naming a used token", code, err)
	}
	// Expired.
	old := callOK[api.DashboardToken](t, alice, api.ClientSubject("alice", api.VerbDashboard), api.Empty{})
	ctx := t.Context()
	e, err := l.ctl.web.Get(ctx, webTokenKey(old.Token))
	if err != nil {
		t.Fatal(err)
	}
	var w webToken
	if err := wire.Unmarshal(e.Value, &w); err != nil {
		t.Fatal(err)
	}
	w.Expires = time.Now().Add(-time.Second)
	wb, _ := wire.Marshal(&w)
	if _, err := l.ctl.web.Update(ctx, webTokenKey(old.Token), wb, e.Revision, 0); err != nil {
		t.Fatal(err)
	}
	if _, code, _ := l.exchange(old.Token); code != http.StatusUnauthorized {
		t.Errorf("expired token: %d, want 401", code)
	}

	b := l.browser(t, s)
	// What it may: the lab's state, e1's taps (and history replies), e1's history requests.
	state, err := b.nc.SubscribeSync(api.DashSubject)
	if err != nil {
		t.Fatal(err)
	}
	tap, err := b.nc.SubscribeSync("jsn.tap.e1.>")
	if err != nil {
		t.Fatal(err)
	}
	hist := make(chan string, 4)
	if _, err := e1.Subscribe("jsn.x.e1.history.>", "", func(m *bus.Msg) { hist <- m.Subject }); err != nil {
		t.Fatal(err)
	}
	if err := e1.Flush(t.Context()); err != nil {
		t.Fatal(err)
	}
	if err := b.nc.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := b.nc.Publish(api.DashRefreshSubject, nil); err != nil {
		t.Fatal(err)
	}
	if m, err := state.NextMsg(5 * time.Second); err != nil {
		t.Fatalf("lab state: %v", err)
	} else if !strings.Contains(string(m.Data), `"holder":"alice"`) {
		t.Errorf("lab state %s: no holder alice", m.Data)
	}
	if err := e1.Publish("jsn.tap.e1.console", nil, []byte("hello")); err != nil {
		t.Fatal(err)
	}
	if m, err := tap.NextMsg(5 * time.Second); err != nil || string(m.Data) != "hello" {
		t.Fatalf("tap: %v %v", m, err)
	}
	if err := b.nc.PublishRequest("jsn.x.e1.history.console", "jsn.tap.e1.~history.x", nil); err != nil {
		t.Fatal(err)
	}
	select {
	case <-hist:
	case <-time.After(5 * time.Second):
		t.Error("history request did not reach the exporter")
	}
	// What it may not.
	for _, subj := range []string{">", "jsn.tap.e2.>", "jsn.tap.>", "_INBOX_c.alice.>", "_INBOX_v.alice.>", "jsn.x.e1.>", "jsn.ctl.>"} {
		if _, err := b.nc.SubscribeSync(subj); err != nil {
			t.Fatal(err)
		}
		b.denied(t, "browser subscribe", subj)
	}
	for _, subj := range []string{"jsn.x.e1.call.power.on", "jsn.x.e1.describe", "jsn.x.e2.history.console", "jsn.tap.e1.console",
		"jsn.ctl.c.alice.lease.request", "jsn.ctl.c.alice.dashboard", "jsn.ctl.dash.lab", "$JS.API.STREAM.LIST"} {
		_ = b.nc.Publish(subj, nil)
		b.denied(t, "browser publish", subj)
	}

	// A deleted client: its pending token is refused, its browser connection closed.
	pending := callOK[api.DashboardToken](t, alice, api.ClientSubject("alice", api.VerbDashboard), api.Empty{})
	callOK[api.Empty](t, l.admin, api.AdminSubject(AdminName, api.VerbDeleteClient), api.ExporterName{Name: "alice"})
	if _, code, _ := l.exchange(pending.Token); code != http.StatusUnauthorized {
		t.Errorf("deleted client's token: %d, want 401", code)
	}
	testkit.CheckFor(t, 30*time.Second, func() error {
		if !b.nc.IsClosed() {
			return errors.New("not yet: deleted client's browser credential disconnected")
		}
		return nil
	})

	// An admin watches everything.
	tok = callOK[api.DashboardToken](t, l.admin, api.ClientSubject(AdminName, api.VerbDashboard), api.Empty{})
	if s, _, err := l.exchange(tok.Token); err != nil || fmt.Sprint(s.Watch) != "[*]" {
		t.Errorf("admin session %+v %v", s, err)
	}
}

// FuzzExchange: whatever a browser posts to /api/exchange, the answer is a clear refusal (no
// token here is valid), never a panic or a hang.
func FuzzExchange(f *testing.F) {
	f.Add([]byte(`{"token":"abc"}`))
	f.Add([]byte(`{"token":""}`))
	f.Add([]byte(`{"token":123}`))
	f.Add([]byte(`[]`))
	f.Add([]byte("\x00\xff"))
	c := &Controller{}
	f.Fuzz(func(t *testing.T, body []byte) {
		rec := httptest.NewRecorder()
		c.exchange(rec, httptest.NewRequest(http.MethodPost, "/api/exchange", bytes.NewReader(body)))
		if rec.Code != http.StatusBadRequest && rec.Code != http.StatusUnauthorized {
			t.Fatalf("body %q: status %d, want 400 or 401", body, rec.Code)
		}
		var e struct{ Error string }
		if err := json.Unmarshal(rec.Body.Bytes(), &e); err != nil || !strings.HasPrefix(e.Error, "exchange: ") {
			t.Fatalf("body %q: answer %q, want a JSON error naming the exchange", body, rec.Body.String())
		}
	})
}
