package power

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"

	"jsn.dev/jsn/bus/wire"
	"jsn.dev/jsn/drivers/drivertest"
)

// relayEmulator is an HTTP server speaking the web APIs of a Tasmota device (two relays, energy
// sensor), a Shelly Gen1 and a Shelly Gen2 plug and a generic relay, keeping their states and
// recording every request as "METHOD /path?query body".
type relayEmulator struct {
	*httptest.Server
	user, password string        // if set, every request needs them (Tasmota: query; Shelly: basic auth)
	digest         *shellyDigest // if set, /rpc/ requests need digest auth (a Shelly Gen2+ with a password)

	mu      sync.Mutex
	reqs    []string
	tasmota [3]bool // relays 1 and 2
	shelly  bool
	generic bool
	fail    int    // when non-zero, answer every request with this status
	garbage string // when non-empty, answer every request with this body
	hang    bool   // when set, never answer
}

func newRelayEmulator(t *testing.T) *relayEmulator {
	e := &relayEmulator{}
	e.Server = httptest.NewServer(http.HandlerFunc(e.serve))
	t.Cleanup(e.Close)
	return e
}

func (e *relayEmulator) requests() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := e.reqs
	e.reqs = nil
	return out
}

func (e *relayEmulator) set(f func(e *relayEmulator)) {
	e.mu.Lock()
	defer e.mu.Unlock()
	f(e)
}

func (e *relayEmulator) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	e.mu.Lock()
	defer e.mu.Unlock()
	line := r.Method + " " + r.URL.RequestURI()
	if len(body) > 0 {
		line += " " + string(body)
	}
	e.reqs = append(e.reqs, line)
	if e.hang {
		e.mu.Unlock()
		<-r.Context().Done()
		e.mu.Lock()
		return
	}
	if e.fail != 0 {
		http.Error(w, "relay on fire", e.fail)
		return
	}
	if e.garbage != "" {
		io.WriteString(w, e.garbage)
		return
	}
	js := func(v any) {
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(v)
	}
	q := r.URL.Query()
	switch {
	case r.URL.Path == "/cm":
		if e.password != "" && (q.Get("user") != e.user || q.Get("password") != e.password) {
			w.WriteHeader(http.StatusUnauthorized)
			js(map[string]string{"WARNING": "Need user=<username>&password=<password>"})
			return
		}
		e.tasmotaCommand(q.Get("cmnd"), js)
	case strings.HasPrefix(r.URL.Path, "/relay/") || strings.HasPrefix(r.URL.Path, "/rpc/"):
		if e.digest != nil && strings.HasPrefix(r.URL.Path, "/rpc/") {
			if !e.digest.check(w, r) {
				return
			}
		} else if u, p, _ := r.BasicAuth(); e.password != "" && (u != e.user || p != e.password) {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		switch r.URL.Path {
		case "/relay/0":
			switch q.Get("turn") {
			case "on":
				e.shelly = true
			case "off":
				e.shelly = false
			}
			js(map[string]any{"ison": e.shelly, "has_timer": false, "timer_started_at": 0, "timer_duration": 0,
				"timer_remaining": 0, "overpower": false, "source": "http"})
		case "/rpc/Switch.Set":
			if q.Get("id") != "0" {
				w.WriteHeader(http.StatusBadRequest)
				js(map[string]any{"code": -105, "message": "Argument 'id', value " + q.Get("id") + " not found!"})
				return
			}
			was := e.shelly
			e.shelly = q.Get("on") == "true"
			js(map[string]any{"was_on": was})
		case "/rpc/Switch.GetStatus":
			st := map[string]any{"id": 0, "source": "HTTP_in", "output": e.shelly, "apower": 0.0, "voltage": 237.5, "current": 0.0,
				"aenergy": map[string]any{"total": 12.3}, "temperature": map[string]any{"tC": 38.5, "tF": 101.3}}
			if e.shelly {
				st["apower"], st["current"] = 8.9, 0.068
			}
			js(st)
		default:
			http.NotFound(w, r)
		}
	case r.URL.Path == "/api/power" && r.Method == http.MethodPost:
		if r.Header.Get("X-Token") != "secret" {
			http.Error(w, "forbidden", http.StatusForbidden)
			return
		}
		e.generic = string(body) == "action=on"
		io.WriteString(w, "OK")
	case r.URL.Path == "/api/state":
		io.WriteString(w, map[bool]string{true: "state: ON", false: "state: OFF"}[e.generic])
	default:
		http.NotFound(w, r)
	}
}

// tasmotaCommand answers a Tasmota web command (cmnd=Power2 On, Power1, Status 10).
func (e *relayEmulator) tasmotaCommand(cmnd string, js func(any)) {
	fields := strings.Fields(cmnd)
	if len(fields) == 0 {
		js(map[string]string{"Command": "Unknown"})
		return
	}
	if strings.EqualFold(fields[0], "Status") && len(fields) == 2 && fields[1] == "10" {
		js(map[string]any{"StatusSNS": map[string]any{"Time": "2026-01-01T00:00:00", "ENERGY": map[string]any{
			"TotalStartTime": "2025-01-01T00:00:00", "Total": 1.5, "Yesterday": 0.1, "Today": 0.2, "Power": 12,
			"ApparentPower": 14, "ReactivePower": 5, "Factor": 0.86, "Voltage": 231, "Current": 0.061}}})
		return
	}
	name := strings.ToUpper(fields[0])
	if !strings.HasPrefix(name, "POWER") {
		js(map[string]string{"Command": "Unknown"})
		return
	}
	n := 1
	if s := name[len("POWER"):]; s != "" {
		var err error
		if n, err = strconv.Atoi(s); err != nil || n < 1 || n > 2 {
			js(map[string]string{"Command": "Unknown"})
			return
		}
	}
	if len(fields) > 1 {
		switch strings.ToUpper(fields[1]) {
		case "ON", "1":
			e.tasmota[n] = true
		case "OFF", "0":
			e.tasmota[n] = false
		case "TOGGLE", "2":
			e.tasmota[n] = !e.tasmota[n]
		}
	}
	js(map[string]string{"POWER" + strconv.Itoa(n): map[bool]string{true: "ON", false: "OFF"}[e.tasmota[n]]})
}

func TestHTTPRegistered(t *testing.T) {
	buildOne(t, "type: jumpstarter_driver_http_power.driver.HttpPower\nconfig: {power_on: {url: 'http://x/on'}, power_off: {url: 'http://x/off'}}", "")
}

func TestHTTPConfig(t *testing.T) {
	tests := []struct {
		src     string
		wantErr string
	}{
		{"type: power.HTTP\nconfig: {preset: tasmota, host: 10.0.0.2}", ""},
		{"type: power.HTTP\nconfig: {preset: shelly, host: 'http://10.0.0.3:8080', generation: 2, relay: 1}", ""},
		{"type: power.HTTP\nconfig: {on: {url: 'http://x/on'}, off: {url: 'https://x/off', method: put, body: '{}', headers: {X-A: b}, expect: {status: 204, body: ok}}}", ""},
		{"type: power.HTTP\nconfig: {on: {url: 'http://x/on'}}", "off: required"},
		{"type: power.HTTP\nconfig: {on: {url: 'ftp://x/on'}, off: {url: 'http://x/off'}}", "on.url: want an http:// or https:// URL"},
		{"type: power.HTTP\nconfig: {on: {method: 'GE T', url: 'http://x'}, off: {url: 'http://x'}}", "on.method: not an HTTP method"},
		{"type: power.HTTP\nconfig: {on: {url: 'http://x', expect: {status: 99}}, off: {url: 'http://x'}}", "on.expect.status"},
		{"type: power.HTTP\nconfig: {on: {url: 'http://x', expect: {body: '('}}, off: {url: 'http://x'}}", "on.expect.body"},
		{"type: power.HTTP\nconfig: {on: {url: 'http://x'}, off: {url: 'http://x'}, status: {url: 'http://x'}}", "status_on: required with status"},
		{"type: power.HTTP\nconfig: {on: {url: 'http://x', body: a, data: b}, off: {url: 'http://x'}}", "on.data: give either body or data"},
		{"type: power.HTTP\nconfig: {on: {url: 'http://x'}, off: {url: 'http://x'}, power_on: {url: 'http://y'}}", "power_on: give either on or power_on"},
		{"type: power.HTTP\nconfig: {on: {url: 'http://x'}, off: {url: 'http://x'}, host: h}", "host: only applies with a preset"},
		{"type: power.HTTP\nconfig: {on: {}, off: {url: 'http://x'}}", `missing required field "url"`},
		{"type: power.HTTP\nconfig: {preset: tasmota}", "host: want the device's host"},
		{"type: power.HTTP\nconfig: {preset: tasmota, host: h, relay: 0}", "relay: want a Tasmota relay 1..32"},
		{"type: power.HTTP\nconfig: {preset: tasmota, host: h, generation: 2}", "generation: only applies to preset shelly"},
		{"type: power.HTTP\nconfig: {preset: shelly, host: h, generation: 3}", "generation: want 1 or 2"},
		{"type: power.HTTP\nconfig: {preset: shelly, host: 'h/x'}", "host"},
		{"type: power.HTTP\nconfig: {preset: shelly, host: h, on: {url: 'http://x'}}", "on: does not apply with preset shelly"},
		{"type: power.HTTP\nconfig: {preset: hue, host: h}", `preset: want "tasmota" or "shelly"`},
		{"type: power.HTTP\nconfig: {preset: shelly, host: h, timeout: 0s, reset: nope}", "timeout: must be positive"},
	}
	for _, tt := range tests {
		buildOne(t, tt.src, tt.wantErr)
	}
}

func TestHTTPPresets(t *testing.T) {
	e := newRelayEmulator(t)
	host := strings.TrimPrefix(e.URL, "http://")
	tests := []struct {
		name     string
		config   string
		want     []string // requests for on, status, off, status
		readWant *Reading
	}{
		{"tasmota relay 2", "{preset: tasmota, host: " + host + ", relay: 2}", []string{
			"GET /cm?cmnd=Power2%20On", "GET /cm?cmnd=Power2", "GET /cm?cmnd=Power2%20Off", "GET /cm?cmnd=Power2",
		}, &Reading{Voltage: 231, Current: 0.061}},
		{"tasmota with password", "{preset: tasmota, host: " + e.URL + ", username: admin, password: 'p&w'}", []string{
			"GET /cm?user=admin&password=p%26w&cmnd=Power1%20On", "GET /cm?user=admin&password=p%26w&cmnd=Power1",
			"GET /cm?user=admin&password=p%26w&cmnd=Power1%20Off", "GET /cm?user=admin&password=p%26w&cmnd=Power1",
		}, &Reading{Voltage: 231, Current: 0.061}},
		{"shelly gen1", "{preset: shelly, host: " + host + ", username: admin, password: pw}", []string{
			"GET /relay/0?turn=on", "GET /relay/0", "GET /relay/0?turn=off", "GET /relay/0",
		}, nil},
		{"shelly gen2", "{preset: shelly, generation: 2, host: " + host + "}", []string{
			"GET /rpc/Switch.Set?id=0&on=true", "GET /rpc/Switch.GetStatus?id=0",
			"GET /rpc/Switch.Set?id=0&on=false", "GET /rpc/Switch.GetStatus?id=0",
		}, &Reading{Voltage: 237.5, Current: 0}},
		{"generic", `
  on: {method: POST, url: '` + e.URL + `/api/power', body: action=on, headers: {X-Token: secret}, expect: {status: 200, body: '^OK$'}}
  off: {url: '` + e.URL + `/api/power', body: action=off, headers: {X-Token: secret}}
  status: {url: '` + e.URL + `/api/state'}
  status_on: 'state: ON'`, []string{
			"POST /api/power action=on", "GET /api/state", "POST /api/power action=off", "GET /api/state",
		}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e.set(func(e *relayEmulator) { e.user, e.password = "", "" })
			if strings.Contains(tt.config, "password") {
				e.set(func(e *relayEmulator) { e.user, e.password = "admin", "pw" })
				if strings.Contains(tt.config, "p&w") {
					e.set(func(e *relayEmulator) { e.password = "p&w" })
				}
			}
			d := buildOne(t, "type: power.HTTP\nconfig: "+tt.config, "")
			e.requests()
			call(t, d, "on")
			if got := status(t, d); got != "on" {
				t.Fatalf("status after on: got %q, want on", got)
			}
			call(t, d, "off")
			if got := status(t, d); got != "off" {
				t.Fatalf("status after off: got %q, want off", got)
			}
			if got := e.requests(); strings.Join(got, "\n") != strings.Join(tt.want, "\n") {
				t.Fatalf("requests: got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(tt.want, "\n"))
			}
			items, err := drivertest.CollectStream(context.Background(), d, "read", int64(1))
			if tt.readWant == nil {
				wantCode(t, err, wire.Unimplemented, "cannot measure")
				return
			}
			if err != nil || len(items) != 1 {
				t.Fatalf("read: got %v, %v, want one reading", items, err)
			}
			if r, _ := ParseReading(items[0]); r != *tt.readWant {
				t.Fatalf("read: got %v, want %v", r, *tt.readWant)
			}
		})
	}
}

func TestHTTPJumpstarterConfig(t *testing.T) {
	e := newRelayEmulator(t)
	e.set(func(e *relayEmulator) { e.user, e.password = "admin", "something" })
	d := buildOne(t, `type: jumpstarter_driver_http_power.driver.HttpPower
config:
  name: my-splug
  power_on: {url: "`+e.URL+`/rpc/Switch.Set?id=0&on=true"}
  power_off: {url: "`+e.URL+`/rpc/Switch.Set?id=0&on=false"}
  power_read: {url: "`+e.URL+`/rpc/Switch.GetStatus?id=0"}
  auth: {basic: {user: admin, password: something}}`, "")
	call(t, d, "on")
	items, err := drivertest.CollectStream(context.Background(), d, "read", int64(1))
	if err != nil {
		t.Fatal(err)
	}
	if r, _ := ParseReading(items[0]); r != (Reading{Voltage: 237.5, Current: 0.068}) {
		t.Fatalf("read: got %v, want 237.5 V 0.068 A", r)
	}
	if got := status(t, d); got != "on" {
		t.Fatalf("assumed status: got %q, want on", got)
	}
	want := "GET /rpc/Switch.Set?id=0&on=true\nGET /rpc/Switch.GetStatus?id=0"
	if got := strings.Join(e.requests(), "\n"); got != want {
		t.Fatalf("requests: got\n%s\nwant\n%s", got, want)
	}
}

func TestHTTPFailures(t *testing.T) {
	e := newRelayEmulator(t)
	host := strings.TrimPrefix(e.URL, "http://")
	ctx := context.Background()
	tasmota := buildOne(t, "type: power.HTTP\nconfig: {preset: tasmota, host: "+host+", timeout: 300ms}", "")
	shelly := buildOne(t, "type: power.HTTP\nconfig: {preset: shelly, host: "+host+"}", "")
	generic := buildOne(t, "type: power.HTTP\nconfig: {on: {url: '"+e.URL+"/api/power', body: action=on, headers: {X-Token: secret}, expect: {body: '^OK$'}}, off: {url: '"+e.URL+"/nothing'}}", "")
	wrongRelay := buildOne(t, "type: power.HTTP\nconfig: {preset: tasmota, host: "+host+", relay: 5}", "")

	e.set(func(e *relayEmulator) { e.fail = 500 })
	_, err := drivertest.CallMethod(ctx, tasmota, "on")
	wantCode(t, err, wire.FailedPrecondition, "on: GET "+e.URL+"/cm?cmnd=Power1%20On: got status 500, want 2xx; body \"relay on fire\\n\"")
	e.set(func(e *relayEmulator) { e.fail, e.garbage = 0, "<html>login</html>" })
	_, err = drivertest.CallMethod(ctx, shelly, "status")
	wantCode(t, err, wire.FailedPrecondition, `status: GET `+e.URL+`/relay/0: want {"ison": true|false, ...}, got "<html>login</html>"`)
	_, err = drivertest.CallMethod(ctx, generic, "on")
	wantCode(t, err, wire.FailedPrecondition, `got body "<html>login</html>", want a match of "^OK$"`)
	e.set(func(e *relayEmulator) { e.garbage = "" })
	_, err = drivertest.CallMethod(ctx, generic, "off")
	wantCode(t, err, wire.FailedPrecondition, "got status 404, want 2xx")
	_, err = drivertest.CallMethod(ctx, wrongRelay, "on")
	wantCode(t, err, wire.FailedPrecondition, `tasmota answered Command "Unknown" (no relay 5?)`)

	e.set(func(e *relayEmulator) { e.hang = true })
	_, err = drivertest.CallMethod(ctx, tasmota, "off")
	wantCode(t, err, wire.DeadlineExceeded, "no answer within 300ms")
	e.set(func(e *relayEmulator) { e.hang = false })

	// Nobody listening.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	gone := buildOne(t, "type: power.HTTP\nconfig: {preset: tasmota, host: "+addr+", password: hunter2}", "")
	_, err = drivertest.CallMethod(ctx, gone, "on")
	wantCode(t, err, wire.Unavailable, "connection refused")
	if strings.Contains(err.Error(), "hunter2") {
		t.Fatalf("error shows the password: %v", err)
	}
}

func TestShownURL(t *testing.T) {
	tests := []struct{ in, want string }{
		{"http://h/cm?cmnd=Power1", "http://h/cm?cmnd=Power1"},
		{"http://h/cm?user=admin&password=s3cret&cmnd=Power1%20On", "http://h/cm?cmnd=Power1%20On&password=xxxxx&user=admin"},
		{"http://u:pw@h/x", "http://u:xxxxx@h/x"},
	}
	for _, tt := range tests {
		if got := shownURL(tt.in); got != tt.want {
			t.Errorf("shownURL(%q): got %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestParseTasmotaPower(t *testing.T) {
	tests := []struct {
		body  string
		relay int
		want  State
		err   string
	}{
		{`{"POWER":"ON"}`, 1, On, ""},
		{`{"POWER1":"OFF"}`, 1, Off, ""},
		{`{"POWER2":"ON"}`, 2, On, ""},
		{`{"POWER":"ON"}`, 2, "", "want JSON like"},
		{`{"POWER1":"BLINK"}`, 1, "", `POWER1 is "BLINK"`},
		{`{"Command":"Unknown"}`, 3, "", "no relay 3"},
		{`nope`, 1, "", "want JSON like"},
	}
	for _, tt := range tests {
		got, err := parseTasmotaPower([]byte(tt.body), tt.relay)
		if got != tt.want || (tt.err == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tt.err)) {
			t.Errorf("parseTasmotaPower(%s, %d): got %q, %v, want %q, %q", tt.body, tt.relay, got, err, tt.want, tt.err)
		}
	}
}

func TestParseReadingJSON(t *testing.T) {
	tests := []struct {
		body, vp, cp string
		want         Reading
		err          string
	}{
		{`{"voltage": 5, "current": 1.5}`, "", "", Reading{5, 1.5}, ""},
		{`{"apower": 3}`, "", "", Reading{}, ""},
		{`{"emeter": {"voltage": 230}, "meters": [{"current": 0.5}]}`, "emeter.voltage", "meters.0.current", Reading{230, 0.5}, ""},
		{`{"emeter": {}}`, "emeter.voltage", "", Reading{}, `no "emeter.voltage"`},
		{`{"voltage": "high"}`, "", "", Reading{}, "want a number"},
		{`{"a": [1]}`, "a.3", "", Reading{}, `no "a.3"`},
		{`[`, "", "", Reading{}, "want JSON"},
	}
	for _, tt := range tests {
		got, err := parseReadingJSON([]byte(tt.body), tt.vp, tt.cp)
		if got != tt.want || (tt.err == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tt.err)) {
			t.Errorf("parseReadingJSON(%s): got %v, %v, want %v, %q", tt.body, got, err, tt.want, tt.err)
		}
	}
}

// FuzzHTTPResponses feeds device answers to every response parser: none may panic.
func FuzzHTTPResponses(f *testing.F) {
	for _, s := range []string{`{"POWER":"ON"}`, `{"POWER2":"OFF"}`, `{"ison":true}`, `{"was_on":false}`,
		`{"output":true,"voltage":230.1,"current":0.1}`, `{"StatusSNS":{"ENERGY":{"Voltage":230,"Current":0.1}}}`,
		`{"a":[1,{"b":2}]}`, `null`, `[]`, ``, `{"POWER":5}`} {
		f.Add([]byte(s), 1, "a.1.b")
	}
	f.Fuzz(func(t *testing.T, b []byte, relay int, path string) {
		_, _ = parseTasmotaPower(b, relay)
		_, _ = parseShelly1(b)
		_ = parseShelly2Set(b)
		_, _ = parseReadingJSON(b, path, "")
		_, _ = parseReadingJSON(b, "", path)
		_ = fmt.Sprint(snippet(b))
	})
}
