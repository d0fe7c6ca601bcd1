package power

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"go.yaml.in/yaml/v3"

	"jsn.dev/jsn/bus/wire"
	"jsn.dev/jsn/drivers/driver"
)

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

	log  *slog.Logger
	dir  string // of the config file, for password_file
	mode string // auth mode, set by Validate: authAuto, authBasic or authDigest
	// digestFirst: in auto mode, send no basic credentials up front (the device speaks digest)
	digestFirst bool
	authMu      sync.Mutex
	digest      map[string]*digestSession // by origin (scheme://host); guarded by authMu
	client      *http.Client              // set by Open
	mu          sync.Mutex
	assumed     State // last state switched to, for status without a status request; guarded by mu
	// calls by action, built by Validate; status and read may be nil
	on, off, status, read *httpCall
}

// httpCall is one prepared request and how to judge its response.
type httpCall struct {
	action  string
	method  string
	url     string // may carry Tasmota's user/password; never shown (see shownURL)
	body    string
	headers map[string]string
	status  int            // 0 = any 2xx
	bodyRe  *regexp.Regexp // nil = any body
	// parse interprets a good response: a State (on, off, status) or a Reading (read). nil:
	// on/off need nothing, status uses statusOn.
	parse func(body []byte) (any, error)
}

// NewHTTP is the power.HTTP constructor: defaults only, no side effects.
func NewHTTP(env driver.Env) driver.Driver {
	return &HTTP{Timeout: 10 * time.Second, CycleWait: DefaultCycleWait, ResetMode: resetOff, log: env.Log, assumed: Off,
		dir: env.Dir, mode: authAuto}
}

// Validate checks the config and prepares the requests.
func (h *HTTP) Validate() error {
	var errs []error
	add := func(err error) {
		if err != nil {
			errs = append(errs, err)
		}
	}
	// Jumpstarter's keys are another spelling of ours.
	for _, p := range []struct {
		name     string
		ours     **HTTPRequest
		theirs   *HTTPRequest
		ourName  string
		theirKey string
	}{
		{"on", &h.OnReq, h.PowerOn, "on", "power_on"},
		{"off", &h.OffReq, h.PowerOff, "off", "power_off"},
		{"read", &h.ReadReq, h.PowerRead, "read", "power_read"},
	} {
		if p.theirs != nil {
			if *p.ours != nil && *p.ours != p.theirs {
				add(driver.FieldErrorf(p.theirKey, "give either %s or %s, not both", p.ourName, p.theirKey))
			}
			*p.ours = p.theirs
		}
	}
	add(h.validateAuth())
	if h.Timeout <= 0 {
		add(driver.FieldErrorf("timeout", "must be positive, got %s", h.Timeout))
	}
	if h.CycleWait < 0 {
		add(driver.FieldErrorf("cycle_wait", "must not be negative, got %s", h.CycleWait))
	}
	add(validReset("reset", h.ResetMode))

	switch h.Preset {
	case "":
		add(h.validateGeneric())
	case "tasmota", "shelly":
		add(h.validatePreset())
	default:
		add(driver.FieldErrorf("preset", `want "tasmota" or "shelly", got %q`, h.Preset))
	}
	return errors.Join(errs...)
}

// Auth modes.
const (
	authAuto   = "auto"   // basic up front, digest when a 401 asks for it
	authBasic  = "basic"  // basic only
	authDigest = "digest" // digest only
)

// maxPasswordFile bounds what is read of password_file.
const maxPasswordFile = 4096

// validateAuth reads auth (a mode or Jumpstarter's block) and password_file.
func (h *HTTP) validateAuth() error {
	var errs []error
	if n := h.Auth; n != nil {
		for i := 0; n.Kind == yaml.AliasNode && n.Alias != nil && i < 100; i++ {
			n = n.Alias
		}
		switch {
		case n.Kind == yaml.ScalarNode && n.ShortTag() == "!!str":
			switch n.Value {
			case authAuto, authBasic, authDigest:
				h.mode = n.Value
			default:
				errs = append(errs, driver.FieldErrorf("auth", "want basic, digest or auto, got %q", n.Value))
			}
		case n.Kind == yaml.MappingNode:
			var a HTTPAuth
			if err := driver.DecodeConfig("", n, "", &a); err != nil {
				var ces driver.ConfigErrors
				if errors.As(err, &ces) {
					for _, ce := range ces {
						field := "auth"
						if ce.Path != "" {
							field += "." + ce.Path
						}
						errs = append(errs, driver.FieldErrorf(field, "%s", ce.Msg))
					}
				} else {
					errs = append(errs, driver.FieldErrorf("auth", "%v", err))
				}
				break
			}
			if h.Username != "" || h.Password != "" || h.PasswordFile != "" {
				errs = append(errs, driver.FieldErrorf("auth", "give either auth.basic or username/password, not both"))
			}
			h.Username, h.Password = a.Basic.User, a.Basic.Password
		default:
			errs = append(errs, driver.FieldErrorf("auth", "want basic, digest, auto or {basic: {user: …, password: …}}"))
		}
	}
	if h.PasswordFile != "" {
		if h.Password != "" {
			errs = append(errs, driver.FieldErrorf("password_file", "give either password or password_file, not both"))
		} else if pw, err := readPasswordFile(h.dir, h.PasswordFile); err != nil {
			errs = append(errs, driver.FieldErrorf("password_file", "%v", err))
		} else {
			h.Password = pw
		}
	}
	switch {
	case h.Preset == "tasmota" && h.mode != authAuto:
		errs = append(errs, driver.FieldErrorf("auth", "does not apply with preset tasmota (its password goes in the query)"))
	case h.Preset == "shelly" && h.Generation == 2 && h.mode == authBasic:
		errs = append(errs, driver.FieldErrorf("auth", "shelly generation 2 devices speak digest auth, not basic"))
	case h.mode == authDigest && h.Password == "":
		errs = append(errs, driver.FieldErrorf("auth", "digest needs password or password_file"))
	case h.mode == authDigest && h.Username == "" && h.Preset != "shelly":
		errs = append(errs, driver.FieldErrorf("username", "required with auth: digest"))
	}
	return errors.Join(errs...)
}

// readPasswordFile reads the password in file path (relative to dir), trimmed of surrounding
// white space.
func readPasswordFile(dir, path string) (string, error) {
	if !filepath.IsAbs(path) && dir != "" {
		path = filepath.Join(dir, path)
	}
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxPasswordFile+1))
	if err != nil {
		return "", fmt.Errorf("read %s: %w", path, err)
	}
	if len(b) > maxPasswordFile {
		return "", fmt.Errorf("%s: longer than %d bytes; is it the right file?", path, maxPasswordFile)
	}
	pw := strings.TrimSpace(string(b))
	if pw == "" {
		return "", fmt.Errorf("%s is empty", path)
	}
	if strings.ContainsAny(pw, "\r\n\x00") {
		return "", fmt.Errorf("%s: want the password on one line", path)
	}
	return pw, nil
}

func (h *HTTP) validateGeneric() error {
	var errs []error
	for _, k := range []struct {
		key string
		set bool
	}{{"host", h.Host != ""}, {"relay", h.Relay != nil}, {"generation", h.Generation != 0}} {
		if k.set {
			errs = append(errs, driver.FieldErrorf(k.key, "only applies with a preset"))
		}
	}
	if h.OnReq == nil {
		errs = append(errs, driver.FieldErrorf("on", "required (or power_on, or a preset)"))
	}
	if h.OffReq == nil {
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
	if h.on, err = h.generic("on", h.OnReq); err != nil {
		errs = append(errs, err)
	}
	if h.off, err = h.generic("off", h.OffReq); err != nil {
		errs = append(errs, err)
	}
	if h.status, err = h.generic("status", h.StatusReq); err != nil {
		errs = append(errs, err)
	}
	if h.status != nil && statusOn != nil {
		h.status.parse = func(b []byte) (any, error) {
			if statusOn.Match(b) {
				return On, nil
			}
			return Off, nil
		}
	}
	if h.read, err = h.generic("read", h.ReadReq); err != nil {
		errs = append(errs, err)
	}
	if h.read != nil {
		vp, cp := h.ReadReq.VoltagePath, h.ReadReq.CurrentPath
		h.read.parse = func(b []byte) (any, error) { return parseReadingJSON(b, vp, cp) }
	}
	return errors.Join(errs...)
}

// generic prepares the request r of action (key in the config); nil r gives nil.
func (h *HTTP) generic(key string, r *HTTPRequest) (*httpCall, error) {
	if r == nil {
		return nil, nil
	}
	var errs []error
	u, err := url.Parse(r.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		errs = append(errs, driver.FieldErrorf(key+".url", "want an http:// or https:// URL, got %q", r.URL))
	}
	body := r.Body
	if r.Data != "" {
		if body != "" {
			errs = append(errs, driver.FieldErrorf(key+".data", "give either body or data, not both"))
		}
		body = r.Data
	}
	method := strings.ToUpper(r.Method)
	if method == "" {
		method = http.MethodGet
		if body != "" {
			method = http.MethodPost
		}
	}
	if !validToken(method) {
		errs = append(errs, driver.FieldErrorf(key+".method", "not an HTTP method: %q", r.Method))
	}
	for name, v := range r.Headers {
		if !validToken(name) || strings.ContainsAny(v, "\r\n\x00") {
			errs = append(errs, driver.FieldErrorf(key+".headers", "bad header %q", name))
		}
	}
	if r.Expect.Status != 0 && (r.Expect.Status < 100 || r.Expect.Status > 599) {
		errs = append(errs, driver.FieldErrorf(key+".expect.status", "want an HTTP status code, got %d", r.Expect.Status))
	}
	var re *regexp.Regexp
	if r.Expect.Body != "" {
		if re, err = regexp.Compile(r.Expect.Body); err != nil {
			errs = append(errs, driver.FieldErrorf(key+".expect.body", "%v", err))
		}
	}
	if key != "read" && (r.VoltagePath != "" || r.CurrentPath != "") {
		errs = append(errs, driver.FieldErrorf(key, "voltage_path and current_path only apply to read"))
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return &httpCall{action: key, method: method, url: r.URL, body: body, headers: r.Headers,
		status: r.Expect.Status, bodyRe: re}, nil
}

func validToken(s string) bool {
	if s == "" {
		return false
	}
	for _, c := range s {
		if c <= ' ' || c >= 0x7f || strings.ContainsRune("()<>@,;:\\\"/[]?={}", c) {
			return false
		}
	}
	return true
}

func (h *HTTP) validatePreset() error {
	var errs []error
	for _, k := range []struct {
		key string
		set bool
	}{{"on", h.OnReq != nil}, {"off", h.OffReq != nil}, {"status", h.StatusReq != nil},
		{"status_on", h.StatusOn != ""}, {"read", h.ReadReq != nil}} {
		if k.set {
			errs = append(errs, driver.FieldErrorf(k.key, "does not apply with preset %s", h.Preset))
		}
	}
	base := h.Host
	if !strings.Contains(base, "://") {
		base = "http://" + base
	}
	u, err := url.Parse(base)
	if h.Host == "" || err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || (u.Path != "" && u.Path != "/") || u.RawQuery != "" {
		errs = append(errs, driver.FieldErrorf("host", "want the device's host[:port] or http://host[:port], got %q", h.Host))
		return errors.Join(errs...)
	}
	base = u.Scheme + "://" + u.Host
	switch h.Preset {
	case "tasmota":
		if h.Generation != 0 {
			errs = append(errs, driver.FieldErrorf("generation", "only applies to preset shelly"))
		}
		relay := 1
		if h.Relay != nil {
			relay = *h.Relay
		}
		if relay < 1 || relay > 32 {
			errs = append(errs, driver.FieldErrorf("relay", "want a Tasmota relay 1..32, got %d", relay))
		}
		h.tasmotaCalls(base, relay)
	case "shelly":
		relay := 0
		if h.Relay != nil {
			relay = *h.Relay
		}
		if relay < 0 || relay > 15 {
			errs = append(errs, driver.FieldErrorf("relay", "want a Shelly switch id 0..15, got %d", relay))
		}
		switch h.Generation {
		case 0, 1:
			h.shelly1Calls(base, relay)
		case 2:
			h.shelly2Calls(base, relay)
			// Gen2+ devices speak digest only, as user admin.
			h.digestFirst = true
			if h.Username == "" && h.Password != "" {
				h.Username = "admin"
			}
		default:
			errs = append(errs, driver.FieldErrorf("generation", "want 1 or 2, got %d", h.Generation))
		}
	}
	return errors.Join(errs...)
}

// tasmotaCalls prepares Tasmota's web commands: GET /cm?cmnd=Power<N> On|Off, Power<N> for the
// state, Status 10 for the energy sensor. Tasmota's web password goes in the query.
func (h *HTTP) tasmotaCalls(base string, relay int) {
	cm := func(cmnd string) string {
		q := ""
		if h.Username != "" || h.Password != "" {
			user := h.Username
			if user == "" {
				user = "admin"
			}
			q = "user=" + url.QueryEscape(user) + "&password=" + url.QueryEscape(h.Password) + "&"
		}
		return base + "/cm?" + q + "cmnd=" + strings.ReplaceAll(url.QueryEscape(cmnd), "+", "%20")
	}
	power := "Power" + strconv.Itoa(relay)
	state := func(b []byte) (any, error) { return parseTasmotaPower(b, relay) }
	h.on = &httpCall{action: "on", method: http.MethodGet, url: cm(power + " On"), parse: state}
	h.off = &httpCall{action: "off", method: http.MethodGet, url: cm(power + " Off"), parse: state}
	h.status = &httpCall{action: "status", method: http.MethodGet, url: cm(power), parse: state}
	h.read = &httpCall{action: "read", method: http.MethodGet, url: cm("Status 10"), parse: func(b []byte) (any, error) {
		return parseReadingJSON(b, "StatusSNS.ENERGY.Voltage", "StatusSNS.ENERGY.Current")
	}}
}

// shelly1Calls prepares Shelly Gen1's /relay/<id>?turn=on|off and /relay/<id>.
func (h *HTTP) shelly1Calls(base string, relay int) {
	u := base + "/relay/" + strconv.Itoa(relay)
	state := func(b []byte) (any, error) { return parseShelly1(b) }
	h.on = &httpCall{action: "on", method: http.MethodGet, url: u + "?turn=on", parse: state}
	h.off = &httpCall{action: "off", method: http.MethodGet, url: u + "?turn=off", parse: state}
	h.status = &httpCall{action: "status", method: http.MethodGet, url: u, parse: state}
}

// shelly2Calls prepares Shelly Gen2+'s RPC over HTTP GET: Switch.Set and Switch.GetStatus, which
// also reports voltage and current on metering devices.
func (h *HTTP) shelly2Calls(base string, relay int) {
	id := strconv.Itoa(relay)
	h.on = &httpCall{action: "on", method: http.MethodGet, url: base + "/rpc/Switch.Set?id=" + id + "&on=true",
		parse: func(b []byte) (any, error) { return nil, parseShelly2Set(b) }}
	h.off = &httpCall{action: "off", method: http.MethodGet, url: base + "/rpc/Switch.Set?id=" + id + "&on=false",
		parse: func(b []byte) (any, error) { return nil, parseShelly2Set(b) }}
	get := base + "/rpc/Switch.GetStatus?id=" + id
	h.status = &httpCall{action: "status", method: http.MethodGet, url: get, parse: func(b []byte) (any, error) {
		var st struct {
			Output *bool `json:"output"`
		}
		if err := json.Unmarshal(b, &st); err != nil || st.Output == nil {
			return nil, fmt.Errorf(`want {"output": true|false, ...}, got %s`, snippet(b))
		}
		if *st.Output {
			return On, nil
		}
		return Off, nil
	}}
	h.read = &httpCall{action: "read", method: http.MethodGet, url: get, parse: func(b []byte) (any, error) {
		return parseReadingJSON(b, "voltage", "current")
	}}
}

// parseTasmotaPower reads {"POWER":"ON"} or {"POWER<relay>":"OFF"} from a Tasmota reply.
func parseTasmotaPower(b []byte, relay int) (State, error) {
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		return "", fmt.Errorf(`want JSON like {"POWER%d":"ON"}, got %s`, relay, snippet(b))
	}
	keys := []string{"POWER" + strconv.Itoa(relay)}
	if relay == 1 {
		keys = append(keys, "POWER")
	}
	for _, k := range keys {
		if v, ok := m[k].(string); ok {
			switch strings.ToUpper(v) {
			case "ON", "1":
				return On, nil
			case "OFF", "0":
				return Off, nil
			}
			return "", fmt.Errorf("%s is %q, want ON or OFF", k, v)
		}
	}
	if cmd, ok := m["Command"].(string); ok {
		return "", fmt.Errorf("tasmota answered Command %q (no relay %d?)", cmd, relay)
	}
	return "", fmt.Errorf(`want JSON like {"POWER%d":"ON"}, got %s`, relay, snippet(b))
}

// parseShelly1 reads Shelly Gen1's {"ison": true, ...}.
func parseShelly1(b []byte) (State, error) {
	var st struct {
		IsOn *bool `json:"ison"`
	}
	if err := json.Unmarshal(b, &st); err != nil || st.IsOn == nil {
		return "", fmt.Errorf(`want {"ison": true|false, ...}, got %s`, snippet(b))
	}
	if *st.IsOn {
		return On, nil
	}
	return Off, nil
}

// parseShelly2Set checks Switch.Set's {"was_on": bool}.
func parseShelly2Set(b []byte) error {
	var st struct {
		WasOn *bool `json:"was_on"`
	}
	if err := json.Unmarshal(b, &st); err != nil || st.WasOn == nil {
		return fmt.Errorf(`want {"was_on": true|false}, got %s`, snippet(b))
	}
	return nil
}

// parseReadingJSON takes voltage and current from the JSON b at the dotted paths vp and cp
// (default top-level "voltage"/"current", read as 0 when absent).
func parseReadingJSON(b []byte, vp, cp string) (Reading, error) {
	var data any
	if err := json.Unmarshal(b, &data); err != nil {
		return Reading{}, fmt.Errorf("want JSON, got %s", snippet(b))
	}
	v, err := jsonNumber(data, vp, "voltage")
	if err != nil {
		return Reading{}, err
	}
	c, err := jsonNumber(data, cp, "current")
	if err != nil {
		return Reading{}, err
	}
	return Reading{Voltage: Volts(v), Current: Amperes(c)}, nil
}

func jsonNumber(data any, path, def string) (float64, error) {
	key := path
	if key == "" {
		key = def
	}
	cur := data
	for _, part := range strings.Split(key, ".") {
		switch x := cur.(type) {
		case map[string]any:
			v, ok := x[part]
			if !ok {
				if path == "" {
					return 0, nil
				}
				return 0, fmt.Errorf("no %q in the response", key)
			}
			cur = v
		case []any:
			i, err := strconv.Atoi(part)
			if err != nil || i < 0 || i >= len(x) {
				return 0, fmt.Errorf("no %q in the response", key)
			}
			cur = x[i]
		default:
			return 0, fmt.Errorf("no %q in the response", key)
		}
	}
	f, ok := cur.(float64)
	if !ok {
		return 0, fmt.Errorf("%q is %v, want a number", key, cur)
	}
	return f, nil
}

// snippet quotes the start of a body for an error message.
func snippet(b []byte) string {
	const max = 200
	if len(b) > max {
		return strconv.Quote(string(b[:max])) + "…"
	}
	return strconv.Quote(string(b))
}

// Open builds the HTTP client; nothing is sent yet.
func (h *HTTP) Open(ctx context.Context) error {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	if h.InsecureTLS {
		tr.TLSClientConfig = &tls.Config{InsecureSkipVerify: true}
	}
	h.client = &http.Client{
		Transport: tr,
		// A relay answering with a redirect is not doing what it was asked.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	return nil
}

// Reset switches off, unless reset says otherwise.
func (h *HTTP) Reset(ctx context.Context) error { return applyReset(ctx, h, h.ResetMode) }

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
func (h *HTTP) On(ctx context.Context) error { return h.switchTo(ctx, h.on, On) }

// Off sends the off request.
func (h *HTTP) Off(ctx context.Context) error { return h.switchTo(ctx, h.off, Off) }

func (h *HTTP) switchTo(ctx context.Context, c *httpCall, want State) error {
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
	if h.status == nil {
		h.mu.Lock()
		defer h.mu.Unlock()
		return h.assumed, nil
	}
	got, err := h.do(ctx, h.status)
	if err != nil {
		return "", err
	}
	return got.(State), nil
}

// Read asks the device for voltage and current; without a read request it is UNIMPLEMENTED.
func (h *HTTP) Read(ctx context.Context) (Reading, error) {
	if h.read == nil {
		return Reading{}, wire.Errorf(wire.Unimplemented, "read: no read request configured; this relay cannot measure")
	}
	got, err := h.do(ctx, h.read)
	if err != nil {
		return Reading{}, err
	}
	return got.(Reading), nil
}

// maxHTTPBody bounds what is read of a response.
const maxHTTPBody = 1 << 20

// do sends c and judges the response: transport failures are UNAVAILABLE, the timeout
// DEADLINE_EXCEEDED, an unexpected status or body FAILED_PRECONDITION.
func (h *HTTP) do(ctx context.Context, c *httpCall) (any, error) {
	if h.client == nil {
		return nil, wire.Errorf(wire.Unavailable, "%s: driver not open", c.action)
	}
	shown := shownURL(c.url)
	ctx, cancel := context.WithTimeout(ctx, h.Timeout)
	defer cancel()
	resp, b, err := h.send(ctx, c, shown)
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

// send sends c and answers the device's auth challenges: basic credentials up front (auth
// basic, or auto unless the device is known to speak digest), digest credentials up front once
// a challenge of the origin is known, and on a 401 with a Digest challenge one more round with
// the new nonce (two when the first answer was a cached nonce and the next says stale). A 401
// after credentials were sent is a wrong username or password: UNAVAILABLE, like a device
// that refuses the command (PERMISSION_DENIED is the lease's).
func (h *HTTP) send(ctx context.Context, c *httpCall, shown string) (*http.Response, []byte, error) {
	creds := h.Preset != "tasmota" && (h.Username != "" || h.Password != "")
	origin := originOf(c.url)
	basic := creds && (h.mode == authBasic || h.mode == authAuto && !h.digestFirst && !h.hasDigest(origin))
	fail := func(code wire.Code, format string, args ...any) error {
		return wire.Errorf(code, "%s: %s %s: 401 Unauthorized: %s", c.action, c.method, shown, fmt.Sprintf(format, args...))
	}
	staleRetried := false
	for attempt := 0; ; attempt++ {
		req, err := h.newRequest(ctx, c)
		if err != nil {
			return nil, nil, wire.Errorf(wire.Internal, "%s: %s %s: %v", c.action, c.method, shown, err)
		}
		sent := "" // the credentials sent: "", "basic" or "digest"
		if creds && h.mode != authBasic {
			if auth := h.digestAuthorization(origin, req, c.body); auth != "" {
				req.Header.Set("Authorization", auth)
				sent = "digest"
			}
		}
		if sent == "" && basic {
			req.SetBasicAuth(h.Username, h.Password)
			sent = "basic"
		}
		resp, b, err := h.roundTrip(ctx, c, req, shown)
		if err != nil {
			return nil, nil, err
		}
		h.log.Debug("http power request", "action", c.action, "method", c.method, "url", shown, "status", resp.StatusCode, "auth", sent)
		if resp.StatusCode != http.StatusUnauthorized || c.status == http.StatusUnauthorized || h.Preset == "tasmota" {
			if sent == "digest" {
				h.nextNonce(origin, resp.Header.Get("Authentication-Info"))
			}
			return resp, b, nil
		}
		cs, perr := parseChallenges(resp.Header.Values("WWW-Authenticate"))
		dc, found, derr := digestFrom(cs)
		switch {
		case found && derr != nil:
			if perr != nil {
				derr = perr // the cause
			}
			return nil, nil, fail(wire.FailedPrecondition, "bad digest challenge: %v", derr)
		case found && !creds:
			return nil, nil, fail(wire.Unavailable, "the device asks for digest auth (realm %q); set password or password_file", dc.realm)
		case found && h.mode == authBasic:
			return nil, nil, fail(wire.Unavailable, "the device asks for digest auth, not basic (auth: basic)")
		case found:
			h.log.Debug("digest challenge", "realm", dc.realm, "algorithm", dc.algorithm, "qop", dc.qop, "stale", dc.stale)
			h.setDigest(origin, dc)
			switch {
			case attempt == 0:
				staleRetried = dc.stale
			case dc.stale && !staleRetried:
				staleRetried = true
			default:
				return nil, nil, fail(wire.Unavailable, "wrong username or password (digest auth)")
			}
			continue
		case sent == "basic":
			return nil, nil, fail(wire.Unavailable, "wrong username or password (basic auth)")
		case creds && sent == "" && attempt == 0 && h.mode == authAuto && hasScheme(cs, "Basic"):
			basic = true // a device that said digest first, then basic: answer what it asks
			continue
		case h.mode == authDigest && len(cs) == 0:
			return nil, nil, fail(wire.Unavailable, "the device sent no digest challenge%s (auth: digest)", unreadable(perr))
		case h.mode == authDigest:
			return nil, nil, fail(wire.Unavailable, "the device asks for %s auth, not digest (auth: digest)", schemes(cs))
		case !creds && len(cs) > 0:
			return nil, nil, fail(wire.Unavailable, "the device asks for %s auth; set username and password", schemes(cs))
		}
		return resp, b, nil
	}
}

// newRequest builds the request of c (again for each auth round: the body is read each time).
func (h *HTTP) newRequest(ctx context.Context, c *httpCall) (*http.Request, error) {
	var body io.Reader
	if c.body != "" {
		body = strings.NewReader(c.body)
	}
	req, err := http.NewRequestWithContext(ctx, c.method, c.url, body)
	if err != nil {
		return nil, err
	}
	for k, v := range c.headers {
		req.Header.Set(k, v)
	}
	if c.body != "" && req.Header.Get("Content-Type") == "" {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	return req, nil
}

// roundTrip sends req and reads the whole (bounded) response body.
func (h *HTTP) roundTrip(ctx context.Context, c *httpCall, req *http.Request, shown string) (*http.Response, []byte, error) {
	resp, err := h.client.Do(req)
	if err != nil {
		switch {
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

// originOf is scheme://host of u, the scope of a cached digest challenge.
func originOf(u string) string {
	p, err := url.Parse(u)
	if err != nil {
		return u
	}
	return p.Scheme + "://" + p.Host
}

func (h *HTTP) hasDigest(origin string) bool {
	h.authMu.Lock()
	defer h.authMu.Unlock()
	return h.digest[origin] != nil
}

// digestAuthorization is the Authorization header for req with the cached challenge of origin
// (nonce count incremented), or "" when there is none.
func (h *HTTP) digestAuthorization(origin string, req *http.Request, body string) string {
	h.authMu.Lock()
	defer h.authMu.Unlock()
	s := h.digest[origin]
	if s == nil {
		return ""
	}
	return s.authorize(h.Username, h.Password, req.Method, req.URL.RequestURI(), body)
}

// setDigest caches the challenge dc of origin, with a fresh nonce count.
func (h *HTTP) setDigest(origin string, dc digestChallenge) {
	h.authMu.Lock()
	defer h.authMu.Unlock()
	if h.digest == nil {
		h.digest = map[string]*digestSession{}
	}
	h.digest[origin] = &digestSession{dc: dc}
}

func (h *HTTP) nextNonce(origin, info string) {
	h.authMu.Lock()
	defer h.authMu.Unlock()
	if s := h.digest[origin]; s != nil {
		s.nextNonce(info)
	}
}

func hasScheme(cs []authChallenge, scheme string) bool {
	for _, c := range cs {
		if strings.EqualFold(c.scheme, scheme) {
			return true
		}
	}
	return false
}

// schemes names the auth schemes of cs for an error message ("Bearer or NTLM").
func schemes(cs []authChallenge) string {
	names := make([]string, len(cs))
	for i, c := range cs {
		names[i] = c.scheme
	}
	return strings.Join(names, " or ")
}

// unreadable explains a WWW-Authenticate header that did not parse, for an error message.
func unreadable(perr error) string {
	if perr == nil {
		return ""
	}
	return fmt.Sprintf(" (unreadable WWW-Authenticate: %v)", perr)
}

// shownURL is u without credentials: no userinfo password, no Tasmota password parameter.
func shownURL(u string) string {
	p, err := url.Parse(u)
	if err != nil {
		return u
	}
	if _, has := p.User.Password(); has {
		p.User = url.UserPassword(p.User.Username(), "xxxxx")
	}
	q := p.Query()
	if q.Has("password") {
		q.Set("password", "xxxxx")
		// Keep the parameter order readable: re-encode only when needed.
		p.RawQuery = strings.ReplaceAll(q.Encode(), "+", "%20")
	}
	return p.String()
}

// redact replaces the full URL (with credentials) in a transport error message.
func redact(msg, u string) string {
	msg = strings.ReplaceAll(msg, strconv.Quote(u), strconv.Quote(shownURL(u)))
	return strings.ReplaceAll(msg, u, shownURL(u))
}

var (
	_ Device           = (*HTTP)(nil)
	_ driver.Driver    = (*HTTP)(nil)
	_ driver.Validator = (*HTTP)(nil)
	_ driver.Methoder  = (*HTTP)(nil)
)
