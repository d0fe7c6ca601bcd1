package power

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"regexp"
	"sync"
	"time"

	"go.yaml.in/yaml/v3"

	"jsn.dev/jsn/bus/wire"
	"jsn.dev/jsn/drivers/driver"
)

// power.HTTP lives in four files: this one (config, plan, life cycle, actions), http_request.go
// (a prepared request and how its answer is judged), http_presets.go (Tasmota and Shelly) and
// http_auth.go (credentials and the RoundTripper that answers basic and digest challenges).

func init() {
	driver.MustRegister(driver.Info{
		Type:      "power.HTTP",
		Interface: Interface,
		Doc:       "power switch or relay driven over HTTP (generic, Tasmota, Shelly Gen1/Gen2)",
		New:       NewHTTP,
		Aliases:   []string{"jumpstarter_driver_http_power.driver.HttpPower"},
	})
}

// HTTPRequest is one HTTP request of a power action.
type HTTPRequest struct {
	Method  string            `yaml:"method"` // default GET, or POST when there is a body
	URL     string            `yaml:"url" jsn:"required"`
	Body    string            `yaml:"body"`
	Data    string            `yaml:"data"` // Jumpstarter's name for body
	Headers map[string]string `yaml:"headers"`
	Expect  HTTPExpect        `yaml:"expect"`
	// For read: dotted JSON paths of the values ("emeter.voltage", "meters.0.current"); default
	// top-level "voltage" and "current" (a missing default key reads 0).
	VoltagePath string `yaml:"voltage_path"`
	CurrentPath string `yaml:"current_path"`
}

// HTTPExpect is what a successful response looks like.
type HTTPExpect struct {
	Status int    `yaml:"status"` // exact status code; 0 = any 2xx
	Body   string `yaml:"body"`   // RE2 regular expression searched in the body; "" = anything
}

// HTTPAuth is Jumpstarter's auth block (`auth: {basic: {user, password}}`); jsn's `auth` key
// also takes a mode instead: basic, digest or auto.
type HTTPAuth struct {
	Basic *HTTPBasicAuth `yaml:"basic" jsn:"required"`
}

// HTTPBasicAuth is Jumpstarter's basic auth credentials.
type HTTPBasicAuth struct {
	User     string `yaml:"user"`
	Password string `yaml:"password"`
}

// HTTP is a power switch driven by HTTP requests: a generic one (a request per action) or a
// preset for Tasmota and Shelly relays.
//
// Config:
//
//	preset: ""            # "", tasmota or shelly
//	host: 192.168.1.65    # presets: the device, host[:port] or http(s)://host[:port]
//	relay: 1              # presets: relay index; tasmota Power<N> (default 1), shelly id (default 0)
//	generation: 1         # shelly: 1 (/relay/N) or 2 (/rpc/Switch.*)
//	on:  {method: POST, url: ..., body: ..., headers: {...}, expect: {status: 200, body: regex}}
//	off: {...}
//	status: {...}         # optional; on when status_on matches the body
//	status_on: regex      # required with a generic status request
//	read: {url: ..., voltage_path: a.b, current_path: a.c}  # optional measurement
//	timeout: 10s
//	insecure_tls: false
//	username / password   # HTTP auth (Tasmota preset: its user/password query parameters);
//	                      # shelly generation 2: username defaults to admin
//	password_file: path   # the password, trimmed, from a file (relative to the config's dir)
//	auth: auto            # basic | digest | auto: basic up front (shelly generation 2:
//	                      # nothing), digest when a 401 asks for it
//	cycle_wait: 1s
//	reset: off            # off | on | leave
//
// Jumpstarter's HttpPower keys load too: name, power_on, power_off, power_read (with data,
// voltage_path, current_path) and auth.basic.{user,password}.
type HTTP struct {
	Preset       string        `yaml:"preset"`
	Host         string        `yaml:"host"`
	Relay        *int          `yaml:"relay"`
	Generation   int           `yaml:"generation"`
	OnReq        *HTTPRequest  `yaml:"on"`
	OffReq       *HTTPRequest  `yaml:"off"`
	StatusReq    *HTTPRequest  `yaml:"status"`
	StatusOn     string        `yaml:"status_on"`
	ReadReq      *HTTPRequest  `yaml:"read"`
	Timeout      time.Duration `yaml:"timeout"`
	InsecureTLS  bool          `yaml:"insecure_tls"`
	Username     string        `yaml:"username"`
	Password     string        `yaml:"password"`
	PasswordFile string        `yaml:"password_file"`
	// Auth is a mode (auto, basic, digest) or Jumpstarter's {basic: {user, password}}.
	Auth      *yaml.Node    `yaml:"auth"`
	CycleWait time.Duration `yaml:"cycle_wait"`
	ResetMode string        `yaml:"reset"`

	// Jumpstarter's jumpstarter_driver_http_power.driver.HttpPower keys.
	Name      string       `yaml:"name"`
	PowerOn   *HTTPRequest `yaml:"power_on"`
	PowerOff  *HTTPRequest `yaml:"power_off"`
	PowerRead *HTTPRequest `yaml:"power_read"`

	log *slog.Logger
	dir string // of the config file, for password_file

	plan   *httpPlan    // what the config means; set by Open
	client *http.Client // set by Open
	reach  *reach       // whether the relay answers; set by Open

	mu      sync.Mutex
	assumed State // last state switched to, for status without a status request; guarded by mu
}

// NewHTTP is the power.HTTP constructor: defaults only, no side effects.
func NewHTTP(env driver.Env) driver.Driver {
	return &HTTP{Timeout: 10 * time.Second, CycleWait: DefaultCycleWait, ResetMode: resetOff, log: env.Log, assumed: Off,
		dir: env.Dir}
}

// httpPlan is what a valid config means: the prepared call of each action and how to
// authenticate.
type httpPlan struct {
	on, off, status, read *httpCall // status and read may be nil
	auth                  httpAuth
}

// Validate checks the config. It changes nothing: Open prepares the same plan again and keeps it.
func (h *HTTP) Validate() error {
	_, err := h.makePlan()
	return err
}

// makePlan derives the plan from the config (and password_file), reporting every problem.
func (h *HTTP) makePlan() (*httpPlan, error) {
	var errs []error
	add := func(err error) {
		if err != nil {
			errs = append(errs, err)
		}
	}
	// Jumpstarter's keys are another spelling of ours.
	on, off, read := h.OnReq, h.OffReq, h.ReadReq
	for _, p := range []struct {
		ours     **HTTPRequest
		theirs   *HTTPRequest
		ourName  string
		theirKey string
	}{
		{&on, h.PowerOn, "on", "power_on"},
		{&off, h.PowerOff, "off", "power_off"},
		{&read, h.PowerRead, "read", "power_read"},
	} {
		if p.theirs != nil {
			if *p.ours != nil && *p.ours != p.theirs {
				add(driver.FieldErrorf(p.theirKey, "give either %s or %s, not both", p.ourName, p.theirKey))
			}
			*p.ours = p.theirs
		}
	}
	auth, err := h.authConfig()
	add(err)
	p := &httpPlan{auth: auth}
	if h.Timeout <= 0 {
		add(driver.FieldErrorf("timeout", "must be positive, got %s", h.Timeout))
	}
	if h.CycleWait < 0 {
		add(driver.FieldErrorf("cycle_wait", "must not be negative, got %s", h.CycleWait))
	}
	add(validReset("reset", h.ResetMode))

	switch h.Preset {
	case "":
		add(h.genericCalls(p, on, off, read))
	case "tasmota", "shelly":
		add(h.presetCalls(p, on, off, read))
	default:
		add(driver.FieldErrorf("preset", `want "tasmota" or "shelly", got %q`, h.Preset))
	}
	return p, errors.Join(errs...)
}

// genericCalls prepares the calls of a config without a preset into p; on, off and read are the
// requests as configured (Jumpstarter's keys included).
func (h *HTTP) genericCalls(p *httpPlan, on, off, read *HTTPRequest) error {
	var errs []error
	for _, k := range []struct {
		key string
		set bool
	}{{"host", h.Host != ""}, {"relay", h.Relay != nil}, {"generation", h.Generation != 0}} {
		if k.set {
			errs = append(errs, driver.FieldErrorf(k.key, "only applies with a preset"))
		}
	}
	if on == nil {
		errs = append(errs, driver.FieldErrorf("on", "required (or power_on, or a preset)"))
	}
	if off == nil {
		errs = append(errs, driver.FieldErrorf("off", "required (or power_off, or a preset)"))
	}
	var statusOn *regexp.Regexp
	if h.StatusReq != nil {
		if h.StatusOn == "" {
			errs = append(errs, driver.FieldErrorf("status_on", "required with status: a regular expression matching the body when on"))
		} else if re, err := regexp.Compile(h.StatusOn); err != nil {
			errs = append(errs, driver.FieldErrorf("status_on", "%v", err))
		} else {
			statusOn = re
		}
	} else if h.StatusOn != "" {
		errs = append(errs, driver.FieldErrorf("status_on", "only applies with status"))
	}
	var err error
	if p.on, err = genericCall("on", on); err != nil {
		errs = append(errs, err)
	}
	if p.off, err = genericCall("off", off); err != nil {
		errs = append(errs, err)
	}
	if p.status, err = genericCall("status", h.StatusReq); err != nil {
		errs = append(errs, err)
	}
	if p.status != nil && statusOn != nil {
		p.status.parse = func(b []byte) (any, error) {
			if statusOn.Match(b) {
				return On, nil
			}
			return Off, nil
		}
	}
	if p.read, err = genericCall("read", read); err != nil {
		errs = append(errs, err)
	}
	if p.read != nil {
		vp, cp := read.VoltagePath, read.CurrentPath
		p.read.parse = func(b []byte) (any, error) { return parseReadingJSON(b, vp, cp) }
	}
	return errors.Join(errs...)
}

// Open prepares the requests and builds the HTTP client; nothing is sent yet.
func (h *HTTP) Open(ctx context.Context) error {
	p, err := h.makePlan()
	if err != nil {
		return err
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	if h.InsecureTLS {
		tr.TLSClientConfig = &tls.Config{InsecureSkipVerify: true}
	}
	var rt http.RoundTripper = tr
	if h.Preset != "tasmota" { // Tasmota's password goes in the query: no challenge to answer
		rt = &authTransport{base: tr, auth: p.auth, log: h.log}
	}
	h.plan = p
	h.reach = &reach{addr: reachAddr(p.on.url)}
	h.reach.probe() // describe shows an unreachable relay from the start
	h.client = &http.Client{
		Transport: rt,
		// A relay answering with a redirect is not doing what it was asked.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	return nil
}

// Reset switches off, unless reset says otherwise.
func (h *HTTP) Reset(ctx context.Context) error { return applyReset(ctx, h, h.ResetMode) }

// Unavailable says the relay's host does not answer (checked at Open, after a request that
// could not connect, and again every couple of seconds while it does not), or "".
func (h *HTTP) Unavailable() string {
	if h.reach == nil {
		return ""
	}
	return h.reach.unavailable()
}

// Close drops idle connections.
func (h *HTTP) Close() error {
	if h.client != nil {
		h.client.CloseIdleConnections()
	}
	return nil
}

// Methods returns the jsn.power.v1 method table.
func (h *HTTP) Methods() []driver.Method { return Methods(h, Options{CycleWait: h.CycleWait}) }

// On sends the on request.
func (h *HTTP) On(ctx context.Context) error { return h.switchTo(ctx, "on", On) }

// Off sends the off request.
func (h *HTTP) Off(ctx context.Context) error { return h.switchTo(ctx, "off", Off) }

func (h *HTTP) switchTo(ctx context.Context, action string, want State) error {
	c, err := h.call(action)
	if err != nil {
		return err
	}
	got, err := h.do(ctx, c)
	if err != nil {
		return err
	}
	if s, ok := got.(State); ok && s != want {
		return wire.Errorf(wire.FailedPrecondition, "%s: %s %s: the relay reports %s, want %s", c.action, c.method, shownURL(c.url), s, want)
	}
	h.mu.Lock()
	if h.assumed != want {
		h.log.Info("power state changed", "from", string(h.assumed), "to", string(want))
	}
	h.assumed = want
	h.mu.Unlock()
	return nil
}

// Status asks the device; without a status request it returns the last state switched to.
func (h *HTTP) Status(ctx context.Context) (State, error) {
	c, err := h.call("status")
	if err != nil {
		return "", err
	}
	if c == nil {
		h.mu.Lock()
		defer h.mu.Unlock()
		return h.assumed, nil
	}
	got, err := h.do(ctx, c)
	if err != nil {
		return "", err
	}
	return got.(State), nil
}

// Read asks the device for voltage and current; without a read request it is UNIMPLEMENTED.
func (h *HTTP) Read(ctx context.Context) (Reading, error) {
	c, err := h.call("read")
	if err != nil {
		return Reading{}, err
	}
	if c == nil {
		return Reading{}, wire.Errorf(wire.Unimplemented, "read: no read request configured; this relay cannot measure")
	}
	got, err := h.do(ctx, c)
	if err != nil {
		return Reading{}, err
	}
	return got.(Reading), nil
}

// call returns the prepared call of action: nil for a status or read the config has none of,
// UNAVAILABLE before Open.
func (h *HTTP) call(action string) (*httpCall, error) {
	if h.plan == nil || h.client == nil {
		return nil, wire.Errorf(wire.Unavailable, "%s: driver not open", action)
	}
	switch action {
	case "on":
		return h.plan.on, nil
	case "off":
		return h.plan.off, nil
	case "status":
		return h.plan.status, nil
	}
	return h.plan.read, nil
}

// maxHTTPBody bounds what is read of a response.
const maxHTTPBody = 1 << 20

// do sends c and judges the response: transport failures are UNAVAILABLE, the timeout
// DEADLINE_EXCEEDED, an unexpected status or body FAILED_PRECONDITION; a device that refuses
// the credentials is UNAVAILABLE (see authTransport).
func (h *HTTP) do(ctx context.Context, c *httpCall) (any, error) {
	shown := shownURL(c.url)
	ctx, cancel := context.WithTimeout(ctx, h.Timeout)
	defer cancel()
	resp, b, err := h.roundTrip(ctx, c, shown)
	if err != nil {
		return nil, err
	}
	switch {
	case c.status != 0 && resp.StatusCode != c.status:
		return nil, wire.Errorf(wire.FailedPrecondition, "%s: %s %s: got status %d, want %d; body %s", c.action, c.method, shown, resp.StatusCode, c.status, snippet(b))
	case c.status == 0 && (resp.StatusCode < 200 || resp.StatusCode > 299):
		return nil, wire.Errorf(wire.FailedPrecondition, "%s: %s %s: got status %d, want 2xx; body %s", c.action, c.method, shown, resp.StatusCode, snippet(b))
	case c.bodyRe != nil && !c.bodyRe.Match(b):
		return nil, wire.Errorf(wire.FailedPrecondition, "%s: %s %s: got body %s, want a match of %q", c.action, c.method, shown, snippet(b), c.bodyRe.String())
	}
	if c.parse == nil {
		return nil, nil
	}
	v, err := c.parse(b)
	if err != nil {
		return nil, wire.Errorf(wire.FailedPrecondition, "%s: %s %s: %v", c.action, c.method, shown, err)
	}
	return v, nil
}

// roundTrip sends c and reads the whole (bounded) response body.
func (h *HTTP) roundTrip(ctx context.Context, c *httpCall, shown string) (*http.Response, []byte, error) {
	if c.status == http.StatusUnauthorized {
		ctx = acceptUnauthorized(ctx)
	}
	req, err := c.request(ctx)
	if err != nil {
		return nil, nil, wire.Errorf(wire.Internal, "%s: %s %s: %v", c.action, c.method, shown, err)
	}
	resp, err := h.client.Do(req)
	if err == nil && h.reach != nil {
		h.reach.ok()
	} else if h.reach != nil {
		h.reach.failed(err)
	}
	if err != nil {
		var ae *authError
		switch {
		case errors.As(err, &ae):
			return nil, nil, wire.Errorf(ae.code, "%s: %s %s: %s", c.action, c.method, shown, ae)
		case ctx.Err() == context.DeadlineExceeded:
			return nil, nil, wire.Errorf(wire.DeadlineExceeded, "%s: %s %s: no answer within %s", c.action, c.method, shown, h.Timeout)
		case ctx.Err() != nil:
			return nil, nil, fmt.Errorf("%s: %s %s: %w", c.action, c.method, shown, ctx.Err())
		}
		return nil, nil, wire.Errorf(wire.Unavailable, "%s: %s %s: %s", c.action, c.method, shown, redact(err.Error(), c.url))
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxHTTPBody))
	if err != nil {
		if ctx.Err() == context.DeadlineExceeded {
			return nil, nil, wire.Errorf(wire.DeadlineExceeded, "%s: %s %s: no full answer within %s", c.action, c.method, shown, h.Timeout)
		}
		return nil, nil, wire.Errorf(wire.Unavailable, "%s: %s %s: read response: %s", c.action, c.method, shown, redact(err.Error(), c.url))
	}
	return resp, b, nil
}

var (
	_ Device           = (*HTTP)(nil)
	_ driver.Driver    = (*HTTP)(nil)
	_ driver.Validator = (*HTTP)(nil)
	_ driver.Methoder  = (*HTTP)(nil)

	_ driver.Availability = (*HTTP)(nil)
)
