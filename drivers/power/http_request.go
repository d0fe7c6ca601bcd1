package power

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"

	"jsn.dev/jsn/drivers/driver"
)

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

// genericCall prepares the request r of action (key in the config); nil r gives nil.
func genericCall(key string, r *HTTPRequest) (*httpCall, error) {
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

// request builds the HTTP request of c.
func (c *httpCall) request(ctx context.Context) (*http.Request, error) {
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
