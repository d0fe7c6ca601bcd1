package power

import (
	"context"
	"crypto/md5"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"jsn.dev/jsn/bus/wire"
	"jsn.dev/jsn/client"
	"jsn.dev/jsn/drivers/driver"
	"jsn.dev/jsn/drivers/drivertest"
	"jsn.dev/jsn/exporter"
)

// shellyDigest is the digest auth of a Shelly Gen2+ device with a password (RFC 7616 as the
// device does it): user admin, realm the device id, qop auth, a fresh nonce per challenge. It
// checks the response hash, the uri, the nonce and that no nonce count is used twice. Guarded
// by the emulator's mu.
type shellyDigest struct {
	password     string
	algorithm    string // SHA-256 (default) or MD5
	opaque       string // sent in challenges and required back when set
	nonces       map[string]*emuNonce
	next         int
	unauthorized int      // 401s answered
	why          []string // why each 401 was answered
}

type emuNonce struct {
	stale bool
	used  map[string]bool // nc values
}

const shellyRealm = "shellyplus1-a8032ab12345"

func newShellyDigest(password string) *shellyDigest {
	return &shellyDigest{password: password, algorithm: "SHA-256", nonces: map[string]*emuNonce{}}
}

// markStale makes every nonce issued so far stale, as the device does when they expire.
func (d *shellyDigest) markStale() {
	for _, n := range d.nonces {
		n.stale = true
	}
}

func (d *shellyDigest) hash(s string) string {
	if d.algorithm == "MD5" {
		sum := md5.Sum([]byte(s))
		return hex.EncodeToString(sum[:])
	}
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

var emuAuthParam = regexp.MustCompile(`(\w+)=(?:"((?:[^"\\]|\\.)*)"|([^,\s]*))`)

// check answers 401 with a challenge (and returns false) unless r carries a valid digest.
func (d *shellyDigest) check(w http.ResponseWriter, r *http.Request) bool {
	challenge := func(stale bool, why string) bool {
		d.next++
		nonce := strconv.Itoa(1700000000 + d.next)
		d.nonces[nonce] = &emuNonce{used: map[string]bool{}}
		v := `Digest qop="auth", realm="` + shellyRealm + `", nonce="` + nonce + `", algorithm=` + d.algorithm
		if d.opaque != "" {
			v += `, opaque="` + d.opaque + `"`
		}
		if stale {
			v += ", stale=true"
		}
		w.Header().Set("WWW-Authenticate", v)
		w.WriteHeader(http.StatusUnauthorized)
		d.unauthorized++
		d.why = append(d.why, why)
		return false
	}
	auth := r.Header.Get("Authorization")
	if !strings.HasPrefix(auth, "Digest ") {
		return challenge(false, "no digest")
	}
	p := map[string]string{}
	for _, m := range emuAuthParam.FindAllStringSubmatch(auth[len("Digest "):], -1) {
		p[m[1]] = strings.NewReplacer(`\"`, `"`, `\\`, `\`).Replace(m[2]) + m[3]
	}
	n := d.nonces[p["nonce"]]
	switch {
	case p["username"] != "admin" || p["realm"] != shellyRealm:
		return challenge(false, "user or realm")
	case p["uri"] != r.URL.RequestURI():
		return challenge(false, "uri "+p["uri"])
	case p["qop"] != "auth" || p["cnonce"] == "" || len(p["nc"]) != 8 || p["algorithm"] != d.algorithm:
		return challenge(false, "qop, cnonce, nc or algorithm")
	case d.opaque != "" && p["opaque"] != d.opaque:
		return challenge(false, "opaque")
	case n == nil:
		return challenge(false, "unknown nonce")
	case n.stale:
		return challenge(true, "stale nonce")
	case n.used[p["nc"]]:
		return challenge(false, "nc used twice")
	}
	n.used[p["nc"]] = true
	ha1 := d.hash("admin:" + shellyRealm + ":" + d.password)
	ha2 := d.hash(r.Method + ":" + p["uri"])
	if p["response"] != d.hash(ha1+":"+p["nonce"]+":"+p["nc"]+":"+p["cnonce"]+":auth:"+ha2) {
		return challenge(false, "wrong response")
	}
	return true
}

func (e *relayEmulator) unauthorized() (int, []string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.digest.unauthorized, append([]string(nil), e.digest.why...)
}

func TestDigestResponseVectors(t *testing.T) {
	// RFC 7616 3.9.1 and RFC 2617 3.5.
	rfc7616 := digestChallenge{realm: "http-auth@example.org", nonce: "7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v",
		opaque: "FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS", qop: "auth"}
	md5c, sha := rfc7616, rfc7616
	md5c.algorithm, sha.algorithm = "MD5", "SHA-256"
	rfc2617 := digestChallenge{realm: "testrealm@host.com", nonce: "dcd98b7102dd2f0e8b11d0f600bfb0c093", qop: "auth", algorithm: "MD5"}
	tests := []struct {
		dc                   digestChallenge
		user, password       string
		nc, cnonce, response string
	}{
		{md5c, "Mufasa", "Circle of Life", "00000001", "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ", "8ca523f5e9506fed4657c9700eebdbec"},
		{sha, "Mufasa", "Circle of Life", "00000001", "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ", "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1"},
		{rfc2617, "Mufasa", "Circle Of Life", "00000001", "0a4f113b", "6629fae49393a05397450978507c4ef1"},
	}
	for _, tt := range tests {
		if got := digestResponse(tt.dc, tt.user, tt.password, "GET", "/dir/index.html", tt.nc, tt.cnonce, ""); got != tt.response {
			t.Errorf("%s %s: got %s, want %s", tt.dc.realm, tt.dc.algorithm, got, tt.response)
		}
	}
	// The header carries what the server needs, quoted where RFC 7616 says so.
	sha.algParam = "SHA-256"
	h := digestAuthorization(sha, `Mu"fasa`, "x", "GET", "/dir/index.html", 10, "abc", "")
	for _, want := range []string{`Digest username="Mu\"fasa"`, `realm="http-auth@example.org"`, `uri="/dir/index.html"`,
		"algorithm=SHA-256", "qop=auth", "nc=0000000a", `cnonce="abc"`, `opaque="FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS"`} {
		if !strings.Contains(h, want) {
			t.Errorf("Authorization %s: want %s in it", h, want)
		}
	}
}

func TestParseChallenges(t *testing.T) {
	tests := []struct {
		in   string
		want string // challenges as "scheme{k=v,…}" or "scheme[token68]", sorted params
		err  string
	}{
		{`Digest qop="auth", realm="shellyplus1-a8032ab12345", nonce="1631184000", algorithm=SHA-256`,
			`Digest{algorithm=SHA-256,nonce=1631184000,qop=auth,realm=shellyplus1-a8032ab12345}`, ""},
		{`Basic realm="x", Digest realm="a \"b\" \\c", Nonce=n, qop="auth,auth-int"`,
			`Basic{realm=x} Digest{nonce=n,qop=auth,auth-int,realm=a "b" \c}`, ""},
		{`Negotiate abc==, Bearer`, `Negotiate[abc==] Bearer{}`, ""},
		{`Digest realm = "r" ,, nonce=n,  unknown="z"`, `Digest{nonce=n,realm=r,unknown=z}`, ""},
		{``, ``, ""},
		{` , `, ``, ""},
		{`Digest realm="r`, `Digest{}`, "unterminated quoted string"},
		{`Digest realm="r\`, `Digest{}`, "unterminated quoted string"},
		{`Digest realm=r, realm=s`, `Digest{realm=r}`, "given twice"},
		{`Digest realm="a` + "\x01" + `"`, `Digest{}`, "control character"},
		{`Digest realm=, nonce=n`, `Digest[realm=] nonce{}`, "unexpected"},
		{`"Digest"`, ``, "want an auth scheme"},
		{`Digest realm=r nonce=n`, `Digest{realm=r}`, "unexpected"},
	}
	for _, tt := range tests {
		cs, err := parseChallenges([]string{tt.in})
		if got := formatChallenges(cs); got != tt.want || (tt.err == "") != (err == nil) || err != nil && !strings.Contains(err.Error(), tt.err) {
			t.Errorf("parseChallenges(%q): got %s, %v, want %s, %q", tt.in, got, err, tt.want, tt.err)
		}
	}
}

func formatChallenges(cs []authChallenge) string {
	var out []string
	for _, c := range cs {
		if c.token68 != "" {
			out = append(out, c.scheme+"["+c.token68+"]")
			continue
		}
		var ps []string
		for k, v := range c.params {
			ps = append(ps, k+"="+v)
		}
		sortStrings(ps)
		out = append(out, c.scheme+"{"+strings.Join(ps, ",")+"}")
	}
	return strings.Join(out, " ")
}

func sortStrings(s []string) {
	for i := 1; i < len(s); i++ {
		for j := i; j > 0 && s[j] < s[j-1]; j-- {
			s[j], s[j-1] = s[j-1], s[j]
		}
	}
}

func TestDigestFrom(t *testing.T) {
	tests := []struct {
		in    string
		found bool
		want  string // algorithm qop, or the error
	}{
		{`Digest realm="r", nonce="n", qop="auth", algorithm=SHA-256`, true, "SHA-256 auth"},
		{`Digest realm="r", nonce="n"`, true, "MD5 "},
		{`Digest realm="r", nonce="n", qop="auth-int"`, true, "MD5 auth-int"},
		{`Digest realm="r", nonce="n", qop="auth-int, auth", algorithm=sha-256-sess`, true, "SHA-256-SESS auth"},
		{`Digest realm="r", nonce="n", algorithm=SHA-512, Digest realm="r", nonce="m", algorithm=MD5`, true, "MD5 "},
		{`Digest realm="r", nonce="n", algorithm=SHA-512`, true, `digest algorithm "SHA-512" not supported`},
		{`Digest realm="r", qop=auth`, true, "digest challenge has no nonce"},
		{`Digest nonce="n"`, true, "digest challenge has no realm"},
		{`Digest realm="r", nonce="n", qop=auth-conf`, true, "qop"},
		{`Digest realm="r", nonce="n", algorithm=MD5-sess`, true, "needs a qop"},
		{`Basic realm="r"`, false, ""},
	}
	for _, tt := range tests {
		cs, _ := parseChallenges([]string{tt.in})
		dc, found, err := digestFrom(cs)
		got := dc.algorithm + " " + dc.qop
		if err != nil {
			got = err.Error()
		}
		if found != tt.found || !strings.Contains(got, tt.want) {
			t.Errorf("digestFrom(%q): got %v %q, want %v %q", tt.in, found, got, tt.found, tt.want)
		}
	}
}

// FuzzParseChallenges feeds WWW-Authenticate values to the parser: no panic, a usable digest
// challenge has a nonce and an algorithm spoken, and quoting round-trips.
func FuzzParseChallenges(f *testing.F) {
	for _, s := range []string{
		`Digest qop="auth", realm="shellyplus1-a8032ab12345", nonce="1631184000", algorithm=SHA-256`,
		`Basic realm="x", Digest realm="a \"b\"", nonce=n, qop="auth,auth-int", stale=TRUE, opaque="o"`,
		`Negotiate abc==, Bearer`, `Digest realm="r`, `Digest realm=r, realm=s`, ``, `,,`, `Digest realm=, x`,
		`Digest realm="r", nonce="n", algorithm=MD5-sess, qop=auth, userhash=true`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		cs, _ := parseChallenges([]string{s})
		dc, _, err := digestFrom(cs)
		if err == nil && len(cs) > 0 && dc.nonce != "" {
			if _, ok := digestAlgorithms[strings.TrimSuffix(dc.algorithm, "-SESS")]; !ok {
				t.Fatalf("%q: algorithm %q accepted", s, dc.algorithm)
			}
			_ = digestAuthorization(dc, "admin", "pw", "GET", "/", 1, "c", "")
		}
		if strings.ContainsFunc(s, func(r rune) bool { return r < ' ' && r != '\t' || r == 0x7f }) {
			return // control characters cannot be quoted
		}
		back, err := parseChallengeValue("Digest realm=" + quoteParam(s))
		if err != nil || len(back) != 1 || back[0].params["realm"] != s {
			t.Fatalf("quoteParam(%q) did not round-trip: %v, %v", s, back, err)
		}
		var sess digestSession
		sess.nextNonce(s)
	})
}

func TestHTTPDigest(t *testing.T) {
	e := newRelayEmulator(t)
	host := strings.TrimPrefix(e.URL, "http://")
	for _, alg := range []string{"SHA-256", "MD5"} {
		t.Run(alg, func(t *testing.T) {
			e.set(func(e *relayEmulator) {
				e.digest = newShellyDigest("s3cret")
				e.digest.algorithm = alg
				if alg == "MD5" {
					e.digest.opaque = "op/aque"
				}
			})
			d := buildOne(t, "type: power.HTTP\nconfig: {preset: shelly, generation: 2, host: "+host+", password: s3cret}", "")
			e.requests()
			call(t, d, "on")
			if n, why := e.unauthorized(); n != 1 {
				t.Fatalf("401s after the first call: got %d (%v), want 1", n, why)
			}
			for i := 0; i < 3; i++ {
				if got := status(t, d); got != "on" {
					t.Fatalf("status: got %q, want on", got)
				}
			}
			call(t, d, "off")
			if got := status(t, d); got != "off" {
				t.Fatalf("status: got %q, want off", got)
			}
			// Credentials went up front: only the very first request was refused.
			if n, why := e.unauthorized(); n != 1 {
				t.Fatalf("401s: got %d (%v), want 1", n, why)
			}
			want := "GET /rpc/Switch.Set?id=0&on=true\nGET /rpc/Switch.Set?id=0&on=true" + strings.Repeat("\nGET /rpc/Switch.GetStatus?id=0", 3) +
				"\nGET /rpc/Switch.Set?id=0&on=false\nGET /rpc/Switch.GetStatus?id=0"
			if got := strings.Join(e.requests(), "\n"); got != want {
				t.Fatalf("requests: got\n%s\nwant\n%s", got, want)
			}

			// The nonce expires: the device says stale, the driver retries once with the new one.
			e.set(func(e *relayEmulator) { e.digest.markStale() })
			call(t, d, "on")
			if n, why := e.unauthorized(); n != 2 || why[1] != "stale nonce" {
				t.Fatalf("401s after a stale nonce: got %d (%v), want 2, the last for the stale nonce", n, why)
			}
			if got := len(e.requests()); got != 2 {
				t.Fatalf("requests for on with a stale nonce: got %d, want 2", got)
			}
			if got := status(t, d); got != "on" {
				t.Fatalf("status: got %q, want on", got)
			}
			if n, _ := e.unauthorized(); n != 2 {
				t.Fatalf("401s: got %d, want 2", n)
			}

			// The device forgets its nonces (reboot): no stale flag, one more round.
			e.set(func(e *relayEmulator) { e.digest.nonces = map[string]*emuNonce{} })
			if got := status(t, d); got != "on" {
				t.Fatalf("status after the device forgot its nonces: got %q, want on", got)
			}
		})
	}
}

func TestHTTPDigestFailures(t *testing.T) {
	e := newRelayEmulator(t)
	e.set(func(e *relayEmulator) { e.digest = newShellyDigest("s3cret") })
	host := strings.TrimPrefix(e.URL, "http://")
	ctx := context.Background()

	wrong := buildOne(t, "type: power.HTTP\nconfig: {preset: shelly, generation: 2, host: "+host+", password: guess}", "")
	_, err := drivertest.CallMethod(ctx, wrong, "on")
	wantCode(t, err, wire.Unavailable, "on: GET "+e.URL+"/rpc/Switch.Set?id=0&on=true: 401 Unauthorized: wrong username or password (digest auth)")
	if strings.Contains(err.Error(), "guess") {
		t.Fatalf("error shows the password: %v", err)
	}
	if n, why := e.unauthorized(); n != 2 {
		t.Fatalf("401s for a wrong password: got %d (%v), want 2 (challenge, refused answer)", n, why)
	}
	// Later calls answer the cached challenge up front and fail the same way.
	_, err = drivertest.CallMethod(ctx, wrong, "status")
	wantCode(t, err, wire.Unavailable, "wrong username or password (digest auth)")

	none := buildOne(t, "type: power.HTTP\nconfig: {preset: shelly, generation: 2, host: "+host+"}", "")
	_, err = drivertest.CallMethod(ctx, none, "status")
	wantCode(t, err, wire.Unavailable, `401 Unauthorized: the device asks for digest auth (realm "`+shellyRealm+`"); set password or password_file`)

	generic := buildOne(t, "type: power.HTTP\nconfig: {on: {url: '"+e.URL+"/rpc/Switch.Set?id=0&on=true'}, off: {url: '"+e.URL+"/rpc/Switch.Set?id=0&on=false'}, username: admin, password: s3cret, auth: basic}", "")
	_, err = drivertest.CallMethod(ctx, generic, "on")
	wantCode(t, err, wire.Unavailable, "the device asks for digest auth, not basic (auth: basic)")

	// A generic config in auto mode sends basic first, then answers the digest challenge, and
	// sends digest up front from then on.
	auto := buildOne(t, "type: power.HTTP\nconfig: {on: {url: '"+e.URL+"/rpc/Switch.Set?id=0&on=true'}, off: {url: '"+e.URL+"/rpc/Switch.Set?id=0&on=false'}, username: admin, password: s3cret}", "")
	before, _ := e.unauthorized()
	call(t, auto, "on")
	call(t, auto, "off")
	if n, why := e.unauthorized(); n != before+1 {
		t.Fatalf("401s for auto: got %d (%v), want %d", n, why, before+1)
	}

	// Jumpstarter's auth block is the same: credentials in auto mode.
	js := buildOne(t, "type: jumpstarter_driver_http_power.driver.HttpPower\nconfig: {power_on: {url: '"+e.URL+"/rpc/Switch.Set?id=0&on=true'}, power_off: {url: '"+e.URL+"/rpc/Switch.Set?id=0&on=false'}, auth: {basic: {user: admin, password: s3cret}}}", "")
	call(t, js, "on")

	// auth: digest against a device that wants basic.
	e.set(func(e *relayEmulator) { e.digest, e.user, e.password = nil, "admin", "pw" })
	basicOnly := buildOne(t, "type: power.HTTP\nconfig: {preset: shelly, host: "+host+", username: admin, password: pw, auth: digest}", "")
	e.set(func(e *relayEmulator) { e.fail = 0 })
	_, err = drivertest.CallMethod(ctx, basicOnly, "on")
	wantCode(t, err, wire.Unavailable, "401 Unauthorized: the device sent no digest challenge (auth: digest)")
	shellyBasic := buildOne(t, "type: power.HTTP\nconfig: {preset: shelly, host: "+host+", username: admin, password: nope}", "")
	_, err = drivertest.CallMethod(ctx, shellyBasic, "on")
	wantCode(t, err, wire.Unavailable, "401 Unauthorized: wrong username or password (basic auth)")
}

// TestHTTPDigestChallengeErrors covers 401s whose challenges cannot be answered.
func TestHTTPDigestChallengeErrors(t *testing.T) {
	var challenge string
	srv := newChallengeServer(t, &challenge)
	ctx := context.Background()
	tests := []struct {
		challenge, auth string
		code            wire.Code
		want            string
	}{
		{`Digest realm="r", qop="auth"`, "digest", wire.FailedPrecondition, "bad digest challenge: digest challenge has no nonce"},
		{`Digest realm="r", nonce="n", algorithm=SHA-512`, "digest", wire.FailedPrecondition, `digest algorithm "SHA-512" not supported`},
		{`Basic realm="r"`, "digest", wire.Unavailable, "the device asks for Basic auth, not digest (auth: digest)"},
		{`Bearer, Negotiate`, "auto", wire.Unavailable, "wrong username or password (basic auth)"},
		{`Digest realm="r`, "digest", wire.FailedPrecondition, "bad digest challenge: Digest challenge: parameter realm: unterminated quoted string"},
		{`Basic realm="r`, "digest", wire.Unavailable, "the device asks for Basic auth, not digest (auth: digest)"},
		{`"`, "digest", wire.Unavailable, "the device sent no digest challenge (unreadable WWW-Authenticate: want an auth scheme at byte 0"},
		{``, "auto", wire.Unavailable, "wrong username or password (basic auth)"},
	}
	for _, tt := range tests {
		challenge = tt.challenge
		d := buildOne(t, "type: power.HTTP\nconfig: {on: {url: '"+srv+"/on'}, off: {url: '"+srv+"/off'}, username: u, password: p, auth: "+tt.auth+"}", "")
		_, err := drivertest.CallMethod(ctx, d, "on")
		wantCode(t, err, tt.code, tt.want)
	}
}

// newChallengeServer answers every request 401 with *challenge (read before the test's calls).
func newChallengeServer(t *testing.T, challenge *string) string {
	e := newRelayEmulator(t)
	e.Server.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		e.mu.Lock()
		c := *challenge
		e.mu.Unlock()
		w.Header().Set("WWW-Authenticate", c)
		w.WriteHeader(http.StatusUnauthorized)
	})
	return e.URL
}

func TestHTTPAuthConfig(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("pw", "  s3cret\n")
	write("empty", " \n")
	write("two-lines", "a\nb\n")
	write("huge", strings.Repeat("x", 5000))
	gen2 := "type: power.HTTP\nconfig: {preset: shelly, generation: 2, host: h, "
	generic := "type: power.HTTP\nconfig: {on: {url: 'http://x/on'}, off: {url: 'http://x/off'}, "
	tests := []struct {
		src      string
		wantErr  string
		user, pw string // when valid
		mode     string
	}{
		{gen2 + "password_file: pw}", "", "admin", "s3cret", "auto"},
		{gen2 + "password_file: " + filepath.Join(dir, "pw") + ", auth: digest}", "", "admin", "s3cret", "digest"},
		{gen2 + "username: root, password: x}", "", "root", "x", "auto"},
		{gen2 + "}", "", "", "", "auto"},
		{"type: power.HTTP\nconfig: {preset: shelly, host: h, password: x}", "", "", "x", "auto"},
		{generic + "username: u, password: p, auth: digest}", "", "u", "p", "digest"},
		{generic + "username: u, password_file: pw, auth: basic}", "", "u", "s3cret", "basic"},
		{generic + "auth: {basic: {user: u, password: p}}}", "", "u", "p", "auto"},
		{"type: power.HTTP\nconfig: {preset: tasmota, host: h, password_file: pw}", "", "", "s3cret", "auto"},
		{gen2 + "password: x, password_file: pw}", "password_file: give either password or password_file, not both", "", "", ""},
		{gen2 + "password_file: missing}", "password_file: open " + filepath.Join(dir, "missing") + ": no such file", "", "", ""},
		{gen2 + "password_file: empty}", "password_file: " + filepath.Join(dir, "empty") + " is empty", "", "", ""},
		{gen2 + "password_file: two-lines}", "password_file: " + filepath.Join(dir, "two-lines") + ": want the password on one line", "", "", ""},
		{gen2 + "password_file: huge}", "longer than 4096 bytes", "", "", ""},
		{gen2 + "password: x, auth: ntlm}", `auth: want basic, digest or auto, got "ntlm"`, "", "", ""},
		{gen2 + "password: x, auth: [digest]}", "auth: want basic, digest, auto or {basic:", "", "", ""},
		{gen2 + "password: x, auth: 1}", "auth: want basic, digest, auto or {basic:", "", "", ""},
		{gen2 + "password: x, auth: basic}", "auth: shelly generation 2 devices speak digest auth, not basic", "", "", ""},
		{gen2 + "auth: digest}", "auth: digest needs password or password_file", "", "", ""},
		{generic + "password: p, auth: digest}", "username: required with auth: digest", "", "", ""},
		{"type: power.HTTP\nconfig: {preset: tasmota, host: h, password: x, auth: digest}", "auth: does not apply with preset tasmota", "", "", ""},
		{generic + "username: u, auth: {basic: {user: u, password: p}}}", "auth: give either auth.basic or username/password, not both", "", "", ""},
		{generic + "auth: {basic: {user: u, pass: p}}}", `auth.basic: unknown field "pass"`, "", "", ""},
		{generic + "auth: {digest: {user: u}}}", `auth: unknown field "digest"`, "", "", ""},
	}
	for _, tt := range tests {
		d := buildIn(t, dir, tt.src, tt.wantErr)
		if tt.wantErr != "" {
			continue
		}
		p, err := d.(*HTTP).makePlan() // what Open will use
		if err != nil {
			t.Fatalf("%s: %v", tt.src, err)
		}
		if a := p.auth; a.user != tt.user || a.password != tt.pw || a.mode != tt.mode {
			t.Errorf("%s: got user %q password %q auth %s, want %q %q %s", tt.src, a.user, a.password, a.mode, tt.user, tt.pw, tt.mode)
		}
	}
}

// buildIn is buildOne with the config file in dir (for relative paths); it does not open.
func buildIn(t *testing.T, dir, src, wantErr string) driver.Driver {
	t.Helper()
	var doc yaml.Node
	if err := yaml.Unmarshal([]byte("p:\n  "+strings.ReplaceAll(src, "\n", "\n  ")), &doc); err != nil {
		t.Fatalf("yaml: %v\n%s", err, src)
	}
	tree, err := driver.Build("exporter.yaml", doc.Content[0], driver.BuildOptions{Dir: dir})
	if wantErr != "" {
		if err == nil || !strings.Contains(err.Error(), wantErr) || !strings.Contains(err.Error(), "exporter.yaml:") {
			t.Errorf("%s:\ngot %v, want a positioned error containing %q", src, err, wantErr)
		}
		return nil
	}
	if err != nil {
		t.Fatalf("%s:\n%v", src, err)
	}
	return tree.Find("p").Driver
}

// TestHTTPDigestEndToEnd drives a Shelly Gen2 with a password, read from password_file, through
// a real exporter, bus and client.
func TestHTTPDigestEndToEnd(t *testing.T) {
	e := newRelayEmulator(t)
	e.set(func(e *relayEmulator) { e.digest = newShellyDigest("correct horse") })
	// The driver with the wrong password has a device of its own: its 401s are not the plug's.
	w := newRelayEmulator(t)
	w.set(func(e *relayEmulator) { e.digest = newShellyDigest("correct horse") })
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "shelly.pw"), []byte("correct horse\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	src := fmt.Sprintf(`apiVersion: jsn.dev/v1alpha1
kind: ExporterConfig
metadata: {name: digest}
export:
  plug:
    type: power.HTTP
    config: {preset: shelly, generation: 2, host: "%[1]s", password_file: shelly.pw}
  wrong:
    type: power.HTTP
    config: {preset: shelly, generation: 2, host: "%[2]s", password: wrong, reset: leave}
`, strings.TrimPrefix(e.URL, "http://"), strings.TrimPrefix(w.URL, "http://"))
	cfg, err := exporter.ParseConfig(filepath.Join(dir, "lab.yaml"), []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	l, err := exporter.StartLocal(ctx, cfg, exporter.LocalOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	c, err := client.Connect(ctx, l.URL, "tester")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ex := c.Exporter(l.Exporter, l.Lease)
	p := NewClient(ex.Driver("plug"))
	if err := p.On(ctx); err != nil {
		t.Fatalf("on: %v", err)
	}
	if s, err := p.Status(ctx); err != nil || s != On {
		t.Fatalf("status after on: got %q, %v, want on", s, err)
	}
	if err := p.Off(ctx); err != nil {
		t.Fatalf("off: %v", err)
	}
	if s, err := p.Status(ctx); err != nil || s != Off {
		t.Fatalf("status after off: got %q, %v, want off", s, err)
	}
	var got []Reading
	if err := p.Read(ctx, 1, func(r Reading) error { got = append(got, r); return nil }); err != nil || len(got) != 1 || got[0].Voltage != 237.5 {
		t.Fatalf("read: got %v, %v, want one reading of 237.5 V", got, err)
	}
	n, why := e.unauthorized()
	// The first requests met the challenge: the exporter's reset at the lease's start, and its
	// read of the power state at start, which may go at the same moment. Every later one (the
	// read after the reset, the calls above) carries credentials up front.
	if n < 1 || n > 2 || slices.ContainsFunc(why, func(w string) bool { return w != "no digest" }) {
		t.Fatalf("401s: got %d (%v), want 1 or 2, each for a request without credentials: credentials go up front after the first challenge", n, why)
	}
	err = NewClient(ex.Driver("wrong")).On(ctx)
	if !errors.Is(err, client.ErrUnavailable) || !strings.Contains(err.Error(), "401 Unauthorized: wrong username or password (digest auth)") {
		t.Fatalf("on with a wrong password: got %v, want UNAVAILABLE: 401 Unauthorized: wrong username or password (digest auth)", err)
	}
}

// TestHTTPValidateChangesNothing: Validate reads the config and leaves it as decoded; what it
// means (Jumpstarter's keys, the password file, Shelly's admin user) lives in the plan.
func TestHTTPValidateChangesNothing(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "pw"), []byte("s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	h := buildIn(t, dir, "type: power.HTTP\nconfig: {preset: shelly, generation: 2, host: h, password_file: pw}", "").(*HTTP)
	if h.Username != "" || h.Password != "" || h.plan != nil {
		t.Errorf("after Validate: got username %q, password %q, plan %v; want the config as written", h.Username, h.Password, h.plan)
	}
	j := buildIn(t, dir, "type: power.HTTP\nconfig: {power_on: {url: 'http://x/on'}, power_off: {url: 'http://x/off'}}", "").(*HTTP)
	if j.OnReq != nil || j.OffReq != nil {
		t.Errorf("after Validate: got on %v, off %v; want them unset (the config says power_on, power_off)", j.OnReq, j.OffReq)
	}
	if err := j.Open(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer j.Close()
	if c, err := j.call("on"); err != nil || c.url != "http://x/on" {
		t.Errorf("after Open: got on call %+v, %v; want http://x/on", c, err)
	}
}
