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
