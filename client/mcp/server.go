package mcp

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/google/jsonschema-go/jsonschema"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"jsn.dev/jsn/bus/wire"
	"jsn.dev/jsn/client/remote"
	"jsn.dev/jsn/drivers/serial"
	"jsn.dev/jsn/drivers/storage"
	"jsn.dev/jsn/drivers/video"
)

// Server is jsn's MCP server: the tools an agent drives a lab with.
type Server struct {
	lab     Lab
	version string

	mu     sync.Mutex
	leases map[string]*held // by lease id
}

// held is a lease the server holds and, once used, its exporter connection.
type held struct {
	lease *Lease
	ex    remote.Exporter
}

// New returns a server on lab; version is reported to clients.
func New(lab Lab, version string) *Server {
	s := &Server{lab: lab, version: version, leases: map[string]*held{}}
	for _, l := range lab.Held() {
		s.leases[l.ID] = &held{lease: l}
	}
	return s
}

// Close closes the exporter connections; leases requested through the server are released.
func (s *Server) Close(ctx context.Context) error {
	s.mu.Lock()
	hs := s.leases
	s.leases = map[string]*held{}
	s.mu.Unlock()
	var errs []error
	for _, h := range hs {
		if h.ex != nil {
			_ = h.ex.Close()
		}
		if !slices.ContainsFunc(s.lab.Held(), func(l *Lease) bool { return l.ID == h.lease.ID }) {
			errs = append(errs, s.lab.Release(ctx, h.lease.ID))
		}
	}
	return errors.Join(errs...)
}

// MCP returns the MCP server with jsn's tools.
func (s *Server) MCP() *mcp.Server {
	srv := mcp.NewServer(&mcp.Implementation{Name: "jsn", Title: "jsn lab", Version: s.version}, &mcp.ServerOptions{
		Instructions: "Drive lab hardware with jsn. Find a board with list_exporters, lease it with request_lease " +
			"(a local session is leased already), learn its drivers with describe, then call methods, read and " +
			"expect on its console, flash an image and take screenshots. Release the lease when done.",
	})
	mcp.AddTool(srv, &mcp.Tool{Name: "list_exporters", Description: "List the lab's exporters (boards): name, labels, online, who holds it."}, s.listExporters)
	mcp.AddTool(srv, &mcp.Tool{Name: "request_lease", Description: "Lease an exporter by name or by label selector (board=rpi4) for a duration; " +
		"with wait, wait that long in the queue. Returns the lease id the other tools take."}, s.requestLease)
	mcp.AddTool(srv, &mcp.Tool{Name: "release_lease", Description: "Release a lease (the only one held when lease is omitted)."}, s.releaseLease)
	mcp.AddTool(srv, &mcp.Tool{Name: "describe", Description: "The driver tree of the leased exporter: each driver's path, interface, " +
		"methods, their kinds and typed arguments."}, s.describe)
	// (The result's schema is given: the one inferred for "any" is "true", which some clients
	// refuse.)
	mcp.AddTool(srv, &mcp.Tool{Name: "call", Description: "Call a driver method (kind call) with positional arguments, checked against describe: " +
		"int, float, bool, string, duration (\"1s\" or nanoseconds), bytes (a string).",
		OutputSchema: &jsonschema.Schema{Type: "object", Required: []string{"result"}, Properties: map[string]*jsonschema.Schema{
			"result": {Description: "what the method returned (null for nothing; bytes as text, or {base64} when binary)"}}},
	}, s.call)
	mcp.AddTool(srv, &mcp.Tool{Name: "console_expect", Description: "Optionally send text to a serial console, then wait until its output " +
		"matches a regular expression (Go RE2 syntax) or the timeout passes; returns the match and the output read."}, s.consoleExpect)
	mcp.AddTool(srv, &mcp.Tool{Name: "console_log", Description: "What a serial console printed recently (its history), newest last."}, s.consoleLog)
	mcp.AddTool(srv, &mcp.Tool{Name: "flash", Description: "Write a disk image to a storage driver (SD card, eMMC mux): a file on the MCP " +
		"server's host (compressed .xz/.gz/.zst are fine) or a URL the exporter downloads."}, s.flash)
	mcp.AddTool(srv, &mcp.Tool{Name: "screenshot", Description: "A PNG snapshot of a video driver's screen."}, s.screenshot)
	return srv
}

// Serve runs the server on in and out (newline-delimited JSON-RPC, MCP's stdio transport) until
// ctx ends or the client goes away (in ends).
func (s *Server) Serve(ctx context.Context, in io.Reader, out io.Writer) error {
	err := s.MCP().Run(ctx, &mcp.IOTransport{Reader: io.NopCloser(in), Writer: nopWriteCloser{out}})
	if errors.Is(err, io.EOF) || ctx.Err() != nil {
		return nil
	}
	return err
}

type nopWriteCloser struct{ io.Writer }

func (nopWriteCloser) Close() error { return nil }

// Handler returns the streamable HTTP handler, which answers only requests carrying
// "Authorization: Bearer <token>".
func (s *Server) Handler(token string) http.Handler {
	srv := s.MCP()
	h := mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return srv }, nil)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if token == "" || r.Header.Get("Authorization") != "Bearer "+token {
			http.Error(w, "jsn mcp: missing or wrong bearer token (see the token file jsn mcp --http wrote)", http.StatusUnauthorized)
			return
		}
		h.ServeHTTP(w, r)
	})
}

// --- leases ---

type listIn struct {
	Selector string `json:"selector,omitempty" jsonschema:"label selector like board=rpi4 (optional)"`
}

type listOut struct {
	Exporters []Exporter `json:"exporters"`
}

func (s *Server) listExporters(ctx context.Context, _ *mcp.CallToolRequest, in listIn) (*mcp.CallToolResult, listOut, error) {
	xs, err := s.lab.Exporters(ctx, in.Selector)
	if err != nil {
		return nil, listOut{}, fail("list_exporters", err)
	}
	return nil, listOut{Exporters: xs}, nil
}

type leaseIn struct {
	Exporter string `json:"exporter,omitempty" jsonschema:"exporter name (or give selector)"`
	Selector string `json:"selector,omitempty" jsonschema:"label selector like board=rpi4 (or give exporter)"`
	Duration string `json:"duration,omitempty" jsonschema:"how long, like 30m (default 30m)"`
	Wait     string `json:"wait,omitempty" jsonschema:"how long to wait in the queue, like 5m (default: do not wait)"`
}

func (s *Server) requestLease(ctx context.Context, _ *mcp.CallToolRequest, in leaseIn) (*mcp.CallToolResult, *Lease, error) {
	d, err := parseDuration("duration", in.Duration, 30*time.Minute)
	if err != nil {
		return nil, nil, err
	}
	wait, err := parseDuration("wait", in.Wait, 0)
	if err != nil {
		return nil, nil, err
	}
	l, err := s.lab.Lease(ctx, in.Exporter, in.Selector, d, wait)
	if err != nil {
		return nil, nil, fail("request_lease", err)
	}
	s.mu.Lock()
	if s.leases[l.ID] == nil {
		s.leases[l.ID] = &held{lease: l}
	}
	s.mu.Unlock()
	return nil, l, nil
}

type releaseIn struct {
	Lease string `json:"lease,omitempty" jsonschema:"lease id (default: the only lease held)"`
}

type okOut struct {
	Released string `json:"released"`
}

func (s *Server) releaseLease(ctx context.Context, _ *mcp.CallToolRequest, in releaseIn) (*mcp.CallToolResult, okOut, error) {
	h, err := s.pick(in.Lease)
	if err != nil {
		return nil, okOut{}, err
	}
	if err := s.lab.Release(ctx, h.lease.ID); err != nil {
		return nil, okOut{}, fail("release_lease", err)
	}
	s.mu.Lock()
	delete(s.leases, h.lease.ID)
	s.mu.Unlock()
	if h.ex != nil {
		_ = h.ex.Close()
	}
	return nil, okOut{Released: h.lease.ID}, nil
}

// pick returns lease id, or the only lease held when id is "".
func (s *Server) pick(id string) (*held, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if id != "" {
		if h := s.leases[id]; h != nil {
			return h, nil
		}
		return nil, fmt.Errorf("no lease %q held by this server; held: %s", id, s.heldList())
	}
	switch len(s.leases) {
	case 0:
		return nil, errors.New("no lease: request one first with request_lease (list_exporters shows which exporters are free)")
	case 1:
		for _, h := range s.leases {
			return h, nil
		}
	}
	return nil, fmt.Errorf("several leases held (%s): say which with lease", s.heldList())
}

func (s *Server) heldList() string {
	if len(s.leases) == 0 {
		return "none"
	}
	var ids []string
	for id, h := range s.leases {
		ids = append(ids, id+" ("+h.lease.Exporter+")")
	}
	sort.Strings(ids)
	return strings.Join(ids, ", ")
}

// exporter returns the connection to the exporter of lease id (default the only one).
func (s *Server) exporter(ctx context.Context, id string) (remote.Exporter, error) {
	h, err := s.pick(id)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	ex := h.ex
	s.mu.Unlock()
	if ex != nil {
		return ex, nil
	}
	ex, err = s.lab.Dial(ctx, h.lease)
	if err != nil {
		return nil, fail("lease "+h.lease.ID, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if h.ex != nil {
		_ = ex.Close()
		return h.ex, nil
	}
	h.ex = ex
	return ex, nil
}

// --- describe and call ---

type describeIn struct {
	Lease string `json:"lease,omitempty" jsonschema:"lease id (default: the only lease held)"`
}

// Driver is one driver as describe shows it.
type Driver struct {
	Path        string   `json:"path"`
	Interface   string   `json:"interface,omitempty"`
	Type        string   `json:"type"`
	Doc         string   `json:"doc,omitempty"`
	Unavailable string   `json:"unavailable,omitempty"`
	Methods     []Method `json:"methods,omitempty"`
}

// Method is one method as describe shows it.
type Method struct {
	Name    string `json:"name"`
	Kind    string `json:"kind" jsonschema:"call (use the call tool), server-stream or byte-stream (use the dedicated tools)"`
	Args    string `json:"args,omitempty" jsonschema:"positional arguments, name:type, optional ones in brackets"`
	Returns string `json:"returns,omitempty"`
	Doc     string `json:"doc,omitempty"`
}

type describeOut struct {
	Exporter string   `json:"exporter"`
	Drivers  []Driver `json:"drivers"`
}

func (s *Server) describe(ctx context.Context, _ *mcp.CallToolRequest, in describeIn) (*mcp.CallToolResult, describeOut, error) {
	ex, err := s.exporter(ctx, in.Lease)
	if err != nil {
		return nil, describeOut{}, err
	}
	d, err := ex.Describe(ctx)
	if err != nil {
		return nil, describeOut{}, fail("describe", err)
	}
	out := describeOut{Exporter: d.Exporter, Drivers: []Driver{}}
	var walk func(ns []*wire.NodeDesc)
	walk = func(ns []*wire.NodeDesc) {
		for _, n := range ns {
			dr := Driver{Path: n.Path, Interface: n.Interface, Type: n.Type, Doc: n.Doc, Unavailable: n.Unavailable}
			for _, m := range n.Methods {
				dr.Methods = append(dr.Methods, Method{Name: m.Name, Kind: string(m.Kind), Args: argList(m), Returns: string(m.Returns), Doc: m.Doc})
			}
			out.Drivers = append(out.Drivers, dr)
			walk(n.Children)
		}
	}
	walk(d.Drivers)
	return nil, out, nil
}

func argList(m *wire.MethodDesc) string {
	var parts []string
	for _, a := range m.Args {
		p := a.Name + ":" + string(a.Type)
		if a.Optional {
			p = "[" + p + "]"
		}
		parts = append(parts, p)
	}
	return strings.Join(parts, ", ")
}

type callIn struct {
	Lease  string `json:"lease,omitempty" jsonschema:"lease id (default: the only lease held)"`
	Driver string `json:"driver" jsonschema:"driver path from describe, like power or harness.power"`
	Method string `json:"method" jsonschema:"method name from describe, like on"`
	Args   []any  `json:"args,omitempty" jsonschema:"positional arguments, typed as describe says"`
}

type callOut struct {
	Result any `json:"result"`
}

func (s *Server) call(ctx context.Context, _ *mcp.CallToolRequest, in callIn) (*mcp.CallToolResult, callOut, error) {
	ex, err := s.exporter(ctx, in.Lease)
	if err != nil {
		return nil, callOut{}, err
	}
	d, err := ex.Describe(ctx)
	if err != nil {
		return nil, callOut{}, fail("describe", err)
	}
	n := d.Find(in.Driver)
	if n == nil {
		return nil, callOut{}, fmt.Errorf("no driver %q on exporter %s; drivers: %s", in.Driver, d.Exporter, strings.Join(driverPaths(d), ", "))
	}
	m := n.Method(in.Method)
	if m == nil {
		var names []string
		for _, x := range n.Methods {
			if x.Kind == wire.KindCall {
				names = append(names, x.Name)
			}
		}
		return nil, callOut{}, fmt.Errorf("driver %s has no method %q; its methods: %s", in.Driver, in.Method, strings.Join(names, ", "))
	}
	if m.Kind != wire.KindCall {
		return nil, callOut{}, fmt.Errorf("%s.%s is a %s method: the call tool calls plain methods only; use console_expect/console_log for a console, flash for storage, screenshot for video",
			in.Driver, in.Method, m.Kind)
	}
	args, err := convertArgs(in.Driver+"."+in.Method, m, in.Args)
	if err != nil {
		return nil, callOut{}, err
	}
	res, err := ex.Driver(in.Driver).Call(ctx, in.Method, args...)
	if err != nil {
		return nil, callOut{}, fail(in.Driver+"."+in.Method, err)
	}
	return nil, callOut{Result: jsonable(res)}, nil
}

func driverPaths(d *wire.Description) []string {
	var out []string
	var walk func(ns []*wire.NodeDesc)
	walk = func(ns []*wire.NodeDesc) {
		for _, n := range ns {
			out = append(out, n.Path)
			walk(n.Children)
		}
	}
	walk(d.Drivers)
	return out
}

// convertArgs checks JSON arguments against m's declared types and converts them to what the
// wire carries.
func convertArgs(name string, m *wire.MethodDesc, raw []any) ([]any, error) {
	minN := 0
	for i, a := range m.Args {
		if !a.Optional {
			minN = i + 1
		}
	}
	if len(raw) < minN || len(raw) > len(m.Args) {
		want := fmt.Sprintf("%d", minN)
		if len(m.Args) != minN {
			want = fmt.Sprintf("%d to %d", minN, len(m.Args))
		}
		sig := argList(m)
		if sig == "" {
			sig = "none"
		}
		return nil, fmt.Errorf("%s takes %s arguments (%s), got %d", name, want, sig, len(raw))
	}
	out := make([]any, len(raw))
	for i, v := range raw {
		a := m.Args[i]
		c, err := convertArg(a.Type, v)
		if err != nil {
			return nil, fmt.Errorf("%s: argument %d (%s): want %s, got %s", name, i+1, a.Name, a.Type, err)
		}
		out[i] = c
	}
	return out, nil
}

func convertArg(t wire.Type, v any) (any, error) {
	got := func() error { return fmt.Errorf("%s %s", jsonType(v), short(v)) }
	switch t {
	case wire.TypeString:
		if s, ok := v.(string); ok {
			return s, nil
		}
	case wire.TypeInt:
		if f, ok := v.(float64); ok && f == float64(int64(f)) {
			return int64(f), nil
		}
	case wire.TypeFloat:
		if f, ok := v.(float64); ok {
			return f, nil
		}
	case wire.TypeBool:
		if b, ok := v.(bool); ok {
			return b, nil
		}
	case wire.TypeBytes:
		if s, ok := v.(string); ok {
			return []byte(s), nil
		}
	case wire.TypeDuration:
		switch x := v.(type) {
		case string:
			d, err := time.ParseDuration(x)
			if err != nil {
				return nil, fmt.Errorf("string %q, which is not a duration like 1s or 500ms", x)
			}
			return int64(d), nil
		case float64:
			if x == float64(int64(x)) {
				return int64(x), nil
			}
		}
	default:
		return v, nil
	}
	return nil, got()
}

func jsonType(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case string:
		return "string"
	case float64:
		return "number"
	case bool:
		return "boolean"
	case []any:
		return "array"
	case map[string]any:
		return "object"
	}
	return fmt.Sprintf("%T", v)
}

func short(v any) string {
	s := fmt.Sprintf("%v", v)
	if _, ok := v.(string); ok {
		s = fmt.Sprintf("%q", v)
	}
	if len(s) > 40 {
		s = s[:40] + "…"
	}
	return s
}

// jsonable turns a decoded msgpack value into one JSON can carry (bytes as text when UTF-8, else
// base64; maps with string keys).
func jsonable(v any) any {
	switch x := v.(type) {
	case []byte:
		if isText(x) {
			return string(x)
		}
		return map[string]any{"base64": base64.StdEncoding.EncodeToString(x)}
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = jsonable(e)
		}
		return out
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			out[k] = jsonable(e)
		}
		return out
	case map[any]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			out[fmt.Sprint(k)] = jsonable(e)
		}
		return out
	case time.Duration:
		return x.String()
	}
	return v
}

func isText(b []byte) bool {
	s := string(b)
	if strings.ToValidUTF8(s, "\uFFFD") != s {
		return false
	}
	for _, r := range s {
		if r < 0x20 && r != '\n' && r != '\r' && r != '\t' {
			return false
		}
	}
	return true
}

// --- capabilities: console, storage, video ---

// node picks the driver of iface (or one of also) on ex: the one at path, or the only one.
func node(ctx context.Context, ex remote.Exporter, iface, noun, path string, also ...string) (string, error) {
	d, err := ex.Describe(ctx)
	if err != nil {
		return "", fail("describe", err)
	}
	ifaces := append([]string{iface}, also...)
	var paths []string
	for _, i := range ifaces {
		for _, n := range d.WithInterface(i) {
			paths = append(paths, n.Path)
		}
	}
	if path != "" {
		n := d.Find(path)
		if n == nil || !slices.Contains(ifaces, n.Interface) {
			return "", fmt.Errorf("no %s driver %q on exporter %s; %s drivers: %s", noun, path, d.Exporter, noun, listOrNone(paths))
		}
		return path, nil
	}
	switch len(paths) {
	case 0:
		return "", fmt.Errorf("exporter %s has no %s driver (%s); describe lists its drivers", d.Exporter, noun, iface)
	case 1:
		return paths[0], nil
	}
	return "", fmt.Errorf("exporter %s has several %s drivers (%s): say which with driver", d.Exporter, noun, strings.Join(paths, ", "))
}

func listOrNone(xs []string) string {
	if len(xs) == 0 {
		return "none"
	}
	return strings.Join(xs, ", ")
}

type expectIn struct {
	Lease   string `json:"lease,omitempty" jsonschema:"lease id (default: the only lease held)"`
	Driver  string `json:"driver,omitempty" jsonschema:"serial driver path (default: the only one)"`
	Pattern string `json:"pattern" jsonschema:"regular expression (RE2) to wait for, like login: or U-Boot \\d+"`
	Send    string `json:"send,omitempty" jsonschema:"text to write first, like a command and \\n"`
	Timeout string `json:"timeout,omitempty" jsonschema:"how long to wait, like 30s (default 30s)"`
}

type expectOut struct {
	Match  string `json:"match"`
	Output string `json:"output" jsonschema:"what the console printed up to the end of the match"`
}

func (s *Server) consoleExpect(ctx context.Context, _ *mcp.CallToolRequest, in expectIn) (*mcp.CallToolResult, expectOut, error) {
	re, err := regexp.Compile(in.Pattern)
	if err != nil {
		return nil, expectOut{}, fmt.Errorf("pattern %q: %v", in.Pattern, err)
	}
	if in.Pattern == "" {
		return nil, expectOut{}, errors.New("pattern: give a regular expression to wait for")
	}
	timeout, err := parseDuration("timeout", in.Timeout, 30*time.Second)
	if err != nil {
		return nil, expectOut{}, err
	}
	ex, err := s.exporter(ctx, in.Lease)
	if err != nil {
		return nil, expectOut{}, err
	}
	path, err := node(ctx, ex, serial.Interface, "serial", in.Driver)
	if err != nil {
		return nil, expectOut{}, err
	}
	c := serial.NewClient(ex.Driver(path))
	tctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	st, err := c.Connect(tctx)
	if err != nil {
		return nil, expectOut{}, fail(path+".connect", err)
	}
	defer st.Close()
	match, tail, err := c.Expect(tctx, st, re, []byte(in.Send))
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil {
			return nil, expectOut{}, fmt.Errorf("console %s: %q not seen within %v; it printed meanwhile: %q", path, in.Pattern, timeout, lastBytes(tail, 2000))
		}
		return nil, expectOut{}, fail("console "+path, err)
	}
	return nil, expectOut{Match: string(match), Output: string(tail)}, nil
}

func lastBytes(b []byte, n int) string {
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(b)
}

type logIn struct {
	Lease    string `json:"lease,omitempty" jsonschema:"lease id (default: the only lease held)"`
	Driver   string `json:"driver,omitempty" jsonschema:"serial driver path (default: the only one)"`
	Since    string `json:"since,omitempty" jsonschema:"only the output of the last while, like 5m (default: all recorded)"`
	MaxBytes int    `json:"max_bytes,omitempty" jsonschema:"at most this many newest bytes (default 16384)"`
}

type logOut struct {
	Log       string `json:"log"`
	Truncated bool   `json:"truncated,omitempty" jsonschema:"older output was left out (max_bytes)"`
}

func (s *Server) consoleLog(ctx context.Context, _ *mcp.CallToolRequest, in logIn) (*mcp.CallToolResult, logOut, error) {
	since, err := parseDuration("since", in.Since, 0)
	if err != nil {
		return nil, logOut{}, err
	}
	if in.MaxBytes < 0 {
		return nil, logOut{}, fmt.Errorf("max_bytes %d: want a positive number", in.MaxBytes)
	}
	if in.MaxBytes == 0 {
		in.MaxBytes = 16 << 10
	}
	ex, err := s.exporter(ctx, in.Lease)
	if err != nil {
		return nil, logOut{}, err
	}
	path, err := node(ctx, ex, serial.Interface, "serial", in.Driver)
	if err != nil {
		return nil, logOut{}, err
	}
	b, err := serial.NewClient(ex.Driver(path)).Log(ctx, since)
	if err != nil {
		return nil, logOut{}, fail(path+".log", err)
	}
	out := logOut{}
	if len(b) > in.MaxBytes {
		b, out.Truncated = b[len(b)-in.MaxBytes:], true
	}
	out.Log = strings.ToValidUTF8(string(b), "\uFFFD")
	return nil, out, nil
}

type flashIn struct {
	Lease  string `json:"lease,omitempty" jsonschema:"lease id (default: the only lease held)"`
	Driver string `json:"driver,omitempty" jsonschema:"storage driver path (default: the only one)"`
	Image  string `json:"image,omitempty" jsonschema:"path of the image file on the MCP server's host"`
	URL    string `json:"url,omitempty" jsonschema:"http(s) URL the exporter downloads the image from (instead of image)"`
	SHA256 string `json:"sha256,omitempty" jsonschema:"expected hex SHA-256 of the image (required with url)"`
}

type flashOut struct {
	Written  int64  `json:"written" jsonschema:"bytes written to the storage"`
	Uploaded int64  `json:"uploaded" jsonschema:"bytes transferred (compressed)"`
	SHA256   string `json:"sha256"`
	Format   string `json:"format,omitempty"`
	Note     string `json:"note,omitempty"`
}

func (s *Server) flash(ctx context.Context, _ *mcp.CallToolRequest, in flashIn) (*mcp.CallToolResult, flashOut, error) {
	if (in.Image == "") == (in.URL == "") {
		return nil, flashOut{}, errors.New("flash: give either image (a file path) or url")
	}
	if in.Image != "" {
		if _, err := os.Stat(in.Image); err != nil {
			return nil, flashOut{}, fmt.Errorf("flash: image %s: %v (the path is on the MCP server's host)", in.Image, errors.Unwrap(err))
		}
	}
	ex, err := s.exporter(ctx, in.Lease)
	if err != nil {
		return nil, flashOut{}, err
	}
	path, err := node(ctx, ex, storage.Interface, "storage", in.Driver, storage.MuxInterface)
	if err != nil {
		return nil, flashOut{}, err
	}
	c := storage.NewClient(ex.Driver(path))
	var r storage.Result
	if in.Image != "" {
		r, err = c.FlashFile(ctx, in.Image, storage.FlashOptions{SHA256: in.SHA256})
	} else {
		r, err = c.WriteURL(ctx, in.URL, in.SHA256, nil)
	}
	if err != nil {
		return nil, flashOut{}, fail(path+" flash", err)
	}
	return nil, flashOut{Written: r.Written, Uploaded: r.Uploaded, SHA256: r.SHA256, Format: string(r.Format), Note: r.Note}, nil
}

type shotIn struct {
	Lease  string `json:"lease,omitempty" jsonschema:"lease id (default: the only lease held)"`
	Driver string `json:"driver,omitempty" jsonschema:"video driver path (default: the only one)"`
}

func (s *Server) screenshot(ctx context.Context, _ *mcp.CallToolRequest, in shotIn) (*mcp.CallToolResult, any, error) {
	ex, err := s.exporter(ctx, in.Lease)
	if err != nil {
		return nil, nil, err
	}
	path, err := node(ctx, ex, video.Interface, "video", in.Driver)
	if err != nil {
		return nil, nil, err
	}
	png, err := video.NewClient(ex.Driver(path)).Snapshot(ctx)
	if err != nil {
		return nil, nil, fail(path+".snapshot", err)
	}
	mime := "image/png"
	if len(png) > 2 && png[0] == 0xff && png[1] == 0xd8 {
		mime = "image/jpeg"
	}
	return &mcp.CallToolResult{Content: []mcp.Content{
		&mcp.ImageContent{Data: png, MIMEType: mime},
		&mcp.TextContent{Text: fmt.Sprintf("screenshot of %s (%d bytes, %s)", path, len(png), mime)},
	}}, nil, nil
}

// --- helpers ---

// fail gives err, from jsn, the context of what failed and its code: "describe: NOT_FOUND …".
func fail(what string, err error) error {
	var we *wire.Error
	if errors.As(err, &we) {
		return fmt.Errorf("%s: %s: %s", what, we.Code, we.Message)
	}
	if errors.Is(err, io.ErrUnexpectedEOF) {
		return fmt.Errorf("%s: the stream ended early: %v", what, err)
	}
	return fmt.Errorf("%s: %v", what, err)
}

func parseDuration(field, s string, def time.Duration) (time.Duration, error) {
	if s == "" {
		return def, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 {
		return 0, fmt.Errorf("%s %q: want a duration like 30s, 5m or 1h", field, s)
	}
	return d, nil
}
