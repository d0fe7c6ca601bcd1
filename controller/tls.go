package controller

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// The controller's NATS listener speaks TLS. Unless given a certificate (Options.TLSCert), it
// uses a certificate authority of its own, made once in the data directory (ca.pem, ca.key), and
// signs a server certificate with it at every start for the names it is reached by. The CA's
// certificate goes into every client and exporter config it issues (their "ca" field), and they
// accept only a server certificate that chains to it.
const (
	fileCACert = "ca.pem"
	fileCAKey  = "ca.key"
)

// loadOrCreateCA returns the data directory's CA certificate (PEM) and key, making them first if
// the directory has none.
func loadOrCreateCA(dir string) (certPEM []byte, cert *x509.Certificate, key *ecdsa.PrivateKey, err error) {
	certFile, keyFile := filepath.Join(dir, fileCACert), filepath.Join(dir, fileCAKey)
	certPEM, cerr := os.ReadFile(certFile)
	keyPEM, kerr := os.ReadFile(keyFile)
	if errors.Is(cerr, os.ErrNotExist) && errors.Is(kerr, os.ErrNotExist) {
		return createCA(certFile, keyFile)
	}
	if cerr != nil {
		return nil, nil, nil, fmt.Errorf("tls: %w", cerr)
	}
	if kerr != nil {
		return nil, nil, nil, fmt.Errorf("tls: %w", kerr)
	}
	cb, _ := pem.Decode(certPEM)
	kb, _ := pem.Decode(keyPEM)
	if cb == nil || kb == nil {
		return nil, nil, nil, fmt.Errorf("tls: %s or %s is not PEM", certFile, keyFile)
	}
	if cert, err = x509.ParseCertificate(cb.Bytes); err != nil {
		return nil, nil, nil, fmt.Errorf("tls: %s: %w", certFile, err)
	}
	if key, err = x509.ParseECPrivateKey(kb.Bytes); err != nil {
		return nil, nil, nil, fmt.Errorf("tls: %s: %w", keyFile, err)
	}
	return certPEM, cert, key, nil
}

func createCA(certFile, keyFile string) ([]byte, *x509.Certificate, *ecdsa.PrivateKey, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("tls: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          certSerial(),
		Subject:               pkix.Name{CommonName: "jsn lab CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().AddDate(20, 0, 0),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("tls: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("tls: %w", err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("tls: %w", err)
	}
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	// The key first: a certificate without its key would be useless.
	if err := writeFileAtomic(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder})); err != nil {
		return nil, nil, nil, fmt.Errorf("tls: %w", err)
	}
	if err := writeFileAtomic(certFile, certPEM); err != nil {
		return nil, nil, nil, fmt.Errorf("tls: %w", err)
	}
	return certPEM, cert, key, nil
}

func certSerial() *big.Int {
	n, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	return n
}

// serverCert signs a server certificate for hosts (names or IP addresses) with the CA.
func serverCert(ca *x509.Certificate, caKey *ecdsa.PrivateKey, hosts []string) (tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("tls: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: certSerial(),
		Subject:      pkix.Name{CommonName: "jsn controller"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().AddDate(2, 0, 0),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("tls: %w", err)
	}
	return tls.Certificate{Certificate: [][]byte{der, ca.Raw}, PrivateKey: key}, nil
}

// serverHosts lists the names a controller listening on listen and announced as the endpoints
// (URLs, comma-separated lists of URLs, or bare host names) is reached by: those, the machine's
// host name and the loopback addresses.
func serverHosts(listen string, endpoints ...string) []string {
	seen := map[string]bool{}
	var out []string
	add := func(h string) {
		h = strings.Trim(h, "[]")
		if h == "" || seen[h] {
			return
		}
		if ip := net.ParseIP(h); ip != nil && ip.IsUnspecified() {
			return // 0.0.0.0 is not a name anybody dials
		}
		seen[h] = true
		out = append(out, h)
	}
	if h, _, err := net.SplitHostPort(listen); err == nil {
		add(h)
	}
	for _, e := range endpoints {
		for _, u := range strings.Split(e, ",") {
			u = strings.TrimSpace(u)
			if !strings.Contains(u, "://") {
				add(u)
			} else if pu, err := url.Parse(u); err == nil {
				add(pu.Hostname())
			}
		}
	}
	if h, err := os.Hostname(); err == nil {
		add(h)
	}
	for _, h := range []string{"localhost", "127.0.0.1", "::1"} {
		add(h)
	}
	return out
}

// adminEndpoint is the endpoint of the data directory's admin.yaml (what init was told), "" if
// none.
func adminEndpoint(dir string) string {
	b, err := os.ReadFile(filepath.Join(dir, fileAdminConfig))
	if err != nil {
		return ""
	}
	var c struct {
		Endpoint string `yaml:"endpoint"`
	}
	if yaml.Unmarshal(b, &c) != nil {
		return ""
	}
	return c.Endpoint
}

// listenerTLS returns the TLS configuration of the embedded server's listener and the CA
// certificate (PEM) issued configs carry: the files given in o, or the data directory's CA
// (made if missing) with a fresh server certificate for the names the controller is reached by.
func listenerTLS(o *Options) (*tls.Config, []byte, error) {
	var caPEM []byte
	if o.TLSCA != "" {
		b, err := os.ReadFile(o.TLSCA)
		if err != nil {
			return nil, nil, fmt.Errorf("tls: %w", err)
		}
		caPEM = b
	}
	if o.TLSCert != "" || o.TLSKey != "" {
		if o.TLSCert == "" || o.TLSKey == "" {
			return nil, nil, errors.New("tls: give both a certificate and its key (--tls-cert and --tls-key)")
		}
		cert, err := tls.LoadX509KeyPair(o.TLSCert, o.TLSKey)
		if err != nil {
			return nil, nil, fmt.Errorf("tls: %w", err)
		}
		return &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}, caPEM, nil
	}
	pemCA, ca, key, err := loadOrCreateCA(o.Data)
	if err != nil {
		return nil, nil, err
	}
	hosts := serverHosts(o.Listen, append([]string{o.Endpoint, adminEndpoint(o.Data)}, o.TLSHosts...)...)
	cert, err := serverCert(ca, key, hosts)
	if err != nil {
		return nil, nil, err
	}
	return &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}, pemCA, nil
}
