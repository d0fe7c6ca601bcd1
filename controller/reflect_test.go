package controller

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nats.go"

	"jsn.dev/jsn/bus/wire"
	"jsn.dev/jsn/controller/api"
)

// inboxOf returns the inbox prefix a .creds file may subscribe to (its _INBOX….> permission).
func inboxOf(t *testing.T, creds []byte) string {
	t.Helper()
	j, err := jwt.ParseDecoratedJWT(creds)
	if err != nil {
		t.Fatal(err)
	}
	uc, err := jwt.DecodeUserClaims(j)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range uc.Sub.Allow {
		if p, ok := strings.CutSuffix(s, ".>"); ok && strings.HasPrefix(p, "_INBOX") {
			return p
		}
	}
	t.Fatalf("credentials of %s have no inbox permission", uc.Name)
	return ""
}

// watch subscribes a raw connection to subject; quiet later checks that nothing arrived.
func (a *attacker) watch(t *testing.T, subject string) *nats.Subscription {
	t.Helper()
	if a.nc == nil {
		t.Fatalf("watch %s: not connected", subject)
	}
	sub, err := a.nc.SubscribeSync(subject)
	if err != nil {
		t.Fatal(err)
	}
	if err := a.nc.Flush(); err != nil {
		t.Fatal(err)
	}
	return sub
}

// quiet checks that sub received nothing. Call it after a round trip that proves the messages
// it must not see would have been published by now: the flush then brings them in.
func quiet(t *testing.T, what string, nc *nats.Conn, sub *nats.Subscription) {
	t.Helper()
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	for {
		m, err := sub.NextMsg(0)
		if errors.Is(err, nats.ErrTimeout) {
			return
		}
		if err != nil {
			t.Fatal(err)
		}
		t.Errorf("%s: %s received a message (%d bytes, headers %v)", what, m.Subject, len(m.Data), m.Header)
	}
}

// TestReplyReflection is the red team's hole 1 against the controller: a client with no lease
// sends API requests naming as reply subject JetStream's API, the lease bucket, an exporter's
// lease push subject and another client's inbox. The controller must answer none of them.
func TestReplyReflection(t *testing.T) {
	l := startLab(t)
	e1cfg := callOK[api.ConfigReply](t, l.admin, api.AdminSubject(AdminName, api.VerbCreateExporter), api.CreateExporterRequest{Name: "e1"})
	e1 := l.connectConfig(e1cfg.Config)
	callOK[api.RegisterReply](t, e1, api.ExporterSubject("e1", api.VerbRegister), api.RegisterRequest{})
	_, bobCfg := l.client("bob", api.CreateClientRequest{})
	alice, aliceCfg := l.client("alice", api.CreateClientRequest{})

	// Watchers: the exporter's lease push subject (as the exporter) and alice's inbox (as alice).
	ew := l.attack(t, credsOf(t, e1cfg.Config), inboxOf(t, credsOf(t, e1cfg.Config)))
	push := ew.watch(t, api.LeasePushSubject("e1"))
	aw := l.attack(t, credsOf(t, aliceCfg), inboxOf(t, credsOf(t, aliceCfg)))
	aliceInbox := aw.watch(t, inboxOf(t, credsOf(t, aliceCfg))+".>")

	bob := l.attack(t, credsOf(t, bobCfg), inboxOf(t, credsOf(t, bobCfg)))
	if bob.nc == nil {
		t.Fatal("bob refused")
	}
	get, _ := wire.Marshal(api.LeaseID{ID: "nope"})
	list, _ := wire.Marshal(api.ListExportersRequest{})
	replies := []string{
		"$JS.API.STREAM.DELETE.KV_" + BucketIdentities,
		"$KV." + BucketLeases + ".e1",
		api.LeasePushSubject("e1"),
		inboxOf(t, credsOf(t, aliceCfg)) + ".stolen",
	}
	for _, reply := range replies {
		for _, r := range []struct {
			verb string
			body []byte
		}{{api.VerbLeaseGet, get}, {api.VerbExportersList, list}} {
			if err := bob.nc.PublishRequest(api.ClientSubject("bob", r.verb), reply, r.body); err != nil {
				t.Fatal(err)
			}
		}
	}
	// A legitimate request on each endpoint after them: an endpoint handles its requests one at a
	// time, so once these are answered the ones above have been handled (or dropped).
	for _, r := range []struct {
		verb string
		body []byte
	}{{api.VerbLeaseGet, get}, {api.VerbExportersList, list}} {
		if _, err := bob.nc.Request(api.ClientSubject("bob", r.verb), r.body, 10*time.Second); err != nil {
			t.Fatalf("bob's own %s: %v", r.verb, err)
		}
	}
	quiet(t, "exporter e1's lease push subject", ew.nc, push)
	quiet(t, "alice's inbox", aw.nc, aliceInbox)

	// The identities bucket is still there, and e1 can still be leased.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := l.ctl.identities.Get(ctx, api.KindClient+"."+AdminName); err != nil {
		t.Errorf("identities bucket after the attack: %v", err)
	}
	r := callOK[api.LeaseReply](t, alice, api.ClientSubject("alice", api.VerbLeaseRequest), api.LeaseRequest{Exporter: "e1", Duration: time.Minute})
	if r.Lease.Status != api.StatusActive {
		t.Errorf("lease of e1 after the attack: got %s (%s), want active", r.Lease.Status, r.Lease.Reason)
	}
}

// TestControllerUsers checks the controller's own users at the NATS level: the API user cannot
// touch JetStream or KV (a reflection bug in the API could not reach the buckets), and the state
// user receives no request and may not delete or purge a bucket.
func TestControllerUsers(t *testing.T) {
	l := startLab(t)
	apiCreds, stateCreds, err := l.ctl.auth.controllerUsers()
	if err != nil {
		t.Fatal(err)
	}
	a := l.attack(t, apiCreds, inboxOf(t, apiCreds))
	for _, s := range []string{"$JS.API.STREAM.DELETE.KV_" + BucketIdentities, "$KV." + BucketLeases + ".e1", "$JS.API.STREAM.LIST", "jsn.x.e1.call.power.on"} {
		_ = a.nc.Publish(s, nil)
		a.denied(t, "controller API user publish", s)
	}
	if _, err := a.nc.SubscribeSync("_INBOX_c.alice.>"); err != nil {
		t.Fatal(err)
	}
	a.denied(t, "controller API user subscribe", "_INBOX_c.alice.>")

	s := l.attack(t, stateCreds, inboxOf(t, stateCreds))
	for _, subj := range []string{"$JS.API.STREAM.DELETE.KV_" + BucketIdentities, "$JS.API.STREAM.PURGE.KV_" + BucketLeases,
		"$KV.other.x", "jsn.x.e1.lease", "_INBOX_c.alice.x"} {
		_ = s.nc.Publish(subj, nil)
		s.denied(t, "controller state user publish", subj)
	}
	for _, subj := range []string{"jsn.ctl.>", "$SRV.>", "_INBOX_c.>"} {
		if _, err := s.nc.SubscribeSync(subj); err != nil {
			t.Fatal(err)
		}
		s.denied(t, "controller state user subscribe", subj)
	}
	// The buckets are intact.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := l.ctl.identities.Get(ctx, api.KindClient+"."+AdminName); err != nil {
		t.Errorf("identities bucket: %v", err)
	}
}
