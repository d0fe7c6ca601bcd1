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

// startLocalWeb serves the page of session l on addr; token is the session's WebSocket token,
// lease the session's lease (the page types into the consoles under it).
func startLocalWeb(addr, name, lease string, l localSession, token string) (*localWeb, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("--web: %w", err)
	}
	w := &localWeb{ln: ln, token: token, URL: "http://" + ln.Addr().String() + "/#token=" + token}
	w.srv = &http.Server{Handler: web.Handler(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		w.exchange(rw, r, name, lease, l)
	})), ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = w.srv.Serve(ln) }()
	return w, nil
}

// exchange answers the page's POST api/exchange in a local session: the token of the URL buys
// the session's WebSocket URL (whose listener wants the same token) and its state.
func (w *localWeb) exchange(rw http.ResponseWriter, r *http.Request, name, lease string, l localSession) {
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
	d := l.Describe()
	st := api.DashState{Epoch: "local", Seq: 1,
		Exporters: []api.DashExporter{{Name: name, Online: true, Holder: "this session", Describe: d}},
		Leases:    []api.DashLease{{Exporter: name, Client: "this session", Status: api.StatusActive}}}
	var write *api.BrowserWrite
	// The session holds its lease: the page may type into every console under it.
	if consoles := localConsoles(d.Drivers, nil); len(consoles) > 0 && lease != "" {
		// The exporter names the stream's subjects after the token below the lease's inbox in
		// the opening's reply subject (wire.StreamToken): "web" here.
		write = &api.BrowserWrite{Exporter: name, Lease: lease, Inbox: "_INBOX_l." + name + "." + lease + ".web.w" + newWebToken()[:8],
			Stream: wire.StreamToken(lease, "web"), Consoles: consoles, Method: "connect"}
	}
	_ = json.NewEncoder(rw).Encode(api.BrowserSession{Mode: "local", Name: "local session " + name,
		WS: l.WebSocketURL(), Token: w.token, Watch: []string{name}, Write: write, State: st})
}

// localConsoles lists the serial consoles (jsn.serial.v1 with a connect byte stream) of a tree.
func localConsoles(ns []*wire.NodeDesc, out []string) []string {
	for _, n := range ns {
		if n.Interface == "jsn.serial.v1" && n.Ref == "" {
			for _, m := range n.Methods {
				if m.Name == "connect" && m.Kind == wire.KindByteStream {
					out = append(out, n.Path)
				}
			}
		}
		out = localConsoles(n.Children, out)
	}
	return out
}

func (w *localWeb) Close() {
	if w != nil {
		_ = w.srv.Close()
	}
}
