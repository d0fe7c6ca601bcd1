package power

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"go.yaml.in/yaml/v3"

	"jsn.dev/jsn/bus/wire"
	"jsn.dev/jsn/drivers/driver"
)

// Auth modes.
const (
	authAuto   = "auto"   // basic up front, digest when a 401 asks for it
	authBasic  = "basic"  // basic only
	authDigest = "digest" // digest only
)

// httpAuth is how power.HTTP authenticates, as its config says.
type httpAuth struct {
	user, password string
	mode           string // authAuto, authBasic or authDigest
	// digestFirst: in auto mode, send no basic credentials up front (the device speaks digest)
	digestFirst bool
}

// creds reports whether there are credentials to send.
func (a httpAuth) creds() bool { return a.user != "" || a.password != "" }

// maxPasswordFile bounds what is read of password_file.
const maxPasswordFile = 4096

// authConfig reads auth (a mode or Jumpstarter's block), username, password and password_file.
func (h *HTTP) authConfig() (httpAuth, error) {
	a := httpAuth{user: h.Username, password: h.Password, mode: authAuto}
	var errs []error
	if n := h.Auth; n != nil {
		for i := 0; n.Kind == yaml.AliasNode && n.Alias != nil && i < 100; i++ {
			n = n.Alias
		}
		switch {
		case n.Kind == yaml.ScalarNode && n.ShortTag() == "!!str":
			switch n.Value {
			case authAuto, authBasic, authDigest:
				a.mode = n.Value
			default:
				errs = append(errs, driver.FieldErrorf("auth", "want basic, digest or auto, got %q", n.Value))
			}
		case n.Kind == yaml.MappingNode:
			var block HTTPAuth
			if err := driver.DecodeConfig("", n, "", &block); err != nil {
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
			a.user, a.password = block.Basic.User, block.Basic.Password
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
			a.password = pw
		}
	}
	switch {
	case h.Preset == "tasmota" && a.mode != authAuto:
		errs = append(errs, driver.FieldErrorf("auth", "does not apply with preset tasmota (its password goes in the query)"))
	case h.Preset == "shelly" && h.Generation == 2 && a.mode == authBasic:
		errs = append(errs, driver.FieldErrorf("auth", "shelly generation 2 devices speak digest auth, not basic"))
	case a.mode == authDigest && a.password == "":
		errs = append(errs, driver.FieldErrorf("auth", "digest needs password or password_file"))
	case a.mode == authDigest && a.user == "" && h.Preset != "shelly":
		errs = append(errs, driver.FieldErrorf("username", "required with auth: digest"))
	}
	return a, errors.Join(errs...)
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

// authError is a request the device refused with 401 Unauthorized, and why; the driver names
// the action and URL around it.
type authError struct {
	code wire.Code
	msg  string
}

func (e *authError) Error() string { return "401 Unauthorized: " + e.msg }

// acceptUnauthorizedKey marks a request whose expected answer is 401 (`expect: {status: 401}`):
// the transport passes that answer through instead of answering the challenge.
type acceptUnauthorizedKey struct{}

// acceptUnauthorized returns ctx marking requests made with it as expecting 401.
func acceptUnauthorized(ctx context.Context) context.Context {
	return context.WithValue(ctx, acceptUnauthorizedKey{}, true)
}

// authTransport is the http.RoundTripper of power.HTTP that answers a device's auth
// challenges: basic credentials up front (auth basic, or auto unless the device is known to
// speak digest), digest credentials up front once a challenge of the origin is known, and on a
// 401 with a Digest challenge one more round with the new nonce (two when the first answer was a
// cached nonce and the next says stale). A 401 after credentials were sent is a wrong username
// or password. Its refusals are *authError: UNAVAILABLE like a device that refuses the command
// (PERMISSION_DENIED is the lease's), FAILED_PRECONDITION for a challenge it cannot read.
type authTransport struct {
	base http.RoundTripper
	auth httpAuth
	log  *slog.Logger

	mu     sync.Mutex
	digest map[string]*digestSession // by origin (scheme://host); guarded by mu
}

// RoundTrip sends req, answering auth challenges; see authTransport. req's body is sent again
// for each round (GetBody).
func (t *authTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	a := t.auth
	creds := a.creds()
	origin := req.URL.Scheme + "://" + req.URL.Host
	basic := creds && (a.mode == authBasic || a.mode == authAuto && !a.digestFirst && !t.hasDigest(origin))
	passUnauthorized, _ := req.Context().Value(acceptUnauthorizedKey{}).(bool)
	body, err := bodyOf(req)
	if err != nil {
		return nil, err
	}
	fail := func(code wire.Code, format string, args ...any) error {
		return &authError{code: code, msg: fmt.Sprintf(format, args...)}
	}
	staleRetried := false
	for attempt := 0; ; attempt++ {
		r := req.Clone(req.Context())
		if req.GetBody != nil {
			if r.Body, err = req.GetBody(); err != nil {
				return nil, err
			}
		}
		sent := "" // the credentials sent: "", "basic" or "digest"
		if creds && a.mode != authBasic {
			if auth := t.digestAuthorization(origin, r, body); auth != "" {
				r.Header.Set("Authorization", auth)
				sent = "digest"
			}
		}
		if sent == "" && basic {
			r.SetBasicAuth(a.user, a.password)
			sent = "basic"
		}
		resp, err := t.base.RoundTrip(r)
		if err != nil {
			return nil, err
		}
		t.log.Debug("http power request", "method", r.Method, "url", shownURL(r.URL.String()), "status", resp.StatusCode, "auth", sent)
		if resp.StatusCode != http.StatusUnauthorized || passUnauthorized {
			if sent == "digest" {
				t.nextNonce(origin, resp.Header.Get("Authentication-Info"))
			}
			return resp, nil
		}
		cs, perr := parseChallenges(resp.Header.Values("WWW-Authenticate"))
		dc, found, derr := digestFrom(cs)
		var refused error
		switch {
		case found && derr != nil:
			if perr != nil {
				derr = perr // the cause
			}
			refused = fail(wire.FailedPrecondition, "bad digest challenge: %v", derr)
		case found && !creds:
			refused = fail(wire.Unavailable, "the device asks for digest auth (realm %q); set password or password_file", dc.realm)
		case found && a.mode == authBasic:
			refused = fail(wire.Unavailable, "the device asks for digest auth, not basic (auth: basic)")
		case found:
			t.log.Debug("digest challenge", "realm", dc.realm, "algorithm", dc.algorithm, "qop", dc.qop, "stale", dc.stale)
			t.setDigest(origin, dc)
			switch {
			case attempt == 0:
				staleRetried = dc.stale
			case dc.stale && !staleRetried:
				staleRetried = true
			default:
				refused = fail(wire.Unavailable, "wrong username or password (digest auth)")
			}
		case sent == "basic":
			refused = fail(wire.Unavailable, "wrong username or password (basic auth)")
		case creds && sent == "" && attempt == 0 && a.mode == authAuto && hasScheme(cs, "Basic"):
			basic = true // a device that said digest first, then basic: answer what it asks
		case a.mode == authDigest && len(cs) == 0:
			refused = fail(wire.Unavailable, "the device sent no digest challenge%s (auth: digest)", unreadable(perr))
		case a.mode == authDigest:
			refused = fail(wire.Unavailable, "the device asks for %s auth, not digest (auth: digest)", schemes(cs))
		case !creds && len(cs) > 0:
			refused = fail(wire.Unavailable, "the device asks for %s auth; set username and password", schemes(cs))
		default:
			return resp, nil // nothing to answer: the 401 is the device's answer
		}
		// Another round, or a refusal: this answer is done with.
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxHTTPBody))
		resp.Body.Close()
		if refused != nil {
			return nil, refused
		}
	}
}

// bodyOf returns the body req will send, for digest's auth-int, without consuming it.
func bodyOf(req *http.Request) (string, error) {
	if req.Body == nil || req.Body == http.NoBody || req.GetBody == nil {
		return "", nil
	}
	rc, err := req.GetBody()
	if err != nil {
		return "", err
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	return string(b), err
}

func (t *authTransport) hasDigest(origin string) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.digest[origin] != nil
}

// digestAuthorization is the Authorization header for req with the cached challenge of origin
// (nonce count incremented), or "" when there is none.
func (t *authTransport) digestAuthorization(origin string, req *http.Request, body string) string {
	t.mu.Lock()
	defer t.mu.Unlock()
	s := t.digest[origin]
	if s == nil {
		return ""
	}
	return s.authorize(t.auth.user, t.auth.password, req.Method, req.URL.RequestURI(), body)
}

// setDigest caches the challenge dc of origin, with a fresh nonce count.
func (t *authTransport) setDigest(origin string, dc digestChallenge) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.digest == nil {
		t.digest = map[string]*digestSession{}
	}
	t.digest[origin] = &digestSession{dc: dc}
}

func (t *authTransport) nextNonce(origin, info string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if s := t.digest[origin]; s != nil {
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
