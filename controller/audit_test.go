package controller

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"jsn.dev/jsn/bus/wire"
	"jsn.dev/jsn/controller/api"
	"jsn.dev/jsn/internal/testkit"
)

// events lists the audit events q finds for the connection's identity, as "event client exporter".
func auditEvents(t *testing.T, r api.AuditReply) []string {
	var out []string
	for _, e := range r.Events {
		s := e.Event + " " + e.Client + " " + e.Exporter
		if e.Call != "" {
			s += " " + e.Call + " " + e.Code
		}
		out = append(out, s)
	}
	return out
}

// TestAuditLog: lease events and exporters' call events land in the audit log; nobody can forge
// an entry (raw NATS); a client reads only its own events, an admin everybody's.
func TestAuditLog(t *testing.T) {
	l := startLab(t)
	l.exporter("e1", map[string]string{"board": "rpi4"})
	l.exporter("e2", map[string]string{"board": "rpi4"})
	e3 := callOK[api.ConfigReply](t, l.admin, api.AdminSubject(AdminName, api.VerbCreateExporter), api.CreateExporterRequest{Name: "e3"})
	alice, aliceCfg := l.client("alice", api.CreateClientRequest{})
	bob, _ := l.client("bob", api.CreateClientRequest{})
	start := time.Now()

	ra := callOK[api.LeaseReply](t, alice, api.ClientSubject("alice", api.VerbLeaseRequest), api.LeaseRequest{Exporter: "e1", Duration: time.Minute})
	callOK[api.LeaseReply](t, alice, api.ClientSubject("alice", api.VerbLeaseExtend), api.ExtendRequest{ID: ra.Lease.ID, Duration: 2 * time.Minute})
	rb := callOK[api.LeaseReply](t, bob, api.ClientSubject("bob", api.VerbLeaseRequest), api.LeaseRequest{Exporter: "e2", Duration: time.Minute})
	// bob queues for e1 (alice holds it), then withdraws.
	rq := callOK[api.LeaseReply](t, bob, api.ClientSubject("bob", api.VerbLeaseRequest), api.LeaseRequest{Exporter: "e1", Duration: time.Minute})
	if rq.Lease.Status != api.StatusQueued {
		t.Fatalf("bob's second request: %s, want queued", rq.Lease.Status)
	}
	callOK[api.Empty](t, bob, api.ClientSubject("bob", api.VerbLeaseRelease), api.LeaseID{ID: rq.Lease.ID})

	// Exporter e3's identity may append call events for itself only.
	ex := l.attack(t, credsOf(t, e3.Config), "_INBOX_e3")
	ev, _ := wire.Marshal(api.AuditEvent{Kind: api.AuditKindCall, Event: api.AuditCall, Call: "power.on", Code: "OK", Lease: ra.Lease.ID})
	if err := ex.nc.Publish(api.AuditCallSubject("e3", "alice"), ev); err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{api.AuditCallSubject("e1", "alice"), api.AuditLeaseSubject("e3", "alice"), "jsn.audit.call.e3"} {
		_ = ex.nc.Publish(s, ev)
		ex.denied(t, "exporter forging an audit event", s)
	}
	// A client, with its identity or its lease credential, may append nothing and read nothing
	// directly.
	c := l.attack(t, credsOf(t, aliceCfg), "_INBOX_alice")
	for _, s := range []string{api.AuditCallSubject("e1", "alice"), api.AuditLeaseSubject("e1", "bob"), "$JS.API.CONSUMER.CREATE." + api.AuditStream, "$JS.API.STREAM.PURGE." + api.AuditStream} {
		_ = c.nc.Publish(s, ev)
		c.denied(t, "client writing the audit log", s)
	}
	if _, err := c.nc.SubscribeSync("jsn.audit.>"); err != nil {
		t.Fatal(err)
	}
	c.denied(t, "client watching the audit log", "jsn.audit.>")
	lc := l.attack(t, ra.Credential.Creds(), "_INBOX_alice")
	_ = lc.nc.Publish(api.AuditCallSubject("e1", "alice"), ev)
	lc.denied(t, "lease credential writing the audit log", api.AuditCallSubject("e1", "alice"))

	callOK[api.Empty](t, alice, api.ClientSubject("alice", api.VerbLeaseRelease), api.LeaseID{ID: ra.Lease.ID})

	// alice sees her own events, in order, and nothing of bob's.
	want := []string{"request alice e1", "grant alice e1", "extend alice e1", "call alice e3 power.on OK", "release alice e1"}
	testkit.CheckFor(t, 30*time.Second, func() error {
		r, err := call[api.AuditReply](t, alice, api.ClientSubject("alice", api.VerbAudit), api.AuditQuery{})
		if err != nil {
			return err
		}
		if got := auditEvents(t, r); !slices.Equal(got, want) {
			return fmt.Errorf("alice's audit log:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
		}
		return nil
	})
	if _, err := call[api.AuditReply](t, alice, api.ClientSubject("alice", api.VerbAudit), api.AuditQuery{Client: "bob"}); wire.CodeOf(err) != wire.PermissionDenied ||
		!strings.Contains(err.Error(), "only its own events") {
		t.Fatalf("alice asking for bob's events: %v, want PERMISSION_DENIED", err)
	}
	// The admin sees everybody's; filters by exporter, client, lease, kind and time.
	adm := func(q api.AuditQuery) []string {
		return auditEvents(t, callOK[api.AuditReply](t, l.admin, api.ClientSubject(AdminName, api.VerbAudit), q))
	}
	if got, want := adm(api.AuditQuery{Client: "bob"}), []string{"request bob e2", "grant bob e2", "request bob e1", "queued bob e1", "cancel bob e1"}; !slices.Equal(got, want) {
		t.Errorf("bob's events: %q, want %q", got, want)
	}
	if got, want := adm(api.AuditQuery{Exporter: "e2"}), []string{"request bob e2", "grant bob e2"}; !slices.Equal(got, want) {
		t.Errorf("e2's events: %q, want %q", got, want)
	}
	if got, want := adm(api.AuditQuery{Lease: rb.Lease.ID}), []string{"request bob e2", "grant bob e2"}; !slices.Equal(got, want) {
		t.Errorf("bob's lease's events: %q, want %q", got, want)
	}
	if got, want := adm(api.AuditQuery{Kind: api.AuditKindCall}), []string{"call alice e3 power.on OK"}; !slices.Equal(got, want) {
		t.Errorf("call events: %q, want %q", got, want)
	}
	if got := adm(api.AuditQuery{Since: time.Now().Add(time.Hour)}); len(got) != 0 {
		t.Errorf("events since an hour from now: %q", got)
	}
	if got := adm(api.AuditQuery{Until: start.Add(-time.Second)}); len(got) != 0 {
		t.Errorf("events until before the test: %q", got)
	}
	if got := adm(api.AuditQuery{Limit: 2}); len(got) != 2 {
		t.Errorf("limit 2: %q", got)
	}
	if _, err := call[api.AuditReply](t, l.admin, api.ClientSubject(AdminName, api.VerbAudit), api.AuditQuery{Kind: "bogus"}); wire.CodeOf(err) != wire.InvalidArgument {
		t.Errorf("kind bogus: %v, want INVALID_ARGUMENT", err)
	}
}

// FuzzAuditQuery: any audit.query body is decoded and checked without a panic, and a query that
// passes reads a well-formed subject filter.
func FuzzAuditQuery(f *testing.F) {
	for _, q := range []api.AuditQuery{{}, {Exporter: "e1", Client: "alice", Kind: "call", Limit: 5}, {Kind: "x"}, {Client: "a.b"}, {Lease: ">"}} {
		b, _ := wire.Marshal(q)
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var q api.AuditQuery
		if decode(data, &q) != nil {
			return
		}
		filter, err := auditFilter(&q)
		if err != nil {
			if wire.CodeOf(err) != wire.InvalidArgument {
				t.Fatalf("%+v: %v, want INVALID_ARGUMENT", q, err)
			}
			return
		}
		if parts := strings.Split(filter, "."); len(parts) != 5 || q.Limit < 1 || q.Limit > api.AuditMaxLimit {
			t.Fatalf("%+v: filter %q, limit %d", q, filter, q.Limit)
		}
	})
}
