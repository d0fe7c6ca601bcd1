package controller

import (
	"crypto/x509"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"go.yaml.in/yaml/v3"

	"jsn.dev/jsn/controller/api"
	"jsn.dev/jsn/internal/testkit"
)

// attacker is a raw nats.go connection, as an attacker would open it.
type attacker struct {
	nc   *nats.Conn
	errs chan error
}

func (l *lab) attack(t *testing.T, creds []byte, inbox string) *attacker {
	t.Helper()
	a := &attacker{errs: make(chan error, 64)}
	opts := []nats.Option{nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
		select {
		case a.errs <- err:
		default:
		}
	}), nats.MaxReconnects(0), nats.CustomInboxPrefix(inbox)}
	if ca := l.ctl.CA(); ca != nil {
		opts = append(opts, nats.ClientTLSConfig(nil, func() (*x509.CertPool, error) {
			p := x509.NewCertPool()
			p.AppendCertsFromPEM(ca)
			return p, nil
		}))
	}
	if creds != nil {
		j, s := splitCreds(t, creds)
		opts = append(opts, nats.UserJWTAndSeed(j, s))
	}
	nc, err := nats.Connect(l.ctl.URL(), opts...)
	if err != nil {
		a.errs <- err
		return a
	}
	a.nc = nc
	t.Cleanup(nc.Close)
	return a
}

func splitCreds(t *testing.T, creds []byte) (string, string) {
	t.Helper()
	var j, s string
	lines := strings.Split(string(creds), "\n")
	for i, ln := range lines {
		if strings.Contains(ln, "BEGIN NATS USER JWT") {
			j = lines[i+1]
		}
		if strings.Contains(ln, "BEGIN USER NKEY SEED") {
			s = lines[i+1]
		}
	}
	return j, s
}

func credsOf(t *testing.T, cfg []byte) []byte {
	var c struct {
		Credentials string `yaml:"credentials"`
	}
	if err := yaml.Unmarshal(cfg, &c); err != nil {
		t.Fatal(err)
	}
	return []byte(c.Credentials)
}

// denied expects a permissions violation mentioning subject.
func (a *attacker) denied(t *testing.T, what, subject string) {
	t.Helper()
	if a.nc != nil {
		_ = a.nc.Flush()
	}
	deadline := time.After(5 * time.Second)
	for {
		select {
		case err := <-a.errs:
			if strings.Contains(strings.ToLower(err.Error()), "permissions violation") && strings.Contains(err.Error(), subject) {
				return
			}
		case <-deadline:
			t.Errorf("%s: no permissions violation for %s", what, subject)
			return
		}
	}
}

func TestSecurity(t *testing.T) {
	l := startLab(t)
	l.exporter("e1", map[string]string{"board": "rpi4"})
	l.exporter("e2", map[string]string{"board": "rpi4"})
	e1cfg := callOK[api.ConfigReply](t, l.admin, api.AdminSubject(AdminName, api.VerbCreateExporter), api.CreateExporterRequest{Name: "e3"})
	alice, aliceCfg := l.client("alice", api.CreateClientRequest{Allow: []string{"power.*"}})

	// No credentials: refused.
	if a := l.attack(t, nil, "_INBOX_x"); a.nc != nil {
		t.Fatal("connection without credentials accepted")
	}

	// A client's own identity.
	c := l.attack(t, credsOf(t, aliceCfg), "_INBOX_alice")
	for _, s := range []string{">", "jsn.>", "_INBOX_bob.>"} {
		if _, err := c.nc.SubscribeSync(s); err != nil {
			t.Fatal(err)
		}
		c.denied(t, "client subscribe", s)
	}
	for _, s := range []string{"jsn.x.e1.call.power.on", "$KV.jsn-leases.e1", "$JS.API.STREAM.LIST", "jsn.ctl.a.alice.create.client", "jsn.ctl.c.bob.lease.request", "jsn.ctl.e.e1.register"} {
		_ = c.nc.Publish(s, nil)
		c.denied(t, "client publish", s)
	}

	// A lease credential: only its exporter, only the allowed drivers.
	r := callOK[api.LeaseReply](t, alice, api.ClientSubject("alice", api.VerbLeaseRequest), api.LeaseRequest{Exporter: "e1", Duration: 2 * time.Second})
	lc := l.attack(t, r.Credential.Creds(), "_INBOX_alice")
	_ = lc.nc.Publish("jsn.x.e1.call.power.on", nil)
	_ = lc.nc.Publish("jsn.x.e1.call.serial.write", nil)
	lc.denied(t, "lease outside --allow", "jsn.x.e1.call.serial.write")
	_ = lc.nc.Publish("jsn.x.e2.call.power.on", nil)
	lc.denied(t, "lease on another exporter", "jsn.x.e2.call.power.on")
	// It expires with the lease: the server disconnects it and refuses it afterwards.
	testkit.CheckFor(t, 30*time.Second, func() error {
		if !lc.nc.IsClosed() {
			return errors.New("not yet: lease credential disconnected")
		}
		return nil
	})
	// (The server disconnects at the JWT's expiry, whole seconds, and may accept it again within
	// that second until the lease's end revokes it.)
	testkit.CheckFor(t, 30*time.Second, func() error {
		a := l.attack(t, r.Credential.Creds(), "_INBOX_alice")
		if a.nc != nil {
			a.nc.Close()
			return errors.New("not yet: expired lease credential refused")
		}
		return nil
	})

	// An exporter's identity.
	e := l.attack(t, credsOf(t, e1cfg.Config), "_INBOX_e3")
	for _, s := range []string{"jsn.x.e1.>", "jsn.x.e1.call.power.on", "_INBOX_alice.>"} {
		if _, err := e.nc.SubscribeSync(s); err != nil {
			t.Fatal(err)
		}
		e.denied(t, "exporter subscribe", s)
	}
	for _, s := range []string{"jsn.ctl.c.alice.lease.request", "_INBOX_alice.x", "jsn.x.e1.lease"} {
		_ = e.nc.Publish(s, nil)
		e.denied(t, "exporter publish", s)
	}

	// Release revokes at once; admin delete revokes the identity at once.
	r = callOK[api.LeaseReply](t, alice, api.ClientSubject("alice", api.VerbLeaseRequest), api.LeaseRequest{Exporter: "e2", Duration: time.Minute})
	lc = l.attack(t, r.Credential.Creds(), "_INBOX_alice")
	if lc.nc == nil {
		t.Fatal("lease credential refused")
	}
	callOK[api.Empty](t, alice, api.ClientSubject("alice", api.VerbLeaseRelease), api.LeaseID{ID: r.Lease.ID})
	testkit.CheckFor(t, 30*time.Second, func() error {
		if !lc.nc.IsClosed() {
			return errors.New("not yet: released credential disconnected")
		}
		return nil
	})
	callOK[api.Empty](t, l.admin, api.AdminSubject(AdminName, api.VerbDeleteClient), api.ExporterName{Name: "alice"})
	testkit.CheckFor(t, 30*time.Second, func() error {
		if !c.nc.IsClosed() {
			return errors.New("not yet: deleted client disconnected")
		}
		return nil
	})
	if a := l.attack(t, credsOf(t, aliceCfg), "_INBOX_alice"); a.nc != nil {
		t.Fatal("deleted client accepted")
	}
}
