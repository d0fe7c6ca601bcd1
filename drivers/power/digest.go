package power

import (
	"crypto/md5"
	"crypto/rand"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"strings"
)

// HTTP digest authentication (RFC 7616), the way Shelly Gen2+ devices protect their RPC:
// a 401 carries `WWW-Authenticate: Digest realm=…, nonce=…, qop="auth", algorithm=SHA-256` and
// the request is repeated with an Authorization header proving the password.

// authChallenge is one challenge of a WWW-Authenticate header: a scheme and its parameters
// (names lower case) or its token68.
type authChallenge struct {
	scheme  string // as sent; compare with strings.EqualFold
	params  map[string]string
	token68 string
}

// maxChallengeHeader bounds the WWW-Authenticate text parsed.
const maxChallengeHeader = 8 << 10

// parseChallenges splits WWW-Authenticate header values into challenges (RFC 9110 11.6.1):
//
//	challenge = auth-scheme [ 1*SP ( token68 / #auth-param ) ]
//	auth-param = token BWS "=" BWS ( token / quoted-string )
//
// Several challenges may share one value, separated by commas. Unknown schemes and parameters
// are kept for the caller to ignore; a syntax error ends the parse of that value with an error
// (the challenges before it are returned).
func parseChallenges(values []string) ([]authChallenge, error) {
	var out []authChallenge
	var errs []error
	total := 0
	for _, v := range values {
		if total += len(v); total > maxChallengeHeader {
			errs = append(errs, fmt.Errorf("WWW-Authenticate longer than %d bytes", maxChallengeHeader))
			break
		}
		cs, err := parseChallengeValue(v)
		out = append(out, cs...)
		if err != nil {
			errs = append(errs, err)
		}
	}
	return out, errors.Join(errs...)
}

// authLexer walks one header value.
type authLexer struct {
	s string
	i int
}

func (l *authLexer) skipSpace() {
	for l.i < len(l.s) && (l.s[l.i] == ' ' || l.s[l.i] == '\t') {
		l.i++
	}
}

// skipCommas skips list separators and the whitespace around them ("a, , b" has empty
// elements, which RFC 9110 5.6.1 tells recipients to ignore). It reports whether it skipped any.
func (l *authLexer) skipCommas() bool {
	seen := false
	for {
		l.skipSpace()
		if l.i < len(l.s) && l.s[l.i] == ',' {
			l.i++
			seen = true
			continue
		}
		return seen
	}
}

func isTokenChar(c byte) bool {
	return c > ' ' && c < 0x7f && !strings.ContainsRune("()<>@,;:\\\"/[]?={}", rune(c))
}

func (l *authLexer) token() string {
	start := l.i
	for l.i < len(l.s) && isTokenChar(l.s[l.i]) {
		l.i++
	}
	return l.s[start:l.i]
}

// token68 reads a token68 (base64-like credentials) at l.i; "" if there is none.
func (l *authLexer) token68() string {
	start := l.i
	for l.i < len(l.s) {
		c := l.s[l.i]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("-._~+/", c) >= 0 {
			l.i++
			continue
		}
		break
	}
	for l.i < len(l.s) && l.s[l.i] == '=' {
		l.i++
	}
	return l.s[start:l.i]
}

// quoted reads a quoted-string at l.i (which is '"'), undoing backslash escapes.
func (l *authLexer) quoted() (string, error) {
	start := l.i
	l.i++ // opening quote
	var b strings.Builder
	for l.i < len(l.s) {
		c := l.s[l.i]
		switch {
		case c == '"':
			l.i++
			return b.String(), nil
		case c == '\\':
			if l.i+1 >= len(l.s) {
				return "", fmt.Errorf("unterminated quoted string at byte %d", start)
			}
			b.WriteByte(l.s[l.i+1])
			l.i += 2
		case c < ' ' && c != '\t' || c == 0x7f:
			return "", fmt.Errorf("control character in quoted string at byte %d", l.i)
		default:
			b.WriteByte(c)
			l.i++
		}
	}
	return "", fmt.Errorf("unterminated quoted string at byte %d", start)
}

// param reads "name = value" at l.i; ok is false (and l.i unchanged) when what follows is not a
// parameter (the next challenge's scheme, or the end).
func (l *authLexer) param() (name, value string, ok bool, err error) {
	save := l.i
	name = l.token()
	if name == "" {
		l.i = save
		return "", "", false, nil
	}
	l.skipSpace()
	if l.i >= len(l.s) || l.s[l.i] != '=' {
		l.i = save
		return "", "", false, nil
	}
	l.i++
	l.skipSpace()
	if l.i >= len(l.s) || l.s[l.i] == ',' || l.s[l.i] == '=' {
		// "abc==" is a token68, not a parameter.
		l.i = save
		return "", "", false, nil
	}
	if l.s[l.i] == '"' {
		value, err = l.quoted()
		if err != nil {
			return "", "", false, fmt.Errorf("parameter %s: %w", name, err)
		}
		return name, value, true, nil
	}
	value = l.token()
	if value == "" {
		return "", "", false, fmt.Errorf("parameter %s: no value at byte %d", name, l.i)
	}
	return name, value, true, nil
}

func parseChallengeValue(s string) ([]authChallenge, error) {
	l := &authLexer{s: s}
	var out []authChallenge
	for {
		l.skipCommas()
		if l.i >= len(l.s) {
			return out, nil
		}
		scheme := l.token()
		if scheme == "" {
			return out, fmt.Errorf("want an auth scheme at byte %d of %q", l.i, s)
		}
		c := authChallenge{scheme: scheme, params: map[string]string{}}
		sp := l.i
		l.skipSpace()
		if l.i > sp && l.i < len(l.s) && l.s[l.i] != ',' {
			// token68 or the first parameter.
			name, value, ok, err := l.param()
			switch {
			case err != nil:
				return append(out, c), fmt.Errorf("%s challenge: %w", scheme, err)
			case ok:
				c.params[strings.ToLower(name)] = value
				for {
					save := l.i
					if !l.skipCommas() {
						break
					}
					name, value, ok, err := l.param()
					if err != nil {
						return append(out, c), fmt.Errorf("%s challenge: %w", scheme, err)
					}
					if !ok {
						l.i = save
						break
					}
					if _, dup := c.params[strings.ToLower(name)]; dup {
						return append(out, c), fmt.Errorf("%s challenge: parameter %s given twice", scheme, name)
					}
					c.params[strings.ToLower(name)] = value
				}
			default:
				c.token68 = l.token68()
				if c.token68 == "" {
					return out, fmt.Errorf("%s challenge: unexpected %q at byte %d", scheme, l.s[l.i], l.i)
				}
			}
		}
		out = append(out, c)
		l.skipSpace()
		if l.i < len(l.s) && l.s[l.i] != ',' {
			return out, fmt.Errorf("%s challenge: unexpected %q at byte %d", scheme, l.s[l.i], l.i)
		}
	}
}

// digestChallenge is a usable Digest challenge.
type digestChallenge struct {
	realm, nonce, opaque string
	algorithm            string // canonical: MD5, SHA-256, SHA-512-256, with -SESS or not
	algParam             string // the algorithm parameter as the server spelled it; "" if absent
	qop                  string // "auth", "auth-int" or "" (RFC 2069: no qop)
	stale, userhash      bool
}

// digestAlgorithms are the algorithms spoken, RFC 7616 names upper case.
var digestAlgorithms = map[string]func() hash.Hash{
	"MD5":         md5.New,
	"SHA-256":     sha256.New,
	"SHA-512-256": sha512.New512_256,
}

// digestFrom picks the first Digest challenge whose algorithm and qop are spoken (servers list
// them in order of preference, RFC 7616 3.7). found reports whether there was any Digest
// challenge; err says why none was usable.
func digestFrom(cs []authChallenge) (dc digestChallenge, found bool, err error) {
	var errs []error
	for _, c := range cs {
		if !strings.EqualFold(c.scheme, "Digest") {
			continue
		}
		found = true
		dc, err := digestOf(c)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		return dc, true, nil
	}
	return digestChallenge{}, found, errors.Join(errs...)
}

func digestOf(c authChallenge) (digestChallenge, error) {
	p := c.params
	dc := digestChallenge{realm: p["realm"], nonce: p["nonce"], opaque: p["opaque"]}
	if _, ok := p["realm"]; !ok {
		return dc, errors.New("digest challenge has no realm")
	}
	if dc.nonce == "" {
		return dc, errors.New("digest challenge has no nonce")
	}
	alg := strings.ToUpper(p["algorithm"])
	if alg == "" {
		alg = "MD5"
	}
	if _, ok := digestAlgorithms[strings.TrimSuffix(alg, "-SESS")]; !ok {
		return dc, fmt.Errorf("digest algorithm %q not supported (want MD5, SHA-256 or SHA-512-256)", p["algorithm"])
	}
	dc.algorithm, dc.algParam = alg, p["algorithm"]
	if q, ok := p["qop"]; ok {
		for _, o := range strings.Split(q, ",") {
			switch o = strings.ToLower(strings.TrimSpace(o)); {
			case o == "auth":
				dc.qop = "auth"
			case o == "auth-int" && dc.qop == "":
				dc.qop = "auth-int"
			}
		}
		if dc.qop == "" {
			return dc, fmt.Errorf("digest qop %q not supported (want auth)", q)
		}
	} else if strings.HasSuffix(alg, "-SESS") {
		return dc, fmt.Errorf("digest algorithm %s needs a qop", alg)
	}
	dc.stale = strings.EqualFold(p["stale"], "true")
	dc.userhash = strings.EqualFold(p["userhash"], "true")
	return dc, nil
}

// digestHex is the hex digest of parts joined by ':' under algorithm alg (with or without -sess).
func digestHex(alg string, parts ...string) string {
	h := digestAlgorithms[strings.TrimSuffix(alg, "-SESS")]()
	h.Write([]byte(strings.Join(parts, ":")))
	return hex.EncodeToString(h.Sum(nil))
}

// digestResponse computes the response parameter (RFC 7616 3.4.1) for one request. nc is
// already formatted (8 hex digits); body matters for qop auth-int only.
func digestResponse(dc digestChallenge, user, password, method, uri, nc, cnonce, body string) string {
	ha1 := digestHex(dc.algorithm, user, dc.realm, password)
	if strings.HasSuffix(dc.algorithm, "-SESS") {
		ha1 = digestHex(dc.algorithm, ha1, dc.nonce, cnonce)
	}
	ha2 := digestHex(dc.algorithm, method, uri)
	if dc.qop == "auth-int" {
		ha2 = digestHex(dc.algorithm, method, uri, digestHex(dc.algorithm, body))
	}
	if dc.qop == "" {
		return digestHex(dc.algorithm, ha1, dc.nonce, ha2)
	}
	return digestHex(dc.algorithm, ha1, dc.nonce, nc, cnonce, dc.qop, ha2)
}

// quoteParam is s as a quoted-string.
func quoteParam(s string) string {
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s) + `"`
}

// digestAuthorization is the Authorization header value answering dc for one request, with
// the given nonce count and client nonce.
func digestAuthorization(dc digestChallenge, user, password, method, uri string, nc uint32, cnonce, body string) string {
	ncs := fmt.Sprintf("%08x", nc)
	name := user
	if dc.userhash {
		name = digestHex(dc.algorithm, user, dc.realm)
	}
	var b strings.Builder
	b.WriteString("Digest username=" + quoteParam(name))
	b.WriteString(", realm=" + quoteParam(dc.realm))
	b.WriteString(", nonce=" + quoteParam(dc.nonce))
	b.WriteString(", uri=" + quoteParam(uri))
	if dc.algParam != "" {
		b.WriteString(", algorithm=" + dc.algParam)
	}
	b.WriteString(", response=" + quoteParam(digestResponse(dc, user, password, method, uri, ncs, cnonce, body)))
	if dc.qop != "" {
		b.WriteString(", qop=" + dc.qop + ", nc=" + ncs + ", cnonce=" + quoteParam(cnonce))
	}
	if dc.opaque != "" {
		b.WriteString(", opaque=" + quoteParam(dc.opaque))
	}
	if dc.userhash {
		b.WriteString(", userhash=true")
	}
	return b.String()
}

// newCnonce is a random client nonce.
func newCnonce() string {
	var b [16]byte
	rand.Read(b[:]) // never fails (crypto/rand)
	return hex.EncodeToString(b[:])
}

// digestSession is the last Digest challenge of one origin and the count of requests made
// with its nonce.
type digestSession struct {
	dc digestChallenge
	nc uint32
}

// authorize returns the Authorization value for the next request with the session's nonce.
func (s *digestSession) authorize(user, password, method, uri, body string) string {
	s.nc++
	return digestAuthorization(s.dc, user, password, method, uri, s.nc, newCnonce(), body)
}

// nextNonce applies an Authentication-Info header (RFC 7616 3.5): a nextnonce replaces the
// nonce for the following requests.
func (s *digestSession) nextNonce(info string) {
	if info == "" {
		return
	}
	cs, err := parseChallengeValue("x " + info)
	if err != nil || len(cs) != 1 {
		return
	}
	if n := cs[0].params["nextnonce"]; n != "" && n != s.dc.nonce {
		s.dc.nonce, s.nc = n, 0
	}
}
