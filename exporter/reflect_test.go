package exporter

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"jsn.dev/jsn/bus/wire"
	"jsn.dev/jsn/client"
	"jsn.dev/jsn/controller/api"
	"jsn.dev/jsn/internal/testkit"
)

// raw connects a plain nats.go connection, as an attacker would, with creds; its requests use
// the inbox prefix the credential may subscribe to.
func (l *lab) raw(creds []byte) *nats.Conn {
	l.t.Helper()
	j, err := jwt.ParseDecoratedJWT(creds)
	if err != nil {
		l.t.Fatal(err)
	}
	kp, err := jwt.ParseDecoratedNKey(creds)
	if err != nil {
		l.t.Fatal(err)
	}
	seed, _ := kp.Seed()
	nc, err := nats.Connect(l.ctl.URL(), nats.UserJWTAndSeed(j, string(seed)), nats.MaxReconnects(0),
		nats.CustomInboxPrefix(inboxOf(l.t, creds)), nats.ErrorHandler(func(*nats.Conn, *nats.Subscription, error) {}), l.tls())
	if err != nil {
		l.t.Fatal(err)
	}
	l.t.Cleanup(nc.Close)
	return nc
}

// tls makes a raw connection verify the controller's certificate with its CA.
func (l *lab) tls() nats.Option {
	ca := l.ctl.CA()
	return nats.ClientTLSConfig(nil, func() (*x509.CertPool, error) {
		p := x509.NewCertPool()
		p.AppendCertsFromPEM(ca)
		return p, nil
	})
}

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

func watch(t *testing.T, nc *nats.Conn, subject string) *nats.Subscription {
	t.Helper()
	sub, err := nc.SubscribeSync(subject)
	if err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	return sub
}

// quiet checks that sub received nothing, after a flush that brings in whatever was published
// before the caller's last round trip.
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

// TestReplyReflectionThroughExporter is the red team's hole 1 through an exporter: a lease
// holder calls its own exporter naming as reply subject another exporter's lease push subject
// (which made it drop its lease holder), another lease's inbox and JetStream's API. The
// exporter must answer none of them, on describe and on calls.
func TestReplyReflectionThroughExporter(t *testing.T) {
	l := startLab(t)
	cfg1 := l.exporterConfig("refl1", nil, "export:\n  probe: {type: extest.Probe}\n")
	cfg2 := l.exporterConfig("refl2", nil, "export:\n  probe: {type: extest.Probe}\n")
	runRemote(t, cfg1)
	runRemote(t, cfg2)
	alice, bob := l.client("alice"), l.client("bob")
	l.online(alice, "refl1", true)
	l.online(alice, "refl2", true)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ra, exa := leaseDial(ctx, t, alice, api.LeaseRequest{Exporter: "refl1", Duration: time.Minute})
	rb, exb := leaseDial(ctx, t, bob, api.LeaseRequest{Exporter: "refl2", Duration: time.Minute})
	for _, ex := range []interface {
		WaitReady(context.Context, func(api.HookOutput)) error
	}{exa, exb} {
		if err := ex.WaitReady(ctx, nil); err != nil {
			t.Fatal(err)
		}
	}

	// Watchers: refl2's lease push subject (as refl2) and bob's lease inbox (as bob's lease).
	e2 := l.raw([]byte(cfg2.Credentials))
	push := watch(t, e2, api.LeasePushSubject("refl2"))
	bobCreds := rb.Credential.Creds()
	bobLease := l.raw(bobCreds)
	bobInbox := watch(t, bobLease, inboxOf(t, bobCreds)+".>")

	a := l.raw(ra.Credential.Creds())
	replies := []string{
		api.LeasePushSubject("refl2"),
		inboxOf(t, bobCreds) + ".stolen",
		"$JS.API.STREAM.DELETE.KV_jsn-identities",
	}
	call := wire.CallSubject("refl1", "probe", "echo")
	args, _ := wire.EncodeArgs([]any{"x", 1})
	callMsg := func(reply string) *nats.Msg {
		m := &nats.Msg{Subject: call, Reply: reply, Data: args, Header: nats.Header{}}
		m.Header.Set(wire.HeaderLease, ra.Lease.ID)
		return m
	}
	// Describes first, then calls (one request per reply subject at a time: NATS's
	// allow_responses, which the old exporter permissions used, counts deliveries too). After each
	// round a legitimate request on the same subscription: describe is answered in order, and a
	// call is admitted (or dropped) in order before it runs.
	for _, reply := range replies {
		if err := a.PublishRequest(wire.DescribeSubject("refl1"), reply, nil); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := a.Request(wire.DescribeSubject("refl1"), nil, 10*time.Second); err != nil {
		t.Fatalf("alice's own describe: %v", err)
	}
	for _, reply := range replies {
		if err := a.PublishMsg(callMsg(reply)); err != nil {
			t.Fatal(err)
		}
	}
	if r, err := a.RequestMsg(callMsg(""), 10*time.Second); err != nil || r.Header.Get(wire.HeaderErrorCode) != "" {
		t.Fatalf("alice's own call: %v %v", err, r)
	}
	quiet(t, "refl2's lease push subject", e2, push)
	quiet(t, "bob's lease inbox", bobLease, bobInbox)

	// Bob still holds refl2, and the identities bucket is still there.
	if _, err := exb.Driver("probe").Call(ctx, "resets"); err != nil {
		t.Errorf("bob's call after the attack: %v", err)
	}
	full, err := os.ReadFile(filepath.Join(l.dir, "controller.creds"))
	if err != nil {
		t.Fatal(err)
	}
	j, _ := jwt.ParseDecoratedJWT(full)
	kp, _ := jwt.ParseDecoratedNKey(full)
	seed, _ := kp.Seed()
	nc, err := nats.Connect(l.ctl.URL(), nats.UserJWTAndSeed(j, string(seed)), l.tls())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := js.Stream(ctx, "KV_jsn-identities"); err != nil {
		t.Errorf("identities bucket after the attack: %v", err)
	}
}

// TestNextLeaseAfterHooks is the red team's hole 4: the next lease holder must not receive the
// previous lease's hook output. The next grant waits for the afterLease hook to finish, hook
// output goes on the lease's own event subjects, and an ended lease's beforeLease output is not
// replayed to anyone naming its (public) id.
func TestNextLeaseAfterHooks(t *testing.T) {
	l := startLab(t)
	dir := t.TempDir()
	cfg := l.exporterConfig("hooked", nil, fmt.Sprintf(`export:
  probe: {type: extest.Probe}
hooks:
  beforeLease:
    script: echo "before-secret-$JSN_LEASE"
  afterLease:
    script: |
      touch %[1]s/after-started
      while [ ! -f %[1]s/go ]; do sleep 0.05; done
      echo "after-secret-$JSN_LEASE"
    timeout: 60s
`, dir))
	runRemote(t, cfg)
	alice, bob := l.client("alice"), l.client("bob")
	l.online(alice, "hooked", true)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	ra, exa := leaseDial(ctx, t, alice, api.LeaseRequest{Exporter: "hooked", Duration: time.Minute})
	if err := exa.WaitReady(ctx, func(api.HookOutput) {}); err != nil {
		t.Fatal(err)
	}
	if err := alice.Release(ctx, ra.Lease.ID); err != nil {
		t.Fatal(err)
	}
	testkit.CheckFor(t, 30*time.Second, func() error {
		_, err := os.Stat(filepath.Join(dir, "after-started"))
		if err != nil {
			return errors.New("not yet: the afterLease hook to start")
		}
		return nil
	})

	// While alice's afterLease hook runs, bob's request waits.
	rb, err := bob.RequestLease(ctx, api.LeaseRequest{Exporter: "hooked", Duration: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	var early *nats.Conn
	var earlySub *nats.Subscription
	if rb.Lease.Status != api.StatusQueued {
		t.Errorf("bob's request while alice's afterLease hook runs: got %s, want queued", rb.Lease.Status)
		if rb.Credential != nil {
			early = l.raw(rb.Credential.Creds())
			earlySub = watch(t, early, "jsn.x.hooked.ev.>")
		}
	} else if !strings.Contains(rb.Lease.Reason, "finishing") {
		t.Errorf("bob's wait reason: got %q, want it to say the exporter is finishing", rb.Lease.Reason)
	}
	if err := os.WriteFile(filepath.Join(dir, "go"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	rb, err = bob.WaitLease(ctx, rb.Lease.ID, nil)
	if err != nil {
		t.Fatal(err)
	}
	o, err := bob.LeaseOptions(rb)
	if err != nil {
		t.Fatal(err)
	}
	exb, err := client.Dial(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	defer exb.Close()
	// The exporter serves bob's lease only once alice's is finished (after her afterLease hook).
	if err := exb.WaitReady(ctx, nil); err != nil {
		t.Fatal(err)
	}

	// Bob's credential cannot subscribe to any event of another lease.
	bc := l.raw(rb.Credential.Creds())
	errs := make(chan error, 16)
	bc.SetErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) { errs <- err })
	var subs []*nats.Subscription
	for _, s := range []string{"jsn.x.hooked.ev.>", "jsn.x.hooked.ev." + ra.Lease.ID + ".>", "jsn.x.hooked.ev.hook"} {
		subs = append(subs, watch(t, bc, s))
	}
	// Nor have an ended lease's beforeLease output replayed by naming its id.
	m := &nats.Msg{Subject: wire.DescribeSubject("hooked"), Header: nats.Header{}}
	m.Header.Set(wire.HeaderLease, ra.Lease.ID)
	m.Header.Set(HeaderHookReplay, "tok")
	if r, err := bc.RequestMsg(m, 10*time.Second); err == nil && r.Header.Get(wire.HeaderErrorCode) == "" {
		t.Errorf("describe naming alice's ended lease: got a describe, want an error or nothing")
	}
	if early != nil {
		quiet(t, "bob's early credential on every event", early, earlySub)
	}
	for _, s := range subs {
		quiet(t, "bob's credential on "+s.Subject, bc, s)
	}
	denied := 0
	for len(errs) > 0 {
		if err := <-errs; strings.Contains(strings.ToLower(err.Error()), "permissions violation") {
			denied++
		}
	}
	if denied < len(subs) {
		t.Errorf("%d of %d subscriptions to other leases' events refused", denied, len(subs))
	}
}
