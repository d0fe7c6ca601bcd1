package controller

import (
	"errors"
	"testing"
	"time"

	"jsn.dev/jsn/controller/api"
	"jsn.dev/jsn/internal/testkit"
)

// TestExternalNATS runs the controller against a separate server configured only from
// `jsn controller nats-config` output.
func TestExternalNATS(t *testing.T) {
	dir := t.TempDir()
	adminCfg, err := Init(dir, InitOptions{})
	if err != nil {
		t.Fatal(err)
	}
	srv := startExternal(t, dir)
	o := testOptions(dir)
	o.NatsURL = srv.TCPURL()
	l := &lab{t: t, dir: dir}
	l.start(o)
	l.admin = l.connectConfig(adminCfg)
	l.exporter("e1", map[string]string{"board": "rpi4"})
	alice, _ := l.client("alice", api.CreateClientRequest{})
	r := callOK[api.LeaseReply](t, alice, api.ClientSubject("alice", api.VerbLeaseRequest), api.LeaseRequest{Selector: "board=rpi4", Duration: time.Minute})
	if r.Credential == nil {
		t.Fatalf("lease: got %+v, want active", r.Lease)
	}
	lc := l.attack(t, r.Credential.Creds(), "_INBOX_alice")
	if lc.nc == nil {
		t.Fatal("lease credential refused")
	}
	callOK[api.Empty](t, alice, api.ClientSubject("alice", api.VerbLeaseRelease), api.LeaseID{ID: r.Lease.ID})
	testkit.CheckFor(t, 30*time.Second, func() error {
		if !lc.nc.IsClosed() {
			return errors.New("not yet: released credential disconnected via $SYS claims update")
		}
		return nil
	})
}
