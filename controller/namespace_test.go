package controller

import (
	"errors"
	"strings"
	"testing"
	"time"

	"jsn.dev/jsn/bus"
	"jsn.dev/jsn/bus/wire"
	"jsn.dev/jsn/controller/api"
	"jsn.dev/jsn/internal/testkit"
)

// TestInboxNamespaces is the red team's hole 2: identities of different kinds with the same
// name must not share an inbox, and the lab's own names are reserved for every kind.
func TestInboxNamespaces(t *testing.T) {
	l := startLab(t)

	// Reserved names, whatever the kind.
	for _, verb := range []string{api.VerbCreateExporter, api.VerbCreateClient} {
		for _, name := range []string{ControllerName, "jsn-sys", AdminName} {
			var req any = api.CreateExporterRequest{Name: name}
			if verb == api.VerbCreateClient {
				req = api.CreateClientRequest{Name: name}
			}
			_, err := call[api.ConfigReply](t, l.admin, api.AdminSubject(AdminName, verb), req)
			if err == nil || (!strings.Contains(err.Error(), "reserved") && !strings.Contains(err.Error(), "already exists")) {
				t.Errorf("%s %s: got %v, want refused as reserved", verb, name, err)
			}
		}
	}

	// An exporter named alice does not get client alice's replies.
	ea := callOK[api.ConfigReply](t, l.admin, api.AdminSubject(AdminName, api.VerbCreateExporter), api.CreateExporterRequest{Name: "alice"})
	ew := l.attack(t, credsOf(t, ea.Config), inboxOf(t, credsOf(t, ea.Config)))
	stolen := ew.watch(t, inboxOf(t, credsOf(t, ea.Config))+".>")
	l.exporter("rack1", nil)
	alice, _ := l.client("alice", api.CreateClientRequest{})
	callOK[api.LeaseReply](t, alice, api.ClientSubject("alice", api.VerbLeaseRequest), api.LeaseRequest{Exporter: "rack1", Duration: time.Minute})
	callOK[api.ListLeasesReply](t, alice, api.ClientSubject("alice", api.VerbLeaseList), api.ListLeasesRequest{})
	quiet(t, "exporter alice's inbox", ew.nc, stolen)

	// A client named rack3 does not get exporter rack3's heartbeat replies.
	e := l.exporterConn("rack3")
	_, rcfg3 := l.client("rack3", api.CreateClientRequest{})
	cw3 := l.attack(t, credsOf(t, rcfg3), inboxOf(t, credsOf(t, rcfg3)))
	beats3 := cw3.watch(t, inboxOf(t, credsOf(t, rcfg3))+".>")
	for range 3 {
		callOK[api.HeartbeatReply](t, e, api.ExporterSubject("rack3", api.VerbHeartbeat), api.HeartbeatRequest{})
	}
	quiet(t, "client rack3's inbox", cw3.nc, beats3)

	// Every kind's inbox is its own, and none is another's.
	inboxes := map[string]string{
		"exporter alice": inboxOf(t, credsOf(t, ea.Config)),
		"client rack3":   inboxOf(t, credsOf(t, rcfg3)),
	}
	for what, in := range inboxes {
		for other, o := range inboxes {
			if what != other && (strings.HasPrefix(o+".", in+".") || strings.HasPrefix(in+".", o+".")) {
				t.Errorf("%s (%s) and %s (%s) overlap", what, in, other, o)
			}
		}
	}
}

// exporterConn creates exporter identity name, registers it and returns its connection.
func (l *lab) exporterConn(name string) *bus.Conn {
	l.t.Helper()
	rep := callOK[api.ConfigReply](l.t, l.admin, api.AdminSubject(AdminName, api.VerbCreateExporter), api.CreateExporterRequest{Name: name})
	c := l.connectConfig(rep.Config)
	callOK[api.RegisterReply](l.t, c, api.ExporterSubject(name, api.VerbRegister), api.RegisterRequest{})
	return c
}

// TestLeaseCredentialScope is the red team's hole 3: the credential jsn shell hands the shell
// must reach only its own lease's replies, not its owner's inbox (where the reply to the owner's
// next lease request, another exporter's credential, would arrive).
func TestLeaseCredentialScope(t *testing.T) {
	l := startLab(t)
	l.exporter("e1", nil)
	l.exporter("e2", nil)
	alice, aliceCfg := l.client("alice", api.CreateClientRequest{})
	r1 := callOK[api.LeaseReply](t, alice, api.ClientSubject("alice", api.VerbLeaseRequest), api.LeaseRequest{Exporter: "e1", Duration: time.Minute})
	lc := l.attack(t, r1.Credential.Creds(), inboxOf(t, r1.Credential.Creds()))
	if lc.nc == nil {
		t.Fatal("lease credential refused")
	}
	owner := inboxOf(t, credsOf(t, aliceCfg))
	if owner == inboxOf(t, r1.Credential.Creds()) {
		t.Errorf("the lease credential's inbox is its owner's (%s)", owner)
	}
	ownerSub, err := lc.nc.SubscribeSync(owner + ".>")
	if err != nil {
		t.Fatal(err)
	}
	lc.denied(t, "lease credential subscribing to its owner's inbox", owner+".>")
	// The owner's next request: its reply (with e2's credential) must not reach the lease
	// credential, whatever it subscribed to.
	sub, err := lc.nc.SubscribeSync(">")
	if err != nil {
		t.Fatal(err)
	}
	lc.denied(t, "lease credential subscribing to everything", ">")
	r2 := callOK[api.LeaseReply](t, alice, api.ClientSubject("alice", api.VerbLeaseRequest), api.LeaseRequest{Exporter: "e2", Duration: time.Minute})
	if r2.Credential == nil {
		t.Fatal("no credential for e2")
	}
	quiet(t, "the e1 lease credential", lc.nc, sub)
	quiet(t, "the e1 lease credential on its owner's inbox", lc.nc, ownerSub)

	// Streams: only its own lease's stream subjects on its exporter.
	for _, s := range []string{"jsn.x.e1.out.*", "jsn.x.e1.out.other-lease.*", "jsn.x.e1.out.>"} {
		if _, err := lc.nc.SubscribeSync(s); err != nil {
			t.Fatal(err)
		}
		lc.denied(t, "lease credential subscribing to streams of other leases", s)
	}
	for _, s := range []string{"jsn.x.e1.stream.other-lease.x", "jsn.x.e1.stream.x"} {
		_ = lc.nc.Publish(s, nil)
		lc.denied(t, "lease credential writing to streams of other leases", s)
	}
}

// TestFinishingExporter checks that an exporter with an afterLease hook is granted again only
// once it reports it finished the ended lease: busy with it in heartbeats keeps it, lease.done
// or a heartbeat busy with nothing frees it.
func TestFinishingExporter(t *testing.T) {
	l := startLab(t)
	rep := callOK[api.ConfigReply](t, l.admin, api.AdminSubject(AdminName, api.VerbCreateExporter), api.CreateExporterRequest{Name: "e1"})
	e := l.connectConfig(rep.Config)
	callOK[api.RegisterReply](t, e, api.ExporterSubject("e1", api.VerbRegister), api.RegisterRequest{AfterLease: time.Minute})
	alice, _ := l.client("alice", api.CreateClientRequest{})
	req := func() api.LeaseReply {
		return callOK[api.LeaseReply](t, alice, api.ClientSubject("alice", api.VerbLeaseRequest), api.LeaseRequest{Exporter: "e1", Duration: time.Minute})
	}
	get := func(id string) api.LeaseReply {
		return callOK[api.LeaseReply](t, alice, api.ClientSubject("alice", api.VerbLeaseGet), api.LeaseID{ID: id})
	}
	beat := func(busy string) {
		callOK[api.HeartbeatReply](t, e, api.ExporterSubject("e1", api.VerbHeartbeat), api.HeartbeatRequest{Busy: busy})
	}
	for _, free := range []func(id string){
		func(id string) {
			callOK[api.Empty](t, e, api.ExporterSubject("e1", api.VerbLeaseDone), api.LeaseDoneRequest{Lease: id})
		},
		func(string) { beat("") },
	} {
		first := req()
		if first.Lease.Status != api.StatusActive {
			t.Fatalf("first: got %s (%s)", first.Lease.Status, first.Lease.Reason)
		}
		callOK[api.Empty](t, alice, api.ClientSubject("alice", api.VerbLeaseRelease), api.LeaseID{ID: first.Lease.ID})
		next := req()
		if next.Lease.Status != api.StatusQueued || !strings.Contains(next.Lease.Reason, "finishing") {
			t.Fatalf("next while e1 finishes: got %s (%s), want queued, finishing", next.Lease.Status, next.Lease.Reason)
		}
		if got := get(first.Lease.ID).Lease.Status; got != api.StatusEnded {
			t.Errorf("the finished lease: got %s, want ended", got)
		}
		beat(first.Lease.ID)
		callOK[api.Empty](t, e, api.ExporterSubject("e1", api.VerbLeaseDone), api.LeaseDoneRequest{Lease: "another"})
		if got := get(next.Lease.ID).Lease.Status; got != api.StatusQueued {
			t.Fatalf("next while e1 says it is busy with the ended lease: got %s, want queued", got)
		}
		free(first.Lease.ID)
		testkit.CheckFor(t, 30*time.Second, func() error {
			if get(next.Lease.ID).Lease.Status != api.StatusActive {
				return errors.New("not yet: the next lease granted")
			}
			return nil
		})
		callOK[api.Empty](t, alice, api.ClientSubject("alice", api.VerbLeaseRelease), api.LeaseID{ID: next.Lease.ID})
		callOK[api.Empty](t, e, api.ExporterSubject("e1", api.VerbLeaseDone), api.LeaseDoneRequest{Lease: next.Lease.ID})
	}
}

// TestLeaseIDsGiveNoPower is the red team's "lease ids are public through lease list --all and
// exporters.list": another client's lists do not show them, and knowing one gives no power.
func TestLeaseIDsGiveNoPower(t *testing.T) {
	l := startLab(t)
	l.exporter("e1", nil)
	alice, _ := l.client("alice", api.CreateClientRequest{})
	r := callOK[api.LeaseReply](t, alice, api.ClientSubject("alice", api.VerbLeaseRequest), api.LeaseRequest{Exporter: "e1", Duration: time.Minute})
	bob, _ := l.client("bob", api.CreateClientRequest{})
	all := callOK[api.ListLeasesReply](t, bob, api.ClientSubject("bob", api.VerbLeaseList), api.ListLeasesRequest{All: true})
	if len(all.Leases) != 1 || all.Leases[0].Client != "alice" {
		t.Fatalf("bob's lease list --all: got %+v, want alice's lease", all.Leases)
	}
	if all.Leases[0].ID != "" {
		t.Errorf("bob sees the id of alice's lease in lease.list")
	}
	exps := callOK[api.ListExportersReply](t, bob, api.ClientSubject("bob", api.VerbExportersList), api.ListExportersRequest{})
	if len(exps.Exporters) != 1 || exps.Exporters[0].Lease == nil || exps.Exporters[0].Lease.ID != "" {
		t.Errorf("bob's exporters.list: got %+v, want e1 leased, without the lease id", exps.Exporters)
	}
	// The admin sees it; alice sees her own.
	if all := callOK[api.ListLeasesReply](t, l.admin, api.ClientSubject(AdminName, api.VerbLeaseList), api.ListLeasesRequest{All: true}); all.Leases[0].ID != r.Lease.ID {
		t.Errorf("the admin does not see the lease id")
	}
	// Knowing it anyway gives bob nothing.
	for _, verb := range []string{api.VerbLeaseGet, api.VerbLeaseRelease, api.VerbLeaseExtend} {
		_, err := call[api.LeaseReply](t, bob, api.ClientSubject("bob", verb), api.ExtendRequest{ID: r.Lease.ID, Duration: time.Minute})
		if !errors.Is(err, wire.ErrNotFound) {
			t.Errorf("bob's %s of alice's lease: got %v, want NOT_FOUND", verb, err)
		}
	}
	if got := callOK[api.LeaseReply](t, alice, api.ClientSubject("alice", api.VerbLeaseGet), api.LeaseID{ID: r.Lease.ID}); got.Lease.Status != api.StatusActive {
		t.Errorf("alice's lease after bob's attempts: %s", got.Lease.Status)
	}
}

// TestExporterLabels is the red team's "exporter-supplied labels skip the admin's character
// check and steer selector leases": labels an exporter reports are checked at register, and only
// the labels the admin gave it select it.
func TestExporterLabels(t *testing.T) {
	l := startLab(t)
	rep := callOK[api.ConfigReply](t, l.admin, api.AdminSubject(AdminName, api.VerbCreateExporter),
		api.CreateExporterRequest{Name: "e1", Labels: map[string]string{"board": "rpi4"}})
	e := l.connectConfig(rep.Config)
	for _, bad := range []api.RegisterRequest{
		{Labels: map[string]string{"board": "rpi4\x1b[2J\x1b]0;pwned\x07"}},
		{Labels: map[string]string{"evil\nkey": "x"}},
		{Version: "1.0\x1b[31m"},
	} {
		if _, err := call[api.RegisterReply](t, e, api.ExporterSubject("e1", api.VerbRegister), bad); !errors.Is(err, wire.ErrInvalidArgument) {
			t.Errorf("register %+v: got %v, want INVALID_ARGUMENT", bad, err)
		}
	}
	callOK[api.RegisterReply](t, e, api.ExporterSubject("e1", api.VerbRegister),
		api.RegisterRequest{Labels: map[string]string{"board": "rpi5", "pool": "fast"}})
	alice, _ := l.client("alice", api.CreateClientRequest{})
	for _, sel := range []string{"pool=fast", "board=rpi5"} {
		_, err := call[api.LeaseReply](t, alice, api.ClientSubject("alice", api.VerbLeaseRequest), api.LeaseRequest{Selector: sel, Duration: time.Minute})
		if !errors.Is(err, wire.ErrNotFound) {
			t.Errorf("selector %s, which only the exporter claims: got %v, want NOT_FOUND", sel, err)
		}
	}
	list := callOK[api.ListExportersReply](t, alice, api.ClientSubject("alice", api.VerbExportersList), api.ListExportersRequest{})
	if len(list.Exporters) != 1 || len(list.Exporters[0].Labels) != 1 || list.Exporters[0].Labels["board"] != "rpi4" {
		t.Errorf("exporters.list labels: got %+v, want the admin's board=rpi4 only", list.Exporters)
	}
	r := callOK[api.LeaseReply](t, alice, api.ClientSubject("alice", api.VerbLeaseRequest), api.LeaseRequest{Selector: "board=rpi4", Duration: time.Minute})
	if r.Lease.Status != api.StatusActive {
		t.Errorf("selector of the admin's label: got %s", r.Lease.Status)
	}
}
