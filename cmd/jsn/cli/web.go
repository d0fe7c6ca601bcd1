package cli

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"

	"jsn.dev/jsn/bus/wire"
	"jsn.dev/jsn/client/web"
	"jsn.dev/jsn/controller/api"
)

// localWeb is the dashboard of a local session (`jsn shell --web ADDR`): the page on ADDR, and
// the session's NATS WebSocket on another loopback port, both behind one token that the URL
// carries.
type localWeb struct {
	srv   *http.Server
	ln    net.Listener
	token string
	URL   string
}

// checkWebAddr refuses a --web address that is not loopback: the token is the only protection.
func checkWebAddr(addr string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("--web %q: want HOST:PORT, e.g. 127.0.0.1:8080: %w", addr, err)
	}
	ip := net.ParseIP(host)
	if host != "localhost" && (ip == nil || !ip.IsLoopback()) {
		return fmt.Errorf("--web %q: the local dashboard listens on loopback only (127.0.0.1, ::1, localhost); "+
			"for a lab's dashboard run a controller (jsn controller run --http --websocket)", addr)
	}
	return nil
}

func newWebToken() string {
	b := make([]byte, 24)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// localSession is what the page needs of a local session (an *exporter.Local).
type localSession interface {
	WebSocketURL() string
	Describe() *wire.Description
}

// startLocalWeb serves the page of session l on addr; token is the session's WebSocket token.
func startLocalWeb(addr, name string, l localSession, token string) (*localWeb, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("--web: %w", err)
	}
	w := &localWeb{ln: ln, token: token, URL: "http://" + ln.Addr().String() + "/#token=" + token}
	w.srv = &http.Server{Handler: web.Handler(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		w.exchange(rw, r, name, l)
	})), ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = w.srv.Serve(ln) }()
	return w, nil
}

// exchange answers the page's POST api/exchange in a local session: the token of the URL buys
// the session's WebSocket URL (whose listener wants the same token) and its state.
func (w *localWeb) exchange(rw http.ResponseWriter, r *http.Request, name string, l localSession) {
	rw.Header().Set("Content-Type", "application/json")
	rw.Header().Set("Cache-Control", "no-store")
	var req struct {
		Token string `json:"token"`
	}
	if r.Method != http.MethodPost || r.URL.Path != "/api/exchange" {
		rw.WriteHeader(http.StatusNotFound)
		_ = json.NewEncoder(rw).Encode(map[string]string{"error": "POST api/exchange"})
		return
	}
	if err := json.NewDecoder(io.LimitReader(r.Body, 4096)).Decode(&req); err != nil ||
		subtle.ConstantTimeCompare([]byte(req.Token), []byte(w.token)) != 1 {
		rw.WriteHeader(http.StatusUnauthorized)
		_ = json.NewEncoder(rw).Encode(map[string]string{"error": "wrong token: open the URL jsn shell --web printed"})
		return
	}
	st := api.DashState{Epoch: "local", Seq: 1,
		Exporters: []api.DashExporter{{Name: name, Online: true, Holder: "this session", Describe: l.Describe()}},
		Leases:    []api.DashLease{{Exporter: name, Client: "this session", Status: api.StatusActive}}}
	_ = json.NewEncoder(rw).Encode(api.BrowserSession{Mode: "local", Name: "local session " + name,
		WS: l.WebSocketURL(), Token: w.token, Watch: []string{name}, State: st})
}

func (w *localWeb) Close() {
	if w != nil {
		_ = w.srv.Close()
	}
}
