package exporter

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"jsn.dev/jsn/bus"
	"jsn.dev/jsn/controller/api"
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
		nats.CustomInboxPrefix(inboxOf(l.t, creds)), nats.ErrorHandler(func(*nats.Conn, *nats.Subscription, error) {}))
	if err != nil {
		l.t.Fatal(err)
	}
	l.t.Cleanup(nc.Close)
	return nc
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
	call := bus.CallSubject("refl1", "probe", "echo")
	args, _ := bus.EncodeArgs([]any{"x", 1})
	callMsg := func(reply string) *nats.Msg {
		m := &nats.Msg{Subject: call, Reply: reply, Data: args, Header: nats.Header{}}
		m.Header.Set(bus.HeaderLease, ra.Lease.ID)
		return m
	}
	// Describes first, then calls (one request per reply subject at a time: NATS's
	// allow_responses, which the old exporter permissions used, counts deliveries too). After each
	// round a legitimate request on the same subscription: describe is answered in order, and a
	// call is admitted (or dropped) in order before it runs.
	for _, reply := range replies {
		if err := a.PublishRequest(bus.DescribeSubject("refl1"), reply, nil); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := a.Request(bus.DescribeSubject("refl1"), nil, 10*time.Second); err != nil {
		t.Fatalf("alice's own describe: %v", err)
	}
	for _, reply := range replies {
		if err := a.PublishMsg(callMsg(reply)); err != nil {
			t.Fatal(err)
		}
	}
	if r, err := a.RequestMsg(callMsg(""), 10*time.Second); err != nil || r.Header.Get(bus.HeaderErrorCode) != "" {
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
	nc, err := nats.Connect(l.ctl.URL(), nats.UserJWTAndSeed(j, string(seed)))
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
