package power

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"jsn.dev/jsn/drivers/driver"
)

// presetCalls prepares the calls of preset h.Preset (tasmota or shelly) into p, and sets what the
// preset implies for auth. on, off and read are the requests as configured (Jumpstarter's keys
// included): a preset has its own.
func (h *HTTP) presetCalls(p *httpPlan, on, off, read *HTTPRequest) error {
	var errs []error
	for _, k := range []struct {
		key string
		set bool
	}{{"on", on != nil}, {"off", off != nil}, {"status", h.StatusReq != nil},
		{"status_on", h.StatusOn != ""}, {"read", read != nil}} {
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
		tasmotaCalls(p, base, relay)
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
			shelly1Calls(p, base, relay)
		case 2:
			shelly2Calls(p, base, relay)
			// Gen2+ devices speak digest only, as user admin.
			p.auth.digestFirst = true
			if p.auth.user == "" && p.auth.password != "" {
				p.auth.user = "admin"
			}
		default:
			errs = append(errs, driver.FieldErrorf("generation", "want 1 or 2, got %d", h.Generation))
		}
	}
	return errors.Join(errs...)
}

// tasmotaCalls prepares Tasmota's web commands: GET /cm?cmnd=Power<N> On|Off, Power<N> for the
// state, Status 10 for the energy sensor. Tasmota's web password goes in the query.
func tasmotaCalls(p *httpPlan, base string, relay int) {
	cm := func(cmnd string) string {
		q := ""
		if p.auth.user != "" || p.auth.password != "" {
			user := p.auth.user
			if user == "" {
				user = "admin"
			}
			q = "user=" + url.QueryEscape(user) + "&password=" + url.QueryEscape(p.auth.password) + "&"
		}
		return base + "/cm?" + q + "cmnd=" + strings.ReplaceAll(url.QueryEscape(cmnd), "+", "%20")
	}
	power := "Power" + strconv.Itoa(relay)
	state := func(b []byte) (any, error) { return parseTasmotaPower(b, relay) }
	p.on = &httpCall{action: "on", method: http.MethodGet, url: cm(power + " On"), parse: state}
	p.off = &httpCall{action: "off", method: http.MethodGet, url: cm(power + " Off"), parse: state}
	p.status = &httpCall{action: "status", method: http.MethodGet, url: cm(power), parse: state}
	p.read = &httpCall{action: "read", method: http.MethodGet, url: cm("Status 10"), parse: func(b []byte) (any, error) {
		return parseReadingJSON(b, "StatusSNS.ENERGY.Voltage", "StatusSNS.ENERGY.Current")
	}}
}

// shelly1Calls prepares Shelly Gen1's /relay/<id>?turn=on|off and /relay/<id>.
func shelly1Calls(p *httpPlan, base string, relay int) {
	u := base + "/relay/" + strconv.Itoa(relay)
	state := func(b []byte) (any, error) { return parseShelly1(b) }
	p.on = &httpCall{action: "on", method: http.MethodGet, url: u + "?turn=on", parse: state}
	p.off = &httpCall{action: "off", method: http.MethodGet, url: u + "?turn=off", parse: state}
	p.status = &httpCall{action: "status", method: http.MethodGet, url: u, parse: state}
}

// shelly2Calls prepares Shelly Gen2+'s RPC over HTTP GET: Switch.Set and Switch.GetStatus, which
// also reports voltage and current on metering devices.
func shelly2Calls(p *httpPlan, base string, relay int) {
	id := strconv.Itoa(relay)
	p.on = &httpCall{action: "on", method: http.MethodGet, url: base + "/rpc/Switch.Set?id=" + id + "&on=true",
		parse: func(b []byte) (any, error) { return nil, parseShelly2Set(b) }}
	p.off = &httpCall{action: "off", method: http.MethodGet, url: base + "/rpc/Switch.Set?id=" + id + "&on=false",
		parse: func(b []byte) (any, error) { return nil, parseShelly2Set(b) }}
	get := base + "/rpc/Switch.GetStatus?id=" + id
	p.status = &httpCall{action: "status", method: http.MethodGet, url: get, parse: func(b []byte) (any, error) {
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
	p.read = &httpCall{action: "read", method: http.MethodGet, url: get, parse: func(b []byte) (any, error) {
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
