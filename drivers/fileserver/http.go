package fileserver

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"jsn.dev/jsn/bus/wire"
	"jsn.dev/jsn/drivers/driver"
)

func init() {
	driver.MustRegister(driver.Info{
		Type: "fileserver.HTTP", Interface: Interface,
		Doc:     "read-only HTTP server of an exporter directory; files uploaded through jsn",
		New:     NewHTTP,
		Aliases: []string{"jumpstarter_driver_http.driver.HttpServer"},
	})
}

// HTTP is a read-only HTTP file server of root_dir (GET and HEAD, with ranges).
//
// Config (Jumpstarter's HttpServer keys):
//
//	root_dir: /var/www
//	host: ""                        # IP address to listen on; "" = every address
//	port: 8080                      # 0 picks a free one
//	timeout: 600s                   # per request (a number is seconds)
//	remove_created_on_close: true
//	advertise: ""                   # host in URLs
type HTTP struct {
	Common  `yaml:",inline"`
	Timeout time.Duration `yaml:"timeout"`

	log *slog.Logger

	mu   sync.Mutex
	ln   net.Listener // nil while not listening; guarded by mu
	srv  *http.Server
	down string
	wg   sync.WaitGroup
}

// NewHTTP is the fileserver.HTTP constructor: defaults only, no side effects.
func NewHTTP(env driver.Env) driver.Driver {
	return &HTTP{Common: Common{RootDir: "/var/www", Port: 8080, RemoveCreatedOnClose: true},
		Timeout: 600 * time.Second, log: env.Log}
}

// Validate checks the config.
func (h *HTTP) Validate() error {
	var errs []error
	h.validate(&errs)
	if h.Timeout <= 0 {
		errs = append(errs, driver.FieldErrorf("timeout", "must be more than 0, got %s", h.Timeout))
	}
	return errors.Join(errs...)
}

// Open makes root_dir and starts listening; a port that cannot be bound makes the driver
// unavailable (tried again at each reset).
func (h *HTTP) Open(ctx context.Context) error {
	h.dir = NewDir(h.RootDir, h.RemoveCreatedOnClose)
	if err := h.dir.Open(); err != nil {
		return err
	}
	h.listen()
	return nil
}

func (h *HTTP) listen() {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.ln != nil {
		return
	}
	addr := net.JoinHostPort(h.Host, strconv.Itoa(h.Port))
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		h.down = h.listenFailed("tcp", addr, err)
		h.log.Warn("http server not listening", "reason", h.down)
		return
	}
	h.ln, h.down = ln, ""
	h.srv = &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second, WriteTimeout: h.Timeout,
		ErrorLog: slog.NewLogLogger(h.log.Handler(), slog.LevelDebug)}
	srv := h.srv
	h.wg.Add(1)
	go func() {
		defer h.wg.Done()
		_ = srv.Serve(ln)
	}()
	h.log.Info("http server listening", "addr", ln.Addr().String(), "root", h.RootDir)
}

// ServeHTTP serves GET and HEAD of the files under the root.
func (h *HTTP) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "read-only: upload files with jsn (jsn fileserver put)", http.StatusMethodNotAllowed)
		return
	}
	name := strings.TrimPrefix(r.URL.Path, "/")
	f, size, err := h.dir.OpenFile(name)
	if err != nil {
		status := http.StatusForbidden
		if wire.CodeOf(err) == wire.NotFound {
			status = http.StatusNotFound
		}
		http.Error(w, err.Error(), status)
		return
	}
	defer f.Close()
	st, _ := f.Stat()
	n, _ := CleanName(name)
	cw := &countingWriter{ResponseWriter: w, report: func(sent int64) { h.dir.progress(n, sent, size) }}
	http.ServeContent(cw, r, "", st.ModTime(), f)
	h.log.Debug("http served", "file", n, "client", r.RemoteAddr, "bytes", cw.n)
}

// countingWriter reports the bytes written of a response body.
type countingWriter struct {
	http.ResponseWriter
	n      int64
	report func(int64)
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.ResponseWriter.Write(p)
	c.n += int64(n)
	c.report(c.n)
	return n, err
}

// Addr is the address the server listens on, nil when it does not.
func (h *HTTP) Addr() *net.TCPAddr {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.ln == nil {
		return nil
	}
	return h.ln.Addr().(*net.TCPAddr)
}

// Unavailable says why the server is not listening.
func (h *HTTP) Unavailable() string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.down
}

// Reset removes what the ended lease uploaded and listens again if it could not before.
func (h *HTTP) Reset(ctx context.Context) error {
	if h.dir == nil {
		return nil
	}
	h.listen()
	return h.dir.RemoveCreated()
}

// Close stops the server.
func (h *HTTP) Close() error {
	h.mu.Lock()
	srv := h.srv
	h.srv, h.ln = nil, nil
	h.mu.Unlock()
	if srv != nil {
		_ = srv.Close()
	}
	h.wg.Wait()
	if h.dir != nil {
		return h.dir.RemoveCreated()
	}
	return nil
}

// URL is http://host:port/name.
func (h *HTTP) URL(name string) (string, error) {
	n, err := CleanName(name)
	if err != nil {
		return "", bad("url", err)
	}
	a := h.Addr()
	if a == nil {
		return "", wire.Errorf(wire.Unavailable, "url: %s", h.Unavailable())
	}
	return (&url.URL{Scheme: "http", Host: net.JoinHostPort(h.advertised(a.IP), strconv.Itoa(a.Port)), Path: "/" + n}).String(), nil
}

// Methods serves jsn.fileserver.v1.
func (h *HTTP) Methods() []driver.Method { return Methods(h, Options{}) }

var (
	_ Device              = (*HTTP)(nil)
	_ Watcher             = (*HTTP)(nil)
	_ driver.Validator    = (*HTTP)(nil)
	_ driver.Availability = (*HTTP)(nil)
	_ driver.Methoder     = (*HTTP)(nil)
)
