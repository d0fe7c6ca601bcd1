package controller

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"jsn.dev/jsn/bus/wire"
	"jsn.dev/jsn/controller/api"
	"jsn.dev/jsn/internal/testkit"
)

// receives checks that sub gets a message published by pub on subject (a tap), within a few
// seconds.
func receives(t *testing.T, what string, pub *nats.Conn, sub *nats.Subscription, subject string) {
	t.Helper()
	if err := pub.Publish(subject, []byte("boot ok\n")); err != nil {
		t.Fatal(err)
	}
	if err := pub.Flush(); err != nil {
		t.Fatal(err)
	}
	m, err := sub.NextMsg(5 * time.Second)
	if err != nil {
		t.Fatalf("%s: nothing received on %s: %v", what, subject, err)
	}
	if string(m.Data) != "boot ok\n" {
		t.Fatalf("%s: got %q", what, m.Data)
	}
}

// viewerRequest sends a raw request and returns the reply (or the no-responders error).
func rawRequest(t *testing.T, nc *nats.Conn, subject string, req any) (*nats.Msg, error) {
	t.Helper()
	b, err := wire.Marshal(req)
	if err != nil {
		t.Fatal(err)
	}
	return nc.Request(subject, b, 5*time.Second)
}

// TestWatchRights shows, with raw NATS connections, that the watch rights are exactly what
// docs/protocol.md "Which credential watches" says: a viewer lists exporters and leases,
// describes exporters and watches the taps of its exporters, nothing else; a client with --watch
// watches those taps on top of its client rights; a lease credential watches its own exporter's
// taps; a client without --watch watches nothing; every one is revocable.
func TestWatchRights(t *testing.T) {
	l := startLab(t)
	l.exporter("e1", map[string]string{"board": "rpi4"})
	l.exporter("e2", nil)
	e1cfg := callOK[api.ConfigReply](t, l.admin, api.AdminSubject(AdminName, api.VerbCreateExporter), api.CreateExporterRequest{Name: "e3"})
	_ = e1cfg
	// The exporters' taps are published with their own identities.
	exp := map[string]*attacker{}
	for _, name := range []string{"e4", "e5"} {
		rep := callOK[api.ConfigReply](t, l.admin, api.AdminSubject(AdminName, api.VerbCreateExporter), api.CreateExporterRequest{Name: name})
		exp[name] = l.attack(t, credsOf(t, rep.Config), inboxOf(t, credsOf(t, rep.Config)))
		if exp[name].nc == nil {
			t.Fatalf("exporter %s refused", name)
		}
		callOK[api.RegisterReply](t, l.connectConfig(rep.Config), api.ExporterSubject(name, api.VerbRegister), api.RegisterRequest{})
	}
	// e4 answers history requests the way the exporter does (into the tap namespace only).
	hist, err := exp["e4"].nc.Subscribe(wire.HistoryWildcard("e4"), func(m *nats.Msg) {
		if wire.IsHistoryReply("e4", m.Reply) {
			r := nats.NewMsg(m.Reply)
			r.Header.Set(wire.HeaderTapOffset, "8")
			r.Data = []byte("history\n")
			_ = exp["e4"].nc.PublishMsg(r)
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	defer hist.Unsubscribe()
	if err := exp["e4"].nc.Flush(); err != nil {
		t.Fatal(err)
	}

	// Names: viewers and clients share one name space.
	_, bobCfg := l.client("bob", api.CreateClientRequest{Watch: []string{"e4"}})
	if _, err := call[api.ConfigReply](t, l.admin, api.AdminSubject(AdminName, api.VerbCreateViewer), api.CreateViewerRequest{Name: "bob"}); err == nil {
		t.Error("a viewer named like client bob was created")
	}
	wallRep := callOK[api.ConfigReply](t, l.admin, api.AdminSubject(AdminName, api.VerbCreateViewer), api.CreateViewerRequest{Name: "wall", Watch: []string{"e4"}})
	if _, err := call[api.ConfigReply](t, l.admin, api.AdminSubject(AdminName, api.VerbCreateClient), api.CreateClientRequest{Name: "wall"}); err == nil {
		t.Error("a client named like viewer wall was created")
	}
	for _, bad := range [][]string{{"board=rpi4"}, {"e4.>"}, {""}} {
		if _, err := call[api.ConfigReply](t, l.admin, api.AdminSubject(AdminName, api.VerbCreateViewer), api.CreateViewerRequest{Name: "bad", Watch: bad}); err == nil ||
			!strings.Contains(err.Error(), "watch") {
			t.Errorf("viewer with --watch %q: got %v, want refused naming the watch item", bad, err)
		}
	}
	allRep := callOK[api.ConfigReply](t, l.admin, api.AdminSubject(AdminName, api.VerbCreateViewer), api.CreateViewerRequest{Name: "lobby"})
	if !strings.Contains(string(wallRep.Config), "role: viewer") {
		t.Errorf("viewer config has no viewer role:\n%s", wallRep.Config)
	}

	// --- the viewer wall (watch e4) ---
	wallCreds := credsOf(t, wallRep.Config)
	if got := inboxOf(t, wallCreds); got != "_INBOX_v.wall" {
		t.Errorf("viewer inbox %s, want _INBOX_v.wall", got)
	}
	v := l.attack(t, wallCreds, "_INBOX_v.wall")
	if v.nc == nil {
		t.Fatal("viewer refused")
	}
	// Can: watch e4's taps, ask e4 for history and read the reply.
	taps := v.watch(t, "jsn.tap.e4.>")
	receives(t, "viewer watching e4", exp["e4"].nc, taps, "jsn.tap.e4.console")
	reply := wire.HistoryReplySubject("e4", "tok1")
	if err := v.nc.PublishRequest(wire.HistorySubject("e4", "console"), reply, nil); err != nil {
		t.Fatal(err)
	}
	if m, err := taps.NextMsg(5 * time.Second); err != nil || m.Subject != reply || m.Header.Get(wire.HeaderTapOffset) != "8" {
		t.Fatalf("viewer's history request: got %v, %v", m, err)
	}
	// Can: list exporters and leases, describe exporters (the viewer API).
	alice, _ := l.client("alice", api.CreateClientRequest{})
	lr := callOK[api.LeaseReply](t, alice, api.ClientSubject("alice", api.VerbLeaseRequest), api.LeaseRequest{Exporter: "e1", Duration: time.Minute})
	m, err := rawRequest(t, v.nc, api.ViewerSubject("wall", api.VerbExportersList), api.ListExportersRequest{})
	if err != nil || wire.ReplyError(wire.Header(m.Header)) != nil {
		t.Fatalf("viewer exporters.list: %v %v", err, m)
	}
	var el api.ListExportersReply
	if err := wire.Unmarshal(m.Data, &el); err != nil || len(el.Exporters) < 4 {
		t.Fatalf("viewer exporters.list: %v, %d exporters", err, len(el.Exporters))
	}
	m, err = rawRequest(t, v.nc, api.ViewerSubject("wall", api.VerbLeaseList), api.ListLeasesRequest{})
	if err != nil {
		t.Fatal(err)
	}
	var ll api.ListLeasesReply
	if err := wire.Unmarshal(m.Data, &ll); err != nil || len(ll.Leases) != 1 || ll.Leases[0].Client != "alice" || ll.Leases[0].ID != "" {
		t.Fatalf("viewer lease.list: %v %+v (want alice's lease without its id)", err, ll.Leases)
	}
	if lr.Lease.ID == "" {
		t.Fatal("no lease id")
	}
	m, err = rawRequest(t, v.nc, api.ViewerSubject("wall", api.VerbExportersDesc), api.ExporterName{Name: "e4"})
	if err != nil || wire.ReplyError(wire.Header(m.Header)) != nil {
		t.Fatalf("viewer exporters.describe: %v %v", err, m)
	}
	// Cannot: any other verb on its own API (nobody serves it).
	for _, verb := range []string{api.VerbLeaseRequest, api.VerbLeaseRelease, api.VerbCreateClient} {
		if _, err := rawRequest(t, v.nc, api.ViewerSubject("wall", verb), api.LeaseRequest{Exporter: "e1", Duration: time.Minute}); !errors.Is(err, nats.ErrNoResponders) {
			t.Errorf("viewer %s: got %v, want no responders", verb, err)
		}
	}
	// Cannot: subscribe to anything else.
	for _, s := range []string{">", "jsn.tap.>", "jsn.tap.e5.>", "jsn.tap.e5.console", "jsn.x.e4.>", "jsn.x.e4.out.*.*", "_INBOX_c.wall.>",
		"_INBOX_c.alice.>", "_INBOX_v.lobby.>", "jsn.ctl.>"} {
		if _, err := v.nc.SubscribeSync(s); err != nil {
			t.Fatal(err)
		}
		v.denied(t, "viewer subscribe", s)
	}
	// Cannot: publish anything else: calls, describe, streams, taps (spoofing output or history
	// replies), other exporters' history, the client, admin and exporter APIs, another viewer's.
	for _, s := range []string{"jsn.x.e4.call.power.on", "jsn.x.e4.describe", "jsn.x.e4.stream.L.x", "jsn.tap.e4.console",
		"jsn.tap.e4.~history.tok1", "jsn.x.e5.history.console", "jsn.ctl.c.wall.lease.request", "jsn.ctl.a.wall.create.client",
		"jsn.ctl.e.e4.register", "jsn.ctl.v.lobby.exporters.list", "jsn.x.e4.lease", "$JS.API.STREAM.LIST", "_INBOX_c.alice.x"} {
		_ = v.nc.Publish(s, nil)
		v.denied(t, "viewer publish", s)
	}

	// --- the viewer lobby (watch *) watches every exporter ---
	lobby := l.attack(t, credsOf(t, allRep.Config), "_INBOX_v.lobby")
	lt := lobby.watch(t, "jsn.tap.>")
	receives(t, "viewer * watching e5", exp["e5"].nc, lt, "jsn.tap.e5.uart")
	_ = lobby.nc.Publish("jsn.x.e5.call.power.on", nil)
	lobby.denied(t, "viewer * calling", "jsn.x.e5.call.power.on")

	// --- client bob (--watch e4): e4's taps and its client API, not e5's taps ---
	b := l.attack(t, credsOf(t, bobCfg), "_INBOX_c.bob")
	bt := b.watch(t, "jsn.tap.e4.console")
	receives(t, "client --watch e4", exp["e4"].nc, bt, "jsn.tap.e4.console")
	if _, err := rawRequest(t, b.nc, api.ClientSubject("bob", api.VerbLeaseList), api.ListLeasesRequest{}); err != nil {
		t.Errorf("client with --watch: lease.list: %v", err)
	}
	for _, s := range []string{"jsn.tap.e5.>", "jsn.x.e4.>"} {
		if _, err := b.nc.SubscribeSync(s); err != nil {
			t.Fatal(err)
		}
		b.denied(t, "client --watch e4 subscribe", s)
	}
	_ = b.nc.Publish("jsn.x.e4.call.power.on", nil)
	b.denied(t, "client --watch e4 calling without a lease", "jsn.x.e4.call.power.on")

	// --- client alice (no --watch): no tap; her lease credential on e1: e1's taps only ---
	a := l.attack(t, credsOf(t, mustCfg(t, l, "carol")), "_INBOX_c.carol")
	if _, err := a.nc.SubscribeSync("jsn.tap.e4.>"); err != nil {
		t.Fatal(err)
	}
	a.denied(t, "client without --watch", "jsn.tap.e4.>")
	lc := l.attack(t, lr.Credential.Creds(), inboxOf(t, lr.Credential.Creds()))
	lt1 := lc.watch(t, "jsn.tap.e1.>")
	_ = lt1
	if err := lc.nc.PublishRequest(wire.HistorySubject("e1", "console"), wire.HistoryReplySubject("e1", "x"), nil); err != nil {
		t.Fatal(err)
	}
	if _, err := lc.nc.SubscribeSync("jsn.tap.e4.>"); err != nil {
		t.Fatal(err)
	}
	lc.denied(t, "lease credential watching another exporter", "jsn.tap.e4.>")
	select {
	case err := <-lc.errs:
		t.Errorf("lease credential: unexpected error %v", err)
	default:
	}

	// Revocable: deleting the viewer closes its connections and refuses it.
	callOK[api.Empty](t, l.admin, api.AdminSubject(AdminName, api.VerbDeleteViewer), api.ExporterName{Name: "wall"})
	testkit.CheckFor(t, 30*time.Second, func() error {
		if !v.nc.IsClosed() {
			return errors.New("not yet: deleted viewer disconnected")
		}
		return nil
	})
	if again := l.attack(t, wallCreds, "_INBOX_v.wall"); again.nc != nil {
		t.Error("deleted viewer accepted")
	}
	ids := callOK[api.ListIdentitiesReply](t, l.admin, api.AdminSubject(AdminName, api.VerbListViewer), api.ListIdentitiesRequest{})
	if len(ids.Identities) != 1 || ids.Identities[0].Name != "lobby" || ids.Identities[0].Watch[0] != "*" {
		t.Errorf("list viewer: %+v", ids.Identities)
	}
}

// TestMintViewer checks the short-lived viewer credential a browser gets: its user's watch
// rights, the viewer API under that name, and an expiry.
func TestMintViewer(t *testing.T) {
	l := startLab(t)
	cred, _, err := l.ctl.auth.MintViewer("alice", []string{"e1"}, time.Now().Add(2*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	v := l.attack(t, cred.Creds(), "_INBOX_v.alice")
	if v.nc == nil {
		t.Fatal("minted viewer credential refused")
	}
	v.watch(t, "jsn.tap.e1.>")
	if _, err := v.nc.SubscribeSync("_INBOX_c.alice.>"); err != nil {
		t.Fatal(err)
	}
	v.denied(t, "browser credential reading the client's inbox", "_INBOX_c.alice.>")
	if _, err := rawRequest(t, v.nc, api.ViewerSubject("alice", api.VerbExportersList), api.ListExportersRequest{}); err != nil {
		t.Errorf("browser credential: exporters.list: %v", err)
	}
	testkit.CheckFor(t, 30*time.Second, func() error {
		if !v.nc.IsClosed() {
			return errors.New("not yet: expired browser credential disconnected")
		}
		return nil
	})
	if _, _, err := l.ctl.auth.MintViewer("alice", nil, time.Time{}); err == nil {
		t.Error("a viewer credential without expiry was minted")
	}
}

func mustCfg(t *testing.T, l *lab, name string) []byte {
	t.Helper()
	_, cfg := l.client(name, api.CreateClientRequest{})
	return cfg
}

// TestViewerDashboard: a viewer (a wall screen) logs in to the dashboard with its own config,
// and its browser credential gets its watch list; a client's --watch list counts too.
func TestViewerDashboard(t *testing.T) {
	l := startWebLab(t)
	l.exporter("e1", nil)
	l.exporter("e2", nil)
	rep := callOK[api.ConfigReply](t, l.admin, api.AdminSubject(AdminName, api.VerbCreateViewer), api.CreateViewerRequest{Name: "wall", Watch: []string{"e2"}})
	wall := l.attack(t, credsOf(t, rep.Config), "_INBOX_v.wall")
	m, err := rawRequest(t, wall.nc, api.ViewerSubject("wall", api.VerbDashboard), api.Empty{})
	if err != nil || wire.ReplyError(wire.Header(m.Header)) != nil {
		t.Fatalf("viewer dashboard token: %v %v", err, m)
	}
	var tok api.DashboardToken
	if err := wire.Unmarshal(m.Data, &tok); err != nil {
		t.Fatal(err)
	}
	s, code, err := l.exchange(tok.Token)
	if err != nil || s.Name != "wall" || fmt.Sprint(s.Watch) != "[e2]" {
		t.Fatalf("viewer exchange: %d %v %+v", code, err, s)
	}
	bob, _ := l.client("bob", api.CreateClientRequest{Watch: []string{"e1"}})
	tok = callOK[api.DashboardToken](t, bob, api.ClientSubject("bob", api.VerbDashboard), api.Empty{})
	if s, _, err := l.exchange(tok.Token); err != nil || fmt.Sprint(s.Watch) != "[e1]" {
		t.Fatalf("--watch client exchange: %v %+v", err, s)
	}
}
