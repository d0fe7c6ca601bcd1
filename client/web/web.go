// Package web is the jsn dashboard's page: HTML, CSS and a JavaScript bundle (the official NATS
// JavaScript client and xterm.js, pinned in ui/package-lock.json and bundled by esbuild) that the
// binary embeds, so that `go build` needs no npm. The page speaks NATS over WebSocket from the
// browser; whoever serves it (the controller's --http listener, `jsn shell --web`) answers its
// one call, POST api/exchange, which trades a one-time token for a connection (see
// docs/protocol.md, "The browser credential").
//
// The bundle is rebuilt by ui/build.sh; TestBundleUpToDate fails when it is stale.
package web

import (
	"embed"
	"io/fs"
	"net/http"
)

//go:embed static
var static embed.FS

// Static is the page's files: index.html, app.js, style.css, xterm.css.
func Static() fs.FS {
	sub, err := fs.Sub(static, "static")
	if err != nil {
		panic(err) // the embedded tree always has it
	}
	return sub
}

// Session is what api/exchange answers: how the page connects. Exactly one of JWT (with Seed) and
// Token is set.
type Session struct {
	Mode    string `json:"mode"`              // "controller" or "local"
	Name    string `json:"name"`              // who the page acts for
	WS      string `json:"ws"`                // NATS WebSocket URL (ws:// or wss://)
	JWT     string `json:"jwt,omitempty"`     // browser credential: NATS user JWT …
	Seed    string `json:"seed,omitempty"`    // … and its nkey seed
	Token   string `json:"token,omitempty"`   // local mode: the WebSocket listener's token
	Inbox   string `json:"inbox,omitempty"`   // inbox prefix the credential may receive on
	Expires string `json:"expires,omitempty"` // RFC 3339; the page logs in again after it
	// Write, when set, is the subject pattern ("{path}" = driver path) the page publishes
	// keystrokes to (a lease holder's console input).
	Write string `json:"write,omitempty"`
	State any    `json:"state,omitempty"` // the lab's state at exchange time (Lab)
}

// Lab is the state the page shows, as published on DashSubject.
type Lab struct {
	Epoch     string     `json:"epoch"` // the publisher's run; seq restarts with it
	Seq       uint64     `json:"seq"`
	Exporters []Exporter `json:"exporters"`
	Leases    []Lease    `json:"leases"`
}

// Exporter is one exporter's line.
type Exporter struct {
	Name     string            `json:"name"`
	Online   bool              `json:"online"`
	Labels   map[string]string `json:"labels,omitempty"`
	Holder   string            `json:"holder,omitempty"`
	End      string            `json:"end,omitempty"` // the lease's end, RFC 3339
	Queue    int               `json:"queue"`
	Describe any               `json:"describe,omitempty"` // wire.Description
}

// Lease is one active or queued lease.
type Lease struct {
	Exporter string `json:"exporter,omitempty"`
	Selector string `json:"selector,omitempty"`
	Client   string `json:"client"`
	Status   string `json:"status"`
	Reason   string `json:"reason,omitempty"`
	End      string `json:"end,omitempty"`
	Position int    `json:"position,omitempty"` // 1 = next, among the requests queued on the same exporter or selector
}

// Subjects the page uses besides taps.
const (
	DashSubject    = "jsn.ctl.dash.lab"     // the lab's state (JSON Lab), published on every change
	RefreshSubject = "jsn.ctl.dash.refresh" // publish anything: the state is published again
)

// Handler serves the page's files, and api (the exchange) under /api/.
func Handler(api http.Handler) http.Handler {
	mux := http.NewServeMux()
	files := http.FileServerFS(Static())
	mux.Handle("/", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-store")
		w.Header().Set("X-Content-Type-Options", "nosniff")
		w.Header().Set("Referrer-Policy", "no-referrer")
		files.ServeHTTP(w, r)
	}))
	mux.Handle("/api/", api)
	return mux
}
