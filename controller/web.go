package controller

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"reflect"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/nats-io/jwt/v2"

	"jsn.dev/jsn/bus"
	"jsn.dev/jsn/bus/wire"
	"jsn.dev/jsn/controller/api"
)

// The browser path: a one-time token (VerbDashboard) that the HTTP listener exchanges
// (POST /api/exchange) for a short-lived browser credential, a NATS user JWT for the WebSocket
// listener with the user's watch rights; and the lab's state pushed on api.DashSubject.

const (
	// TokenTTL is how long a dashboard login token may wait for its exchange.
	TokenTTL = 60 * time.Second
	// DefaultBrowserTTL is the life of a browser credential (Options.BrowserTTL).
	DefaultBrowserTTL = time.Hour
	// KindBrowser is the inbox kind of browser credentials (bus.InboxPrefix): the viewer kind,
	// shared with viewer identities, whose names are the clients' namespace.
	KindBrowser   = "v"
	dashKeepalive = 30 * time.Second
	dashMinGap    = 100 * time.Millisecond
)

// webToken is a dashboard login token's record in BucketWeb, under webTokenKey(token): any
// replica may exchange it, once.
type webToken struct {
	Kind    string    `msgpack:"kind"`
	Name    string    `msgpack:"name"`
	Lease   string    `msgpack:"lease,omitempty"` // the lease whose consoles the login may type into ("": read-only)
	Expires time.Time `msgpack:"expires"`
}

// webTokenKey is the bucket key of a login token: its SHA-256, so the bucket never holds a
// usable token.
func webTokenKey(tok string) string {
	sum := sha256.Sum256([]byte(tok))
	return "tok." + hex.EncodeToString(sum[:])
}

// browserKeyPrefix is the bucket prefix of identity name's browser credential keys.
func browserKeyPrefix(name string) string { return "key." + name + "." }

// checkWebSocket says whether the WebSocket listener o asks for is acceptable.
func checkWebSocket(o *Options) error {
	if o.WebSocket == "" {
		return nil
	}
	if o.NatsURL != "" {
		return errors.New("controller: --websocket serves the embedded server; with --nats-url, enable websocket in your nats-server's config")
	}
	host, _, err := net.SplitHostPort(o.WebSocket)
	if err != nil {
		return fmt.Errorf("controller: websocket address %q: %w", o.WebSocket, err)
	}
	if (o.WebSocketNoTLS || o.NoTLS) && !isLoopback(host) {
		return fmt.Errorf("controller: websocket address %q: a plain (no TLS) WebSocket listener must be on loopback "+
			"(127.0.0.1, ::1, localhost), behind a reverse proxy that terminates TLS; drop --websocket-no-tls to serve wss:// with the controller's certificate", o.WebSocket)
	}
	return nil
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func newWebToken() string {
	b := make([]byte, 24)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// dashboardToken answers VerbDashboard: a one-time token for who.
func (c *Controller) dashboardToken(ctx context.Context, who string, data []byte) (any, error) {
	var req api.DashboardRequest
	if err := decode(data, &req); err != nil {
		return nil, err
	}
	if req.Lease != "" {
		if _, _, err := c.leaseForWeb(ctx, who, req.Lease); err != nil {
			return nil, err
		}
	}
	return c.dashboardTokenOf(ctx, api.KindClient, who, req.Lease)
}

// viewerDashboardToken answers VerbDashboard of a viewer (jsn.ctl.v.<viewer>.dashboard): a wall
// screen logs in with its viewer config.
func (c *Controller) viewerDashboardToken(ctx context.Context, who string, data []byte) (any, error) {
	var req api.DashboardRequest
	if err := decode(data, &req); err != nil {
		return nil, err
	}
	if req.Lease != "" {
		return nil, wire.Errorf(wire.PermissionDenied, "dashboard: viewer %s holds no lease: a viewer's dashboard is read-only", who)
	}
	return c.dashboardTokenOf(ctx, api.KindViewer, who, "")
}

func (c *Controller) dashboardTokenOf(ctx context.Context, kind, who, lease string) (any, error) {
	if c.identity(kind, who) == nil {
		return nil, wire.Errorf(wire.PermissionDenied, "dashboard: %s %q: no such identity", kind, who)
	}
	tok := newWebToken()
	exp := time.Now().Add(TokenTTL)
	b, err := wire.Marshal(&webToken{Kind: kind, Name: who, Lease: lease, Expires: exp})
	if err != nil {
		return nil, err
	}
	// The key expires with the token (plus a margin: the record's own time decides).
	if _, err := c.web.Create(ctx, webTokenKey(tok), b, TokenTTL+time.Second); err != nil {
		return nil, wire.Errorf(wire.Unavailable, "dashboard: storing the login token: %v", err)
	}
	out := api.DashboardToken{Token: tok, Expires: exp.UTC().Format(time.RFC3339)}
	if base := c.dashboardURL(); base != "" {
		out.URL = base + "#token=" + tok
	}
	return out, nil
}

// dashboardURL is the page's URL ("" when the controller serves no dashboard).
func (c *Controller) dashboardURL() string {
	if c.o.Dashboard == nil || c.httpAddr == "" {
		return ""
	}
	if c.o.DashboardURL != "" {
		return strings.TrimSuffix(c.o.DashboardURL, "/") + "/"
	}
	if c.o.HTTPTLS {
		return "https://" + c.httpAddr + "/"
	}
	return "http://" + c.httpAddr + "/"
}

// HTTPAddr is the address the HTTP listener got ("" without one).
func (c *Controller) HTTPAddr() string { return c.httpAddr }

// watchRights lists the exporters the identity may watch: an admin all ("*"); a viewer or a
// client its Watch list (jsn admin create … --watch) and the exporters it holds a lease on now.
func (c *Controller) watchRights(kind, name string) []string {
	id := c.identity(kind, name)
	if id == nil {
		return nil
	}
	if id.Admin || slices.Contains(id.Watch, "*") {
		return []string{"*"}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	out := slices.Clone(id.Watch) // a viewer's, or a client's --watch
	for e, a := range c.active {
		if a.live() && (a.rec.Lease.Client == name || a.rec.Shares[name] != nil) {
			out = append(out, e)
		}
	}
	sort.Strings(out)
	return slices.Compact(out)
}

// BrowserPermissions are the NATS permissions of a browser credential of name that may watch
// the exporters in watch ("*": all): the dashboard's state subject and refresh, and per watched
// exporter its taps (jsn.tap.<e>.>, history replies included) and history requests
// (jsn.x.<e>.history.>). Nothing else: no inbox, no call, no controller API.
func BrowserPermissions(watch []string) jwt.Permissions {
	var p jwt.Permissions
	p.Pub.Allow.Add(api.DashRefreshSubject)
	p.Sub.Allow.Add(api.DashSubject)
	for _, e := range watch {
		p.Pub.Allow.Add("jsn.x." + e + ".history.>")
		p.Sub.Allow.Add("jsn.tap." + e + ".>")
	}
	return p
}

// MintBrowser mints a browser credential for name (see BrowserPermissions) expiring at expires.
func (a *Authority) MintBrowser(name string, watch []string, expires time.Time) (*api.Credential, string, error) {
	return a.MintBrowserWrite(name, watch, nil, expires)
}

// exchange serves POST /api/exchange: {"token": …} → api.BrowserSession.
func (c *Controller) exchange(w http.ResponseWriter, r *http.Request) {
	fail := func(code int, format string, args ...any) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(code)
		_ = json.NewEncoder(w).Encode(map[string]string{"error": fmt.Sprintf(format, args...)})
	}
	if r.Method != http.MethodPost {
		fail(http.StatusMethodNotAllowed, "exchange: POST a JSON {\"token\": …}")
		return
	}
	var req struct {
		Token string `json:"token"`
	}
	if err := json.NewDecoder(io.LimitReader(r.Body, 4096)).Decode(&req); err != nil || req.Token == "" {
		fail(http.StatusBadRequest, "exchange: want a JSON body {\"token\": …}")
		return
	}
	t, ok := c.takeWebToken(r.Context(), req.Token)
	if !ok || time.Now().After(t.Expires) {
		fail(http.StatusUnauthorized, "exchange: the login token is unknown, used or expired: run 'jsn dashboard' again")
		return
	}
	if c.identity(t.Kind, t.Name) == nil {
		fail(http.StatusUnauthorized, "exchange: %s %q no longer exists", t.Kind, t.Name)
		return
	}
	ws := c.webSocketURL(r)
	if ws == "" {
		fail(http.StatusServiceUnavailable, "exchange: the controller serves no NATS WebSocket (jsn controller run --websocket ADDR)")
		return
	}
	watch := c.watchRights(t.Kind, t.Name)
	exp := time.Now().Add(c.o.BrowserTTL)
	var write *api.BrowserWrite
	if t.Lease != "" {
		var err error
		if write, exp, err = c.webWrite(r.Context(), t.Name, t.Lease, exp); err != nil {
			fail(http.StatusUnauthorized, "exchange: %v", err)
			return
		}
	}
	cred, pub, err := c.auth.MintBrowserWrite(t.Name, watch, write, exp)
	if err != nil {
		fail(http.StatusInternalServerError, "exchange: %v", err)
		return
	}
	if write != nil {
		// Its key goes with the lease: the lease's end revokes it.
		if err := c.recordWebKey(r.Context(), t.Name, t.Lease, pub, exp); err != nil {
			fail(http.StatusUnauthorized, "exchange: %v", err)
			return
		}
	}
	// Any replica that deletes the identity revokes this credential with it.
	if ttl := time.Until(exp); ttl > 0 {
		kb, _ := wire.Marshal(exp)
		if _, err := c.web.Create(r.Context(), browserKeyPrefix(t.Name)+pub, kb, ttl+time.Minute); err != nil {
			fail(http.StatusServiceUnavailable, "exchange: recording the browser credential: %v", err)
			return
		}
	}
	st, _ := c.dashState()
	c.dashMu.Lock()
	st.Epoch, st.Seq = c.id, c.dashSeq
	c.dashMu.Unlock()
	out := api.BrowserSession{Mode: "controller", Name: t.Name, WS: ws, JWT: cred.JWT, Seed: cred.Seed,
		Expires: exp.UTC().Format(time.RFC3339), Watch: watch, Write: write, State: st}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	_ = json.NewEncoder(w).Encode(out)
}

// takeWebToken takes login token tok out of the bucket: of two exchanges of one token, on any
// replicas, at most one gets it.
func (c *Controller) takeWebToken(ctx context.Context, tok string) (webToken, bool) {
	var t webToken
	if c.web == nil {
		return t, false // not started (FuzzExchange's bare controller): no token exists
	}
	key := webTokenKey(tok)
	e, err := c.web.Get(ctx, key)
	if err != nil || wire.Unmarshal(e.Value, &t) != nil {
		return t, false
	}
	if _, err := c.web.Delete(ctx, key, e.Revision); err != nil {
		return t, false // another exchange took it first (or the bucket is unreachable)
	}
	return t, true
}

// browserKeysOf adds the browser credentials of identity name to keys (deleting it revokes
// them with it), whichever replica minted them, and forgets them.
func (c *Controller) browserKeysOf(ctx context.Context, keys map[string]time.Time, name string) {
	all, err := c.web.Keys(ctx)
	if err != nil {
		return // none (or the bucket is unreachable: the credentials expire on their own)
	}
	prefix := browserKeyPrefix(name)
	for _, k := range all {
		if !strings.HasPrefix(k, prefix) {
			continue
		}
		var exp time.Time
		if e, err := c.web.Get(ctx, k); err == nil && wire.Unmarshal(e.Value, &exp) == nil {
			keys[strings.TrimPrefix(k, prefix)] = exp
		}
		_, _ = c.web.Delete(ctx, k, 0)
	}
}

// webSocketURL is the URL browsers connect to: Options.WebSocketURL, or the listener's with the
// host the browser reached the HTTP listener by when the listener is on every address.
func (c *Controller) webSocketURL(r *http.Request) string {
	if c.o.WebSocketURL != "" {
		return c.o.WebSocketURL
	}
	if c.srv == nil {
		return ""
	}
	s := c.srv.WebSocketURL()
	if s == "" {
		return ""
	}
	u, err := url.Parse(s)
	if err != nil {
		return s
	}
	if ip := net.ParseIP(u.Hostname()); ip != nil && ip.IsUnspecified() {
		host := r.Host
		if h, _, err := net.SplitHostPort(r.Host); err == nil {
			host = h
		}
		u.Host = net.JoinHostPort(host, u.Port())
	}
	return u.String()
}

// dashState computes the lab's state (Epoch and Seq unset).
func (c *Controller) dashState() (api.DashState, error) {
	st := api.DashState{Exporters: []api.DashExporter{}, Leases: []api.DashLease{}}
	c.mu.Lock()
	defer c.mu.Unlock()
	now := time.Now()
	queue := map[string]int{}
	var queued []api.Lease
	for _, p := range c.pending {
		if p.rec.Lease.Status == api.StatusQueued {
			queued = append(queued, p.rec.Lease)
		}
	}
	sort.Slice(queued, func(i, j int) bool {
		a, b := queued[i], queued[j]
		if a.Priority != b.Priority {
			return a.Priority > b.Priority
		}
		return a.Created.Before(b.Created)
	})
	for _, name := range c.sortedNames() {
		e := c.exps[name]
		x := api.DashExporter{Name: name, Online: now.Sub(e.LastSeen) < c.o.OfflineAfter, Labels: e.Labels}
		if e.Describe != nil {
			x.Describe = e.Describe
		}
		if a := c.active[name]; a.live() {
			x.Holder = a.rec.Lease.Client
			x.End = a.rec.Lease.End.UTC().Format(time.RFC3339)
			st.Leases = append(st.Leases, api.DashLease{Exporter: name, Client: a.rec.Lease.Client,
				Status: api.StatusActive, End: x.End})
		}
		st.Exporters = append(st.Exporters, x)
	}
	for _, l := range queued {
		key := "e:" + l.Exporter
		if l.Exporter == "" {
			key = "s:" + l.Selector
		}
		queue[key]++
		st.Leases = append(st.Leases, api.DashLease{Exporter: l.Exporter, Selector: l.Selector, Client: l.Client,
			Status: api.StatusQueued, Reason: l.Reason, Position: queue[key]})
	}
	for i := range st.Exporters {
		st.Exporters[i].Queue = queue["e:"+st.Exporters[i].Name]
	}
	return st, nil
}

// publishDash publishes the lab's state on api.DashSubject when it changed, when asked
// (refresh) or every dashKeepalive; only the scheduling replica does.
func (c *Controller) publishDash(ctx context.Context, refresh <-chan struct{}) {
	defer c.wg.Done()
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	var last api.DashState
	var sent time.Time
	asked := false
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		case <-refresh:
			asked = true
		}
		c.mu.Lock()
		lead := c.isLeader
		c.mu.Unlock()
		if !lead {
			continue
		}
		if time.Since(sent) < dashMinGap {
			continue
		}
		st, err := c.dashState()
		if err != nil {
			continue
		}
		if !asked && time.Since(sent) < dashKeepalive && reflect.DeepEqual(st, last) {
			continue
		}
		last, asked, sent = st, false, time.Now()
		c.dashMu.Lock()
		c.dashSeq++
		st.Epoch, st.Seq = c.id, c.dashSeq
		c.dashMu.Unlock()
		b, err := json.Marshal(st)
		if err != nil {
			continue
		}
		if err := c.conn.Publish(api.DashSubject, nil, b); err != nil {
			c.log.Debug("publish dashboard state", "err", err)
		}
	}
}

// startDash subscribes to refresh requests and starts the publisher.
func (c *Controller) startDash(ctx context.Context) error {
	refresh := make(chan struct{}, 1)
	if _, err := c.conn.Subscribe(api.DashRefreshSubject, "", func(*bus.Msg) {
		select {
		case refresh <- struct{}{}:
		default:
		}
	}); err != nil {
		return fmt.Errorf("controller: %w", err)
	}
	c.wg.Add(1)
	go c.publishDash(ctx, refresh)
	return nil
}

// wsTLS is the WebSocket listener's TLS: the NATS listener's, unless plain is asked for.
func wsTLS(listener *tls.Config, plain bool) *tls.Config {
	if plain {
		return nil
	}
	return listener
}
