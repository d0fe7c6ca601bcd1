package power

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"

	"jsn.dev/jsn/drivers/driver"
)

// maxPEMFile bounds what is read of tls_ca, tls_cert and tls_key: CA bundles are a few hundred
// kilobytes at most (Debian's whole ca-certificates.crt is ~200 KB).
const maxPEMFile = 4 << 20

// validateTLS checks the tls_* keys and, when TLS is on, builds t.tlsConf, reading and parsing
// the PEM files so that a bad file is a config error.
func (t *Tasmota) validateTLS() error {
	var errs []error
	set := []struct {
		key string
		on  bool
	}{
		{"tls_ca", t.TLSCA != ""},
		{"tls_cert", t.TLSCert != ""},
		{"tls_key", t.TLSKey != ""},
		{"tls_server_name", t.TLSServerName != ""},
		{"tls_insecure", t.TLSInsecure},
	}
	for _, s := range set {
		switch {
		case s.on && !t.TLS:
			errs = append(errs, driver.FieldErrorf(s.key, "only with tls: true"))
		case s.on && t.Transport == "unix":
			errs = append(errs, driver.FieldErrorf(s.key, "not with transport: unix (no TLS over a unix socket)"))
		}
	}
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	if !t.TLS || t.Transport == "unix" {
		return nil
	}
	conf := &tls.Config{MinVersion: tls.VersionTLS12}
	if t.TLSInsecure && t.TLSCA != "" {
		errs = append(errs, driver.FieldErrorf("tls_insecure", "not with tls_ca: tls_insecure skips the check tls_ca is for"))
	}
	if t.TLSCert != "" && t.TLSKey == "" {
		errs = append(errs, driver.FieldErrorf("tls_cert", "needs tls_key (the certificate's private key)"))
	}
	if t.TLSKey != "" && t.TLSCert == "" {
		errs = append(errs, driver.FieldErrorf("tls_key", "needs tls_cert (the client certificate)"))
	}
	if n := t.TLSServerName; n != "" && (strings.ContainsFunc(n, func(r rune) bool { return r <= ' ' || r == 0x7f }) || strings.ContainsAny(n, "/:")) {
		errs = append(errs, driver.FieldErrorf("tls_server_name", "want a host name, got %q", n))
	}
	conf.ServerName = t.TLSServerName
	conf.InsecureSkipVerify = t.TLSInsecure
	if t.TLSCA != "" {
		path := t.path(t.TLSCA)
		if b, err := readPEMFile(path); err != nil {
			errs = append(errs, driver.FieldErrorf("tls_ca", "%v", err))
		} else if pool, err := parseCAPEM(b); err != nil {
			errs = append(errs, driver.FieldErrorf("tls_ca", "%s: %v", path, err))
		} else {
			conf.RootCAs = pool
		}
	}
	if t.TLSCert != "" && t.TLSKey != "" {
		cpath, kpath := t.path(t.TLSCert), t.path(t.TLSKey)
		cb, cerr := readPEMFile(cpath)
		if cerr != nil {
			errs = append(errs, driver.FieldErrorf("tls_cert", "%v", cerr))
		}
		kb, kerr := readPEMFile(kpath)
		if kerr != nil {
			errs = append(errs, driver.FieldErrorf("tls_key", "%v", kerr))
		}
		if cerr == nil && kerr == nil {
			pair, certErr, keyErr := parseKeyPairPEM(cb, kb)
			switch {
			case certErr != nil:
				errs = append(errs, driver.FieldErrorf("tls_cert", "%s: %v", cpath, certErr))
			case keyErr != nil:
				errs = append(errs, driver.FieldErrorf("tls_key", "%s: %v", kpath, keyErr))
			default:
				conf.Certificates = []tls.Certificate{pair}
			}
		}
	}
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	t.tlsConf = conf
	return nil
}

// path resolves a path key relative to the config file's directory.
func (t *Tasmota) path(p string) string {
	if !filepath.IsAbs(p) && t.dir != "" {
		return filepath.Join(t.dir, p)
	}
	return p
}

// readPEMFile reads a PEM file of at most maxPEMFile bytes; errors name the file.
func readPEMFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxPEMFile+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	if len(b) > maxPEMFile {
		return nil, fmt.Errorf("%s: longer than %d bytes; is it the right file?", path, maxPEMFile)
	}
	return b, nil
}

// parseCertsPEM returns the certificates of the CERTIFICATE blocks in b, other blocks skipped. A
// block that does not parse is an error (x509.CertPool.AppendCertsFromPEM would drop it
// silently), and so is finding none.
func parseCertsPEM(b []byte) ([]*x509.Certificate, error) {
	var certs []*x509.Certificate
	var other []string
	for n := 1; ; n++ {
		var block *pem.Block
		block, b = pem.Decode(b)
		if block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			if !slices.Contains(other, block.Type) && len(other) < 5 {
				other = append(other, block.Type)
			}
			continue
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("PEM block %d: %w", n, err)
		}
		certs = append(certs, c)
	}
	if len(certs) == 0 {
		if len(other) > 0 {
			return nil, fmt.Errorf("no certificates found, only %s blocks", strings.Join(quoteAll(other), ", "))
		}
		return nil, errors.New("no certificates found")
	}
	return certs, nil
}

func quoteAll(s []string) []string {
	out := make([]string, len(s))
	for i, v := range s {
		out[i] = fmt.Sprintf("%q", v)
	}
	return out
}

// parseCAPEM turns the contents of tls_ca into a pool of trusted CAs.
func parseCAPEM(b []byte) (*x509.CertPool, error) {
	certs, err := parseCertsPEM(b)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	for _, c := range certs {
		pool.AddCert(c)
	}
	return pool, nil
}

// parseKeyPairPEM turns the contents of tls_cert (the client certificate, then any
// intermediates) and tls_key into a TLS certificate. certErr is a problem with the certificate,
// keyErr one with the key (including a key that does not match the certificate).
func parseKeyPairPEM(certPEM, keyPEM []byte) (pair tls.Certificate, certErr, keyErr error) {
	if _, err := parseCertsPEM(certPEM); err != nil {
		return tls.Certificate{}, err, nil
	}
	found := false
	for rest := keyPEM; ; {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		if block.Type == "PRIVATE KEY" || strings.HasSuffix(block.Type, " PRIVATE KEY") {
			found = true
			break
		}
	}
	if !found {
		return tls.Certificate{}, nil, errors.New("no private key found")
	}
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		if strings.Contains(err.Error(), "does not match") {
			return tls.Certificate{}, nil, errors.New("private key does not match the certificate in tls_cert")
		}
		return tls.Certificate{}, nil, err
	}
	return pair, nil, nil
}

// clientTLSConfig is the TLS config given to paho: t.tlsConf, noting in t.certAsked when the
// broker asks for a client certificate (so that a broker closing the connection for lack of one,
// which TLS 1.3 clients only see as a reset after the handshake, can be explained).
func (t *Tasmota) clientTLSConfig() *tls.Config {
	c := t.tlsConf.Clone()
	var cert *tls.Certificate
	if len(c.Certificates) > 0 {
		cert = &c.Certificates[0]
		c.Certificates = nil
	}
	c.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
		t.certAsked.Store(true)
		if cert == nil {
			return &tls.Certificate{}, nil // none: the broker decides
		}
		return cert, nil
	}
	return c
}

// tlsHint explains a TLS failure to connect in terms of the config keys, or returns "".
// certAsked says the broker asked for a client certificate.
func (t *Tasmota) tlsHint(err error, certAsked bool) string {
	var unknown x509.UnknownAuthorityError
	var host x509.HostnameError
	var invalid x509.CertificateInvalidError
	switch {
	case errors.As(err, &unknown):
		if t.TLSCA != "" {
			return "the broker's certificate is not signed by a CA in tls_ca " + t.path(t.TLSCA)
		}
		return "the broker's certificate is not signed by a system-trusted CA: set tls_ca to the CA that signed it"
	case errors.As(err, &host) && t.TLSServerName != "":
		return fmt.Sprintf("tls_server_name %q is not a name in the broker's certificate", t.TLSServerName)
	case errors.As(err, &host):
		return "the broker's certificate is not for this host name or address: set tls_server_name to a name it is for"
	case errors.As(err, &invalid):
		return "the broker's certificate is not valid"
	}
	s := err.Error()
	refused := strings.Contains(s, "certificate required") || strings.Contains(s, "bad certificate") ||
		strings.Contains(s, "unknown certificate authority") || strings.Contains(s, "certificate unknown")
	closed := errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) || errors.Is(err, io.EOF) ||
		errors.Is(err, io.ErrUnexpectedEOF)
	if refused || certAsked && closed {
		if t.TLSCert == "" {
			return "the broker wants a client certificate: set tls_cert and tls_key"
		}
		return "the broker refused the client certificate in tls_cert " + t.path(t.TLSCert)
	}
	return ""
}
