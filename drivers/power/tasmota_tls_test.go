package power

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"log/slog"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"jsn.dev/jsn/bus/wire"
	"jsn.dev/jsn/client"
	"jsn.dev/jsn/drivers/driver"
	"jsn.dev/jsn/drivers/drivertest"
	"jsn.dev/jsn/exporter"
	"jsn.dev/jsn/internal/testkit"
)

// testCA is a certificate authority made for a test.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pem  []byte
}

func newTestCA(t testing.TB, name string) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return &testCA{cert: cert, key: key, pem: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}
}

// issue returns a leaf certificate signed by ca and its key, both PEM. With dnsNames it is a
// server certificate (no IP addresses), else a client certificate.
func (ca *testCA) issue(t testing.TB, cn string, dnsNames ...string) (certPEM, keyPEM []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial, err := rand.Int(rand.Reader, big.NewInt(1<<62))
	if err != nil {
		t.Fatal(err)
	}
	usage := x509.ExtKeyUsageClientAuth
	if len(dnsNames) > 0 {
		usage = x509.ExtKeyUsageServerAuth
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: cn},
		DNSNames:     dnsNames,
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{usage},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder})
}

// testPKI writes to a temporary directory: ca.pem (the lab's CA), other-ca.pem (a CA nobody
// uses), server.pem/server.key (the broker's certificate from ca.pem for localhost and
// mqtt.lab.test, no IP address), client.pem/client.key (a client certificate from ca.pem),
// stranger.pem/stranger.key (a client certificate from other-ca.pem), and empty.pem,
// garbage.pem (a CERTIFICATE block that is not one).
func testPKI(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	ca, other := newTestCA(t, "jsn test lab CA"), newTestCA(t, "jsn test other CA")
	scert, skey := ca.issue(t, "mqtt.lab.test", "localhost", "mqtt.lab.test")
	ccert, ckey := ca.issue(t, "jsn-exporter")
	xcert, xkey := other.issue(t, "stranger")
	files := map[string][]byte{
		"ca.pem": ca.pem, "other-ca.pem": other.pem,
		"server.pem": scert, "server.key": skey,
		"client.pem": ccert, "client.key": ckey,
		"stranger.pem": xcert, "stranger.key": xkey,
		"empty.pem":   nil,
		"garbage.pem": pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: []byte("not DER")}),
	}
	for name, b := range files {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// startTLSMosquitto runs a broker with a plain listener (for the simulated relay) and a TLS
// listener with the certificate of testPKI's dir; with requireCert, the TLS listener wants a
// client certificate from ca.pem. It returns both ports.
func startTLSMosquitto(t *testing.T, pki string, requireCert bool) (plain, secure int) {
	t.Helper()
	bin := mosquittoBin(t)
	plain, secure = freePort(t), freePort(t)
	conf := fmt.Sprintf(`allow_anonymous true
listener %d 127.0.0.1
listener %d 127.0.0.1
cafile %s
certfile %s
keyfile %s
require_certificate %v
`, plain, secure, filepath.Join(pki, "ca.pem"), filepath.Join(pki, "server.pem"), filepath.Join(pki, "server.key"), requireCert)
	runMosquitto(t, bin, t.TempDir(), conf, plain, secure)
	return plain, secure
}

// tlsConfig is a power.Tasmota config with TLS on the broker at host:port.
func tlsConfig(host string, port int, topic, extra string) string {
	return fmt.Sprintf(`type: power.Tasmota
config:
  host: %s
  port: %d
  timeout: 3s
  cmnd_topic: cmnd/%s/POWER
  stat_topic: stat/%s/POWER%s`, host, port, topic, topic, extra)
}

// buildTasmota builds and opens the driver of src (a driver's YAML), with dir as the config
// file's directory and log as its logger, closing it when the test ends.
func buildTasmota(t *testing.T, src, dir string, log *slog.Logger) *Tasmota {
	t.Helper()
	var doc yaml.Node
	if err := yaml.Unmarshal([]byte("p:\n  "+strings.ReplaceAll(src, "\n", "\n  ")), &doc); err != nil {
		t.Fatalf("yaml: %v\n%s", err, src)
	}
	tree, err := driver.Build("exporter.yaml", doc.Content[0], driver.BuildOptions{Dir: dir, Log: log})
	if err != nil {
		t.Fatalf("%s:\n%v", src, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := tree.Open(ctx); err != nil {
		t.Fatalf("open: %v", err)
	}
	t.Cleanup(func() { tree.Close() })
	return tree.Find("p").Driver.(*Tasmota)
}

// waitUnavailable polls until the driver says why it is unavailable (the reason of a failed
// connection, not "connecting") and returns it.
func waitUnavailable(t *testing.T, d *Tasmota) string {
	t.Helper()
	var why string
	testkit.CheckFor(t, 30*time.Second, func() error {
		if why = d.Unavailable(); why == "" || strings.HasSuffix(why, ": connecting") {
			return fmt.Errorf("Unavailable: got %q, want a connection failure", why)
		}
		return nil
	})
	return why
}

// onOffStatus switches the driver on and off, checking the status after each.
func onOffStatus(t *testing.T, d *Tasmota) {
	t.Helper()
	if why := d.Unavailable(); why != "" {
		t.Fatalf("Unavailable after Open: got %q, want \"\"", why)
	}
	for _, st := range []struct{ method, want string }{{"status", "off"}, {"on", "on"}, {"off", "off"}} {
		if st.method != "status" {
			call(t, d, st.method)
		}
		if got := status(t, d); got != st.want {
			t.Fatalf("after %s: got %q, want %q", st.method, got, st.want)
		}
	}
}

func TestTasmotaTLS(t *testing.T) {
	pki := testPKI(t)
	plain, secure := startTLSMosquitto(t, pki, false)
	mplain, msecure := startTLSMosquitto(t, pki, true)
	ctx := context.Background()

	works := []struct {
		name  string
		host  string
		port  int
		extra string
	}{
		{"trusted ca", "localhost", secure, "\n  tls_ca: ca.pem"},
		{"ca by absolute path", "localhost", secure, "\n  tls_ca: " + filepath.Join(pki, "ca.pem")},
		{"server name for an ip address", "127.0.0.1", secure, "\n  tls_ca: ca.pem\n  tls_server_name: mqtt.lab.test"},
		{"mutual tls", "localhost", msecure, "\n  tls_ca: ca.pem\n  tls_cert: client.pem\n  tls_key: client.key"},
	}
	for i, tt := range works {
		t.Run(tt.name, func(t *testing.T) {
			topic := fmt.Sprintf("ok%d", i)
			relayPort := plain
			if tt.port == msecure {
				relayPort = mplain
			}
			relay := newFakeTasmota(t, relayPort, topic, "", "")
			d := buildTasmota(t, tlsConfig(tt.host, tt.port, topic, tt.extra), pki, nil)
			onOffStatus(t, d)
			if got, want := strings.Join(relay.commands(), ","), ",ON,,OFF,"; got != want {
				t.Fatalf("commands: got %q, want %q", got, want)
			}
		})
	}

	t.Run("insecure", func(t *testing.T) {
		// The broker's certificate is from a CA the system does not know, and not for 127.0.0.1.
		newFakeTasmota(t, plain, "insecure", "", "")
		var logs syncBuffer
		d := buildTasmota(t, tlsConfig("127.0.0.1", secure, "insecure", "\n  tls_insecure: true"), pki, slog.New(slog.NewTextHandler(&logs, nil)))
		onOffStatus(t, d)
		if got := logs.String(); !strings.Contains(got, "level=WARN") || !strings.Contains(got, "identity is not checked") ||
			!strings.Contains(got, fmt.Sprintf("broker=ssl://127.0.0.1:%d", secure)) {
			t.Fatalf("logs: got %q, want a warning that the broker's identity is not checked", got)
		}
	})

	fails := []struct {
		name  string
		host  string
		port  int
		extra string
		want  []string
	}{
		{"wrong ca", "localhost", secure, "\n  tls_ca: other-ca.pem",
			[]string{"x509: certificate signed by unknown authority", "the broker's certificate is not signed by a CA in tls_ca " + filepath.Join(pki, "other-ca.pem")}},
		{"system roots", "localhost", secure, "",
			[]string{"x509: certificate signed by unknown authority", "not signed by a system-trusted CA: set tls_ca to the CA that signed it"}},
		{"ip address without server name", "127.0.0.1", secure, "\n  tls_ca: ca.pem",
			[]string{"x509: cannot validate certificate for 127.0.0.1", "set tls_server_name to a name it is for"}},
		{"wrong server name", "localhost", secure, "\n  tls_ca: ca.pem\n  tls_server_name: mqtt.other.test",
			[]string{"x509: certificate is valid for localhost, mqtt.lab.test, not mqtt.other.test", `tls_server_name "mqtt.other.test" is not a name in the broker's certificate`}},
		{"mutual tls without a client certificate", "localhost", msecure, "\n  tls_ca: ca.pem",
			[]string{"the broker wants a client certificate: set tls_cert and tls_key"}},
		{"mutual tls with a certificate from another ca", "localhost", msecure, "\n  tls_ca: ca.pem\n  tls_cert: stranger.pem\n  tls_key: stranger.key",
			[]string{"the broker refused the client certificate in tls_cert " + filepath.Join(pki, "stranger.pem")}},
	}
	for i, tt := range fails {
		t.Run(tt.name, func(t *testing.T) {
			topic := fmt.Sprintf("bad%d", i)
			d := buildTasmota(t, tlsConfig(tt.host, tt.port, topic, tt.extra), pki, nil)
			why := waitUnavailable(t, d)
			t.Logf("unavailable: %s", why)
			prefix := fmt.Sprintf("MQTT broker ssl://%s:%d not connected: ", tt.host, tt.port)
			if !strings.HasPrefix(why, prefix) {
				t.Fatalf("Unavailable: got %q, want it to start with %q", why, prefix)
			}
			for _, w := range tt.want {
				if !strings.Contains(why, w) {
					t.Fatalf("Unavailable: got %q, want it to contain %q", why, w)
				}
			}
			_, err := drivertest.CallMethod(ctx, d, "on")
			wantCode(t, err, wire.Unavailable, tt.want[len(tt.want)-1])
		})
	}
}

// tlsExporterConfig has a driver on a TLS broker (%[1]d) and one on a mutual TLS broker
// (%[2]d); the PEM files are next to the config file.
const tlsExporterConfig = `apiVersion: jsn.dev/v1alpha1
kind: ExporterConfig
metadata: {name: tls}
export:
  ca:
    type: power.Tasmota
    config: {host: localhost, port: %[1]d, tls_ca: ca.pem, cmnd_topic: cmnd/e1/POWER, stat_topic: stat/e1/POWER}
  mtls:
    type: jumpstarter_driver_tasmota.driver.TasmotaPower
    config:
      host: localhost
      port: %[2]d
      tls: true
      tls_ca: ca.pem
      tls_cert: client.pem
      tls_key: client.key
      cmnd_topic: cmnd/e2/POWER
      stat_topic: stat/e2/POWER
`

// TestTasmotaTLSEndToEnd drives relays behind a TLS broker with a private CA and a mutual TLS
// broker through a real exporter, bus and client, with the PEM paths relative to the config.
func TestTasmotaTLSEndToEnd(t *testing.T) {
	pki := testPKI(t)
	plain, secure := startTLSMosquitto(t, pki, false)
	mplain, msecure := startTLSMosquitto(t, pki, true)
	newFakeTasmota(t, plain, "e1", "", "")
	newFakeTasmota(t, mplain, "e2", "", "")
	file := filepath.Join(pki, "exporter.yaml")
	if err := os.WriteFile(file, fmt.Appendf(nil, tlsExporterConfig, secure, msecure), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := exporter.LoadConfig(file)
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
	for _, path := range []string{"ca", "mtls"} {
		p := NewClient(ex.Driver(path))
		for _, step := range []struct {
			do   func(context.Context) error
			want State
		}{{p.On, On}, {p.Off, Off}, {p.On, On}} {
			if err := step.do(ctx); err != nil {
				t.Fatalf("%s: %v", path, err)
			}
			if s, err := p.Status(ctx); err != nil || s != step.want {
				t.Fatalf("%s: status: got %q, %v, want %q", path, s, err, step.want)
			}
		}
	}
}

func TestTasmotaTLSConfig(t *testing.T) {
	pki := testPKI(t)
	build := func(extra string) (*Tasmota, error) {
		src := "p:\n  type: power.Tasmota\n  config:\n    host: h\n    cmnd_topic: a\n    stat_topic: b\n" + extra
		var doc yaml.Node
		if err := yaml.Unmarshal([]byte(src), &doc); err != nil {
			t.Fatalf("yaml: %v\n%s", err, src)
		}
		tree, err := driver.Build("exporter.yaml", doc.Content[0], driver.BuildOptions{Dir: pki})
		if err != nil {
			return nil, err
		}
		return tree.Find("p").Driver.(*Tasmota), nil
	}
	// The keys start on line 7, column 5; their values at column 5+len(key)+2.
	tests := []struct {
		extra, want string
	}{
		{"    tls: false\n    tls_ca: ca.pem\n", "exporter.yaml:8:5: export.p.config.tls_ca: only with tls: true"},
		{"    tls: false\n    tls_cert: client.pem\n    tls_key: client.key\n    tls_server_name: x\n    tls_insecure: true\n",
			"exporter.yaml:8:5: export.p.config.tls_cert: only with tls: true\n" +
				"exporter.yaml:9:5: export.p.config.tls_key: only with tls: true\n" +
				"exporter.yaml:10:5: export.p.config.tls_server_name: only with tls: true\n" +
				"exporter.yaml:11:5: export.p.config.tls_insecure: only with tls: true"},
		{"    transport: unix\n    tls_insecure: true\n", "exporter.yaml:8:5: export.p.config.tls_insecure: not with transport: unix (no TLS over a unix socket)"},
		{"    tls_cert: client.pem\n", "exporter.yaml:7:5: export.p.config.tls_cert: needs tls_key (the certificate's private key)"},
		{"    tls_key: client.key\n", "exporter.yaml:7:5: export.p.config.tls_key: needs tls_cert (the client certificate)"},
		{"    tls_ca: ca.pem\n    tls_insecure: true\n", "exporter.yaml:8:5: export.p.config.tls_insecure: not with tls_ca: tls_insecure skips the check tls_ca is for"},
		{"    tls_server_name: 'mqtt.lab:8883'\n", `exporter.yaml:7:5: export.p.config.tls_server_name: want a host name, got "mqtt.lab:8883"`},
		{"    tls_ca: missing.pem\n", "exporter.yaml:7:5: export.p.config.tls_ca: open $DIR/missing.pem: no such file or directory"},
		{"    tls_ca: /nonexistent/ca.pem\n", "exporter.yaml:7:5: export.p.config.tls_ca: open /nonexistent/ca.pem: no such file or directory"},
		{"    tls_ca: empty.pem\n", "exporter.yaml:7:5: export.p.config.tls_ca: $DIR/empty.pem: no certificates found"},
		{"    tls_ca: client.key\n", `exporter.yaml:7:5: export.p.config.tls_ca: $DIR/client.key: no certificates found, only "PRIVATE KEY" blocks`},
		{"    tls_ca: garbage.pem\n", "exporter.yaml:7:5: export.p.config.tls_ca: $DIR/garbage.pem: PEM block 1: x509: malformed certificate"},
		{"    tls_cert: client.key\n    tls_key: client.key\n", "exporter.yaml:7:5: export.p.config.tls_cert: $DIR/client.key: no certificates found, only \"PRIVATE KEY\" blocks"},
		{"    tls_cert: client.pem\n    tls_key: client.pem\n", "exporter.yaml:8:5: export.p.config.tls_key: $DIR/client.pem: no private key found"},
		{"    tls_cert: client.pem\n    tls_key: server.key\n", "exporter.yaml:8:5: export.p.config.tls_key: $DIR/server.key: private key does not match the certificate in tls_cert"},
		{"    tls_cert: missing.pem\n    tls_key: missing.key\n",
			"exporter.yaml:7:5: export.p.config.tls_cert: open $DIR/missing.pem: no such file or directory\n" +
				"exporter.yaml:8:5: export.p.config.tls_key: open $DIR/missing.key: no such file or directory"},
	}
	for _, tt := range tests {
		_, err := build(tt.extra)
		want := strings.ReplaceAll(tt.want, "$DIR", pki)
		if err == nil || err.Error() != want {
			t.Errorf("%s:\ngot  %v\nwant %s", tt.extra, err, want)
		}
	}

	d, err := build("    tls_ca: ca.pem\n    tls_cert: client.pem\n    tls_key: " + filepath.Join(pki, "client.key") + "\n    tls_server_name: mqtt.lab.test\n")
	if err != nil {
		t.Fatal(err)
	}
	if c := d.tlsConf; c == nil || c.RootCAs == nil || len(c.Certificates) != 1 || c.ServerName != "mqtt.lab.test" || c.InsecureSkipVerify {
		t.Fatalf("tls config: got %+v, want the CA pool, one certificate and server name mqtt.lab.test", c)
	}
	d, err = build("    tls_insecure: true\n")
	if err != nil {
		t.Fatal(err)
	}
	if c := d.tlsConf; c == nil || c.RootCAs != nil || !c.InsecureSkipVerify {
		t.Fatalf("tls config: got %+v, want system roots, InsecureSkipVerify", c)
	}
	d, err = build("    tls: false\n    tls_insecure: false\n")
	if err != nil || d.tlsConf != nil {
		t.Fatalf("tls false: got %v, %+v, want no TLS config", err, d)
	}
}

// FuzzTasmotaTLSPEM feeds arbitrary tls_ca, tls_cert and tls_key contents to their parsers: they
// never panic, and succeed only with something usable.
func FuzzTasmotaTLSPEM(f *testing.F) {
	ca := newTestCA(f, "fuzz CA")
	cert, key := ca.issue(f, "fuzz client")
	f.Add(ca.pem, key)
	f.Add(cert, key)
	f.Add(append(append([]byte{}, cert...), ca.pem...), key)
	f.Add(key, cert)
	f.Add([]byte("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"), []byte("-----BEGIN EC PRIVATE KEY-----\nAAAA\n-----END EC PRIVATE KEY-----\n"))
	f.Add([]byte{}, []byte{})
	f.Fuzz(func(t *testing.T, a, b []byte) {
		if pool, err := parseCAPEM(a); (err == nil) != (pool != nil) {
			t.Fatalf("parseCAPEM: got pool %v, err %v", pool, err)
		}
		pair, certErr, keyErr := parseKeyPairPEM(a, b)
		if certErr != nil && keyErr != nil {
			t.Fatalf("parseKeyPairPEM: got both %v and %v", certErr, keyErr)
		}
		if ok := certErr == nil && keyErr == nil; ok != (len(pair.Certificate) > 0 && pair.PrivateKey != nil) {
			t.Fatalf("parseKeyPairPEM: got %d certificates, key %T, errors %v, %v", len(pair.Certificate), pair.PrivateKey, certErr, keyErr)
		}
	})
}
