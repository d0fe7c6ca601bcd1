package controller

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

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
