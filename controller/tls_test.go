package controller

import (
	"bufio"
	"bytes"
	"crypto/ecdsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"go.yaml.in/yaml/v3"

	"jsn.dev/jsn/bus"
	"jsn.dev/jsn/bus/wire"
	"jsn.dev/jsn/controller/api"
)

// caOf returns the "ca" of a config file, nil if none.
func caOf(t *testing.T, cfg []byte) []byte {
	t.Helper()
	var c struct {
		CA string `yaml:"ca"`
	}
	if err := yaml.Unmarshal(cfg, &c); err != nil {
		t.Fatal(err)
	}
	if c.CA == "" {
		return nil
	}
	return []byte(c.CA)
}

// recorder relays TCP connections to target and keeps every byte that crosses it.
type recorder struct {
	ln  net.Listener
	mu  sync.Mutex
	buf bytes.Buffer
	wg  sync.WaitGroup
}

func record(t *testing.T, target string) *recorder {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r := &recorder{ln: ln}
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			u, err := net.Dial("tcp", target)
			if err != nil {
				c.Close()
				continue
			}
			r.wg.Add(2)
			pipe := func(dst, src net.Conn) {
				defer r.wg.Done()
				buf := make([]byte, 32<<10)
				for {
					n, err := src.Read(buf)
					if n > 0 {
						r.mu.Lock()
						r.buf.Write(buf[:n])
						r.mu.Unlock()
						if _, werr := dst.Write(buf[:n]); werr != nil {
							err = werr
						}
					}
					if err != nil {
						dst.Close()
						src.Close()
						return
					}
				}
			}
			go pipe(u, c)
			go pipe(c, u)
		}
	}()
	t.Cleanup(func() { ln.Close(); r.wg.Wait() })
	return r
}

func (r *recorder) contains(s string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return bytes.Contains(r.buf.Bytes(), []byte(s))
}

// TestControllerListenerRequiresTLS checks at the wire that the controller's NATS listener
// requires TLS, and that what a client and the controller say (subjects, a lease credential's
// seed) does not cross the network in clear.
func TestControllerListenerRequiresTLS(t *testing.T) {
	l := startLab(t)
	l.exporter("e1", nil)
	_, aliceCfg := l.client("alice", api.CreateClientRequest{})
	hostport := strings.TrimPrefix(l.ctl.URL(), "nats://")

	// The server's greeting says TLS is required.
	c, err := net.Dial("tcp", hostport)
	if err != nil {
		t.Fatal(err)
	}
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	line, err := bufio.NewReader(c).ReadString('\n')
	c.Close()
	if err != nil {
		t.Fatal(err)
	}
	var info struct {
		TLSRequired bool `json:"tls_required"`
	}
	if err := json.Unmarshal([]byte(strings.TrimPrefix(strings.TrimSpace(line), "INFO ")), &info); err != nil {
		t.Fatalf("INFO %q: %v", line, err)
	}
	if !info.TLSRequired {
		t.Errorf("the controller's listener does not require TLS: %s", line)
	}

	// A lease request through a relay that records the bytes: neither the subject nor the
	// credential's seed in the reply appear.
	rec := record(t, hostport)
	j, s := splitCreds(t, credsOf(t, aliceCfg))
	opts := []nats.Option{nats.UserJWTAndSeed(j, s), nats.CustomInboxPrefix(inboxOf(t, credsOf(t, aliceCfg))), nats.MaxReconnects(0)}
	if ca := caOf(t, aliceCfg); ca != nil {
		opts = append(opts, nats.ClientTLSConfig(nil, func() (*x509.CertPool, error) {
			p := x509.NewCertPool()
			p.AppendCertsFromPEM(ca)
			return p, nil
		}))
	}
	nc, err := nats.Connect("nats://"+rec.ln.Addr().String(), opts...)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	body, _ := wire.Marshal(api.LeaseRequest{Exporter: "e1", Duration: time.Minute})
	m, err := nc.Request(api.ClientSubject("alice", api.VerbLeaseRequest), body, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	var r api.LeaseReply
	if err := wire.Unmarshal(m.Data, &r); err != nil || r.Credential == nil {
		t.Fatalf("lease reply: %v %+v", err, r)
	}
	nc.Close()
	for _, secret := range []string{r.Credential.Seed, r.Credential.JWT[:40], api.VerbLeaseRequest, "alice"} {
		if rec.contains(secret) {
			t.Errorf("%q crossed the network in clear", secret)
		}
	}
}

// TestTLSVerification checks that clients verify the controller's certificate: the issued
// configs carry the lab's CA, a connection with another CA or with the system's roots fails,
// and a controller given a certificate of its own serves it.
func TestTLSVerification(t *testing.T) {
	l := startLab(t)
	cfg := callOK[api.ConfigReply](t, l.admin, api.AdminSubject(AdminName, api.VerbCreateClient), api.CreateClientRequest{Name: "alice"})
	ca := caOf(t, cfg.Config)
	if ca == nil || !bytes.Equal(ca, l.ctl.CA()) {
		t.Fatalf("the client config carries CA %q, want the controller's", ca)
	}
	ecfg := callOK[api.ConfigReply](t, l.admin, api.AdminSubject(AdminName, api.VerbCreateExporter), api.CreateExporterRequest{Name: "e1"})
	if !bytes.Equal(caOf(t, ecfg.Config), ca) {
		t.Fatal("the exporter config does not carry the controller's CA")
	}
	ctx := t.Context()
	creds := credsOf(t, cfg.Config)
	other, _, _, err := createCA(t.TempDir()+"/ca.pem", t.TempDir()+"/ca.key")
	if err != nil {
		t.Fatal(err)
	}
	for _, bad := range [][]byte{other, nil} {
		if c, err := bus.ConnectWith(ctx, l.ctl.URL(), bus.ConnectOptions{Name: "alice", Creds: creds, CA: bad}); err == nil {
			c.Close()
			t.Errorf("connected with CA %.40q, want a certificate error", bad)
		} else if !strings.Contains(err.Error(), "certificate") {
			t.Errorf("CA %.40q: got %v, want a certificate error", bad, err)
		}
	}
	c, err := bus.ConnectWith(ctx, l.ctl.URL(), bus.ConnectOptions{Name: "alice", Creds: creds, CA: ca})
	if err != nil {
		t.Fatal(err)
	}
	c.Close()

	// A certificate of one's own: --tls-cert/--tls-key, and --tls-ca for the configs.
	dir := t.TempDir()
	pemCA, caCert, caKey, err := createCA(dir+"/own-ca.pem", dir+"/own-ca.key")
	if err != nil {
		t.Fatal(err)
	}
	cert, err := serverCert(caCert, caKey, []string{"127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	writePEM(t, dir+"/cert.pem", "CERTIFICATE", cert.Certificate[0])
	writeKeyPEM(t, dir+"/key.pem", cert.PrivateKey)
	l.ctl.Close()
	o := testOptions(l.dir)
	o.TLSCert, o.TLSKey, o.TLSCA = dir+"/cert.pem", dir+"/key.pem", dir+"/own-ca.pem"
	l.start(o)
	if !bytes.Equal(l.ctl.CA(), pemCA) {
		t.Fatal("the controller does not hand out the given CA")
	}
	c, err = bus.ConnectWith(ctx, l.ctl.URL(), bus.ConnectOptions{Name: "alice", Creds: creds, CA: pemCA})
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	if c, err := bus.ConnectWith(ctx, l.ctl.URL(), bus.ConnectOptions{Name: "alice", Creds: creds, CA: ca}); err == nil {
		c.Close()
		t.Error("connected with the data directory's CA to a controller with a certificate of its own")
	}
}

func writePEM(t *testing.T, file, typ string, der []byte) {
	t.Helper()
	if err := os.WriteFile(file, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
}

func writeKeyPEM(t *testing.T, file string, key any) {
	t.Helper()
	der, err := x509.MarshalECPrivateKey(key.(*ecdsa.PrivateKey))
	if err != nil {
		t.Fatal(err)
	}
	writePEM(t, file, "EC PRIVATE KEY", der)
}
