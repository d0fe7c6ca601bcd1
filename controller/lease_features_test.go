package controller

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"jsn.dev/jsn/bus"
	"jsn.dev/jsn/bus/wire"
	"jsn.dev/jsn/client"
	"jsn.dev/jsn/controller/api"
	"jsn.dev/jsn/internal/testkit"
)

// TestKeepaliveFailover holds a keepalive lease through two replicas while the scheduling one
// dies: renewals reach the other one, the lease lives on; when its holder stops renewing, the
// new leader ends it within the window.
func TestKeepaliveFailover(t *testing.T) {
	dir := t.TempDir()
	adminCfg, err := Init(dir, InitOptions{})
	if err != nil {
		t.Fatal(err)
	}
	srv := startExternal(t, dir)
	o := testOptions(dir)
	o.NatsURL = srv.TCPURL()
	o.OfflineAfter = time.Hour
	o.KeepaliveWindow = 2 * time.Second
	r := []*Controller{startReplica(t, o), startReplica(t, o)}
	l := &lab{t: t, dir: dir, ctl: r[0]}
	l.admin = l.connectConfig(adminCfg)
	ctx := context.Background()
	if err := r[0].RegisterSimulated(ctx, "ka", 1, map[string]string{"ka": "yes"}); err != nil {
		t.Fatal(err)
	}
	_, cfgYAML := l.client("alice", api.CreateClientRequest{})
	cfg, err := client.ParseConfig("alice.yaml", cfgYAML)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Endpoint = srv.TCPURL()
	alice, err := client.DialController(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer alice.Close()
	testkit.CheckFor(t, 30*time.Second, func() error {
		for i, c := range r {
			if c.identity(api.KindClient, "alice") == nil || c.Metrics().Registered != 1 {
				return fmt.Errorf("replica %d does not know alice and ka-0 yet", i)
			}
		}
		return nil
	})
	rep, err := alice.RequestLease(ctx, api.LeaseRequest{Exporter: "ka-0", Keepalive: true, Duration: 10 * time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	l0 := rep.Lease
	if l0.Status != api.StatusActive || l0.Keepalive != o.KeepaliveWindow || l0.Until.Sub(l0.End) < 9*time.Minute {
		t.Fatalf("keepalive lease: got %+v, want active, window %v, until 10m", l0, o.KeepaliveWindow)
	}
	if !rep.Credential.Expires.Equal(l0.Until) && rep.Credential.Expires.Before(l0.Until.Add(-time.Second)) {
		t.Errorf("credential expires %v, want at the hard end %v", rep.Credential.Expires, l0.Until)
	}
	kctx, stop := context.WithCancel(ctx)
	kdone := make(chan error, 1)
	go func() { kdone <- alice.KeepAlive(kctx, l0) }()

	var lead *Controller
	testkit.CheckFor(t, 30*time.Second, func() error {
		for _, c := range r {
			if c.Metrics().Leader == 1 {
				lead = c
				return nil
			}
		}
		return errors.New("no leader yet")
	})
	other := r[0]
	if lead == r[0] {
		other = r[1]
	}
	l.ctl = other
	killed := time.Now()
	lead.Close()
	// Three windows after the leader died the lease is still active and renewed.
	testkit.CheckFor(t, 30*time.Second, func() error {
		got, err := alice.GetLease(ctx, l0.ID)
		if err != nil {
			return err
		}
		if got.Lease.Status != api.StatusActive {
			t.Fatalf("keepalive lease ended during the failover: %s", got.Lease.Reason)
		}
		if got.Lease.End.Before(killed.Add(3 * o.KeepaliveWindow)) {
			return fmt.Errorf("lease end %v: not yet three windows past the leader's death", got.Lease.End)
		}
		return nil
	})
	// The holder stops renewing (as if killed): the lease ends within the window and a reconcile.
	stop()
	if err := <-kdone; err != nil {
		t.Fatalf("KeepAlive after its context ended: %v", err)
	}
	stopped := time.Now()
	testkit.CheckFor(t, 10*time.Second, func() error {
		got, err := alice.GetLease(ctx, l0.ID)
		if err != nil {
			return err
		}
		if got.Lease.Status != api.StatusEnded {
			return fmt.Errorf("lease still %s %v after its holder stopped", got.Lease.Status, time.Since(stopped))
		}
		if !strings.Contains(got.Lease.Reason, "stopped renewing") {
			t.Errorf("ended lease reason %q, want its holder stopped renewing it", got.Lease.Reason)
		}
		return nil
	})
	// Renewing an ended lease tells the holder so.
	if err := alice.KeepAlive(ctx, l0); !errors.Is(err, client.ErrLeaseEnded) {
		t.Errorf("KeepAlive of an ended lease: got %v, want ErrLeaseEnded", err)
	}
}

// TestLeaseFeatureSubjects checks who may use the new API verbs, over raw NATS connections and
// the API: lease.keepalive only on one's own subject and lease; exporter.disable/enable and
// policy.* only for admins.
func TestLeaseFeatureSubjects(t *testing.T) {
	l := startLab(t)
	l.exporter("e1", map[string]string{"board": "rpi4"})
	alice, aliceCfg := l.client("alice", api.CreateClientRequest{})
	bob, _ := l.client("bob", api.CreateClientRequest{})
	raw := l.attack(t, credsOf(t, aliceCfg), "_INBOX_alice")
	for _, s := range []string{"jsn.ctl.c.bob.lease.keepalive", "jsn.ctl.a.alice.exporter.disable", "jsn.ctl.a.alice.policy.set",
		"jsn.ctl.a.admin.policy.set", "jsn.ctl.a.admin.exporter.enable"} {
		_ = raw.nc.Publish(s, nil)
		raw.denied(t, "client publish", s)
	}
	rep := callOK[api.LeaseReply](t, alice, api.ClientSubject("alice", api.VerbLeaseRequest),
		api.LeaseRequest{Exporter: "e1", Keepalive: true, Duration: time.Minute})
	if _, err := call[api.KeepaliveReply](t, bob, api.ClientSubject("bob", api.VerbLeaseKeepalive), api.LeaseID{ID: rep.Lease.ID}); !errors.Is(err, wire.ErrNotFound) {
		t.Errorf("bob renewing alice's lease: got %v, want NOT_FOUND", err)
	}
	got := callOK[api.KeepaliveReply](t, alice, api.ClientSubject("alice", api.VerbLeaseKeepalive), api.LeaseID{ID: rep.Lease.ID})
	if got.Lease.Status != api.StatusActive {
		t.Errorf("alice renewing her lease: %+v", got.Lease)
	}
	// A fixed lease is not renewed by keepalive.
	callOK[api.Empty](t, alice, api.ClientSubject("alice", api.VerbLeaseRelease), api.LeaseID{ID: rep.Lease.ID})
	testkit.CheckFor(t, 10*time.Second, func() error {
		_, err := call[api.LeaseReply](t, alice, api.ClientSubject("alice", api.VerbLeaseRequest), api.LeaseRequest{ID: "fixed1", Exporter: "e1", Duration: time.Minute})
		return err
	})
	if _, err := call[api.KeepaliveReply](t, alice, api.ClientSubject("alice", api.VerbLeaseKeepalive), api.LeaseID{ID: "fixed1"}); !errors.Is(err, wire.ErrFailedPrecondition) {
		t.Errorf("keepalive of a fixed lease: got %v, want FAILED_PRECONDITION", err)
	}
}

// TestLeaseShare shares and transfers a lease, over raw NATS connections with the credentials
// handed out: bob's share credential reaches the leased exporter within his own allow list only,
// unshare revokes it at once, a transfer revokes the previous holder's, and the lease's end
// revokes every credential it had.
func TestLeaseShare(t *testing.T) {
	l := startLab(t)
	e1 := l.exporter("e1", map[string]string{"board": "rpi4"})
	l.exporter("e2", map[string]string{"board": "rpi4"})
	alice, _ := l.client("alice", api.CreateClientRequest{})
	bob, _ := l.client("bob", api.CreateClientRequest{Allow: []string{"power.*"}})
	carol, _ := l.client("carol", api.CreateClientRequest{})
	calls := make(chan string, 16)
	if _, err := e1.Subscribe("jsn.x.e1.call.>", "", func(m *bus.Msg) { calls <- m.Subject }); err != nil {
		t.Fatal(err)
	}
	if err := e1.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	subj := func(c, v string) string { return api.ClientSubject(c, v) }
	rep := callOK[api.LeaseReply](t, alice, subj("alice", api.VerbLeaseRequest), api.LeaseRequest{Exporter: "e1", Duration: 10 * time.Minute})
	id := rep.Lease.ID
	if _, err := call[api.LeaseReply](t, bob, subj("bob", api.VerbLeaseGet), api.LeaseID{ID: id}); !errors.Is(err, wire.ErrNotFound) {
		t.Fatalf("bob gets alice's lease before it is shared: %v, want NOT_FOUND", err)
	}
	if _, err := call[api.LeaseReply](t, bob, subj("bob", api.VerbLeaseShare), api.ShareRequest{ID: id, With: "bob"}); !errors.Is(err, wire.ErrNotFound) {
		t.Errorf("bob shares alice's lease with himself: %v, want NOT_FOUND", err)
	}
	sh := callOK[api.LeaseReply](t, alice, subj("alice", api.VerbLeaseShare), api.ShareRequest{ID: id, With: "bob"})
	if len(sh.Lease.SharedWith) != 1 || sh.Lease.SharedWith[0] != "bob" {
		t.Errorf("shared lease: shared_with %v, want [bob]", sh.Lease.SharedWith)
	}
	got := callOK[api.LeaseReply](t, bob, subj("bob", api.VerbLeaseGet), api.LeaseID{ID: id})
	if got.Credential == nil || got.Credential.JWT == rep.Credential.JWT {
		t.Fatalf("bob's lease.get of the shared lease: credential %v, want his own", got.Credential)
	}
	if _, err := call[api.LeaseReply](t, carol, subj("carol", api.VerbLeaseGet), api.LeaseID{ID: id}); !errors.Is(err, wire.ErrNotFound) {
		t.Errorf("carol gets the lease shared with bob: %v, want NOT_FOUND", err)
	}
	lb := l.attack(t, got.Credential.Creds(), "_INBOX_bob")
	if lb.nc == nil {
		t.Fatal("bob's share credential refused")
	}
	_ = lb.nc.Publish("jsn.x.e1.call.power.on", nil)
	select {
	case s := <-calls:
		if s != "jsn.x.e1.call.power.on" {
			t.Errorf("exporter got %s", s)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("bob's call within his allow list did not reach the exporter")
	}
	_ = lb.nc.Publish("jsn.x.e1.call.serial.write", nil)
	lb.denied(t, "shared lease outside bob's allow list", "jsn.x.e1.call.serial.write")
	_ = lb.nc.Publish("jsn.x.e2.call.power.on", nil)
	lb.denied(t, "shared lease on another exporter", "jsn.x.e2.call.power.on")

	// Unshare revokes bob's credential at once.
	callOK[api.LeaseReply](t, alice, subj("alice", api.VerbLeaseUnshare), api.ShareRequest{ID: id, With: "bob"})
	testkit.CheckFor(t, 30*time.Second, func() error {
		if !lb.nc.IsClosed() {
			return errors.New("not yet: unshared credential disconnected")
		}
		return nil
	})
	if _, err := call[api.LeaseReply](t, bob, subj("bob", api.VerbLeaseGet), api.LeaseID{ID: id}); !errors.Is(err, wire.ErrNotFound) {
		t.Errorf("bob gets the lease after unshare: %v, want NOT_FOUND", err)
	}

	// Transfer to bob: alice's credential is revoked, bob holds it with his allow list.
	la := l.attack(t, rep.Credential.Creds(), "_INBOX_alice")
	if la.nc == nil {
		t.Fatal("alice's lease credential refused")
	}
	callOK[api.LeaseReply](t, alice, subj("alice", api.VerbLeaseShare), api.ShareRequest{ID: id, With: "carol"})
	tr := callOK[api.LeaseReply](t, alice, subj("alice", api.VerbLeaseTransfer), api.ShareRequest{ID: id, With: "bob"})
	if tr.Lease.Client != "bob" || len(tr.Lease.Allow) != 1 {
		t.Errorf("transferred lease: %+v, want bob's with his allow list", tr.Lease)
	}
	testkit.CheckFor(t, 30*time.Second, func() error {
		if !la.nc.IsClosed() {
			return errors.New("not yet: the previous holder's credential disconnected")
		}
		return nil
	})
	if _, err := call[api.LeaseReply](t, alice, subj("alice", api.VerbLeaseGet), api.LeaseID{ID: id}); !errors.Is(err, wire.ErrNotFound) {
		t.Errorf("alice gets the lease after transferring it: %v, want NOT_FOUND", err)
	}
	bg := callOK[api.LeaseReply](t, bob, subj("bob", api.VerbLeaseGet), api.LeaseID{ID: id})
	cg := callOK[api.LeaseReply](t, carol, subj("carol", api.VerbLeaseGet), api.LeaseID{ID: id})
	lc := l.attack(t, cg.Credential.Creds(), "_INBOX_carol")
	lb2 := l.attack(t, bg.Credential.Creds(), "_INBOX_bob")
	if lc.nc == nil || lb2.nc == nil {
		t.Fatal("carol's share or bob's holder credential refused after the transfer")
	}
	// The audit log has who shared and handed over what.
	testkit.CheckFor(t, 10*time.Second, func() error {
		a := callOK[api.AuditReply](t, l.admin, api.ClientSubject(AdminName, api.VerbAudit), api.AuditQuery{Lease: id})
		var seen []string
		for _, e := range a.Events {
			seen = append(seen, e.Event+": "+e.Reason)
		}
		all := strings.Join(seen, "; ")
		for _, want := range []string{"share: alice shared it with bob", "unshare: alice withdrew it from bob", "transfer: alice handed it to bob"} {
			if !strings.Contains(all, want) {
				return fmt.Errorf("audit of lease %s: %s; want %q", id, all, want)
			}
		}
		return nil
	})
	// The end revokes every credential of the lease.
	callOK[api.Empty](t, bob, subj("bob", api.VerbLeaseRelease), api.LeaseID{ID: id})
	testkit.CheckFor(t, 30*time.Second, func() error {
		if !lc.nc.IsClosed() || !lb2.nc.IsClosed() {
			return errors.New("not yet: every credential of the released lease disconnected")
		}
		return nil
	})
}

// TestLeaseTransferPolicies re-checks the policies of the client a lease is handed to or shared
// with: a transfer is refused when the lease's exporter, priority or time left is outside the new
// holder's policy, a share when the exporter is; each refusal names the policy.
func TestLeaseTransferPolicies(t *testing.T) {
	l := startLab(t)
	l.exporter("e1", map[string]string{"board": "rpi4"})
	l.exporter("e2", map[string]string{"board": "bbb"})
	alice, _ := l.client("alice", api.CreateClientRequest{MaxPriority: 5})
	bob, _ := l.client("bob", api.CreateClientRequest{Group: "students", MaxPriority: 5})
	subj := func(c, v string) string { return api.ClientSubject(c, v) }
	one := 1
	callOK[api.Empty](t, l.admin, api.AdminSubject(AdminName, api.VerbPolicySet),
		api.Policy{Name: "teaching", Groups: []string{"students"}, MaxDuration: 10 * time.Minute, MaxPriority: &one, Selector: "board=bbb"})

	refused := func(verb string, req api.ShareRequest, want string) {
		t.Helper()
		_, err := call[api.LeaseReply](t, alice, subj("alice", verb), req)
		if !errors.Is(err, wire.ErrPermissionDenied) || !strings.Contains(err.Error(), want) {
			t.Errorf("%s %s with %s: got %v, want PERMISSION_DENIED with %q", verb, req.ID, req.With, err, want)
		}
	}
	lease := func(id, e string, d time.Duration, prio int) {
		t.Helper()
		callOK[api.LeaseReply](t, alice, subj("alice", api.VerbLeaseRequest), api.LeaseRequest{ID: id, Exporter: e, Duration: d, Priority: prio})
	}
	lease("outside", "e1", 5*time.Minute, 0)
	refused(api.VerbLeaseTransfer, api.ShareRequest{ID: "outside", With: "bob"}, `transfer outside to bob: exporter e1 is outside policy teaching, which allows only exporters matching "board=bbb"`)
	refused(api.VerbLeaseShare, api.ShareRequest{ID: "outside", With: "bob"}, "share outside with bob: exporter e1 is outside policy teaching")
	callOK[api.Empty](t, alice, subj("alice", api.VerbLeaseRelease), api.LeaseID{ID: "outside"})

	testkit.CheckFor(t, 10*time.Second, func() error {
		_, err := call[api.LeaseReply](t, alice, subj("alice", api.VerbLeaseRequest), api.LeaseRequest{ID: "long", Exporter: "e2", Duration: time.Hour, Priority: 3})
		return err
	})
	refused(api.VerbLeaseTransfer, api.ShareRequest{ID: "long", With: "bob"}, "transfer long to bob: priority 3 exceeds the ceiling of 1 of policy teaching")
	// Sharing does not hand over the priority or the time: the exporter is within bob's policy.
	callOK[api.LeaseReply](t, alice, subj("alice", api.VerbLeaseShare), api.ShareRequest{ID: "long", With: "bob"})
	callOK[api.Empty](t, alice, subj("alice", api.VerbLeaseRelease), api.LeaseID{ID: "long"})

	testkit.CheckFor(t, 10*time.Second, func() error {
		_, err := call[api.LeaseReply](t, alice, subj("alice", api.VerbLeaseRequest), api.LeaseRequest{ID: "hour", Exporter: "e2", Duration: time.Hour})
		return err
	})
	refused(api.VerbLeaseTransfer, api.ShareRequest{ID: "hour", With: "bob"}, "exceeds the maximum of 10m0s of policy teaching")
	// Once less time is left than the policy allows, the transfer goes through.
	callOK[api.LeaseReply](t, alice, subj("alice", api.VerbLeaseExtend), api.ExtendRequest{ID: "hour", Duration: 5 * time.Minute, Set: true})
	tr := callOK[api.LeaseReply](t, alice, subj("alice", api.VerbLeaseTransfer), api.ShareRequest{ID: "hour", With: "bob"})
	if tr.Lease.Client != "bob" {
		t.Errorf("transfer within bob's policy: %+v", tr.Lease)
	}
	if _, err := call[api.LeaseReply](t, bob, subj("bob", api.VerbLeaseGet), api.LeaseID{ID: "hour"}); err != nil {
		t.Errorf("bob gets the lease handed to him: %v", err)
	}
}

// TestQueuedKeepaliveHolderGone: a queued keepalive request lives while its holder waits for it
// (client.WaitLease renews it); one whose holder stopped renewing is dropped, with the reason in
// the lease and the audit log, and is never granted when the exporter frees up.
func TestQueuedKeepaliveHolderGone(t *testing.T) {
	dir := t.TempDir()
	adminCfg, err := Init(dir, InitOptions{})
	if err != nil {
		t.Fatal(err)
	}
	o := testOptions(dir)
	o.KeepaliveWindow = 2 * time.Second
	l := &lab{t: t, dir: dir}
	l.start(o)
	l.admin = l.connectConfig(adminCfg)
	l.exporter("q1", map[string]string{"board": "rpi4"})
	alice, _ := l.client("alice", api.CreateClientRequest{})
	bob, bobYAML := l.client("bob", api.CreateClientRequest{})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cfg, err := client.ParseConfig("bob.yaml", bobYAML)
	if err != nil {
		t.Fatal(err)
	}
	bc, err := client.DialController(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer bc.Close()

	ra := callOK[api.LeaseReply](t, alice, api.ClientSubject("alice", api.VerbLeaseRequest), api.LeaseRequest{Exporter: "q1", Duration: time.Minute})
	// bob's first request is abandoned (nobody renews it), his second waits in a Go client.
	for _, id := range []string{"gone", "kept"} {
		r := callOK[api.LeaseReply](t, bob, api.ClientSubject("bob", api.VerbLeaseRequest), api.LeaseRequest{ID: id, Exporter: "q1", Keepalive: true, Duration: time.Hour})
		if r.Lease.Status != api.StatusQueued || r.Lease.Keepalive != o.KeepaliveWindow {
			t.Fatalf("bob's request %s: %+v, want queued keepalive", id, r.Lease)
		}
	}
	waited := make(chan *api.LeaseReply, 1)
	go func() {
		r, err := bc.WaitLease(ctx, "kept", nil)
		if err != nil {
			t.Errorf("WaitLease of the renewed request: %v", err)
		}
		waited <- r
	}()
	testkit.CheckFor(t, 15*time.Second, func() error {
		g := callOK[api.LeaseReply](t, bob, api.ClientSubject("bob", api.VerbLeaseGet), api.LeaseID{ID: "gone"})
		if g.Lease.Status != api.StatusEnded {
			return fmt.Errorf("abandoned keepalive request still %s", g.Lease.Status)
		}
		if !strings.Contains(g.Lease.Reason, "stopped renewing the request") {
			t.Errorf("dropped request's reason %q, want its holder stopped renewing it", g.Lease.Reason)
		}
		return nil
	})
	// The one renewed by its waiting holder is older than a window by now, and still queued.
	if k := callOK[api.LeaseReply](t, bob, api.ClientSubject("bob", api.VerbLeaseGet), api.LeaseID{ID: "kept"}); k.Lease.Status != api.StatusQueued {
		t.Fatalf("renewed keepalive request: %s (%s), want still queued", k.Lease.Status, k.Lease.Reason)
	}
	// The exporter frees up: the living request gets it, the dropped one never does.
	callOK[api.Empty](t, alice, api.ClientSubject("alice", api.VerbLeaseRelease), api.LeaseID{ID: ra.Lease.ID})
	select {
	case r := <-waited:
		if r == nil || r.Lease.Status != api.StatusActive || r.Lease.ID != "kept" {
			t.Fatalf("granted: %+v", r)
		}
	case <-ctx.Done():
		t.Fatal("the renewed keepalive request was not granted")
	}
	testkit.CheckFor(t, 10*time.Second, func() error {
		a, err := call[api.AuditReply](t, l.admin, api.ClientSubject(AdminName, api.VerbAudit), api.AuditQuery{Lease: "gone"})
		if err != nil {
			return err // the audit stream busy: ask again
		}
		var seen []string
		for _, e := range a.Events {
			seen = append(seen, e.Event+": "+e.Reason)
			if e.Event == api.AuditGrant {
				t.Fatalf("the dropped request was granted: %+v", e)
			}
		}
		if all := strings.Join(seen, "; "); !strings.Contains(all, "cancel: its holder stopped renewing the request") {
			return fmt.Errorf("audit of the dropped request: %s", all)
		}
		return nil
	})
}
