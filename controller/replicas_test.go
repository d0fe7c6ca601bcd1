package controller

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"jsn.dev/jsn/bus"
	"jsn.dev/jsn/bus/wire"
	"jsn.dev/jsn/controller/api"
	"jsn.dev/jsn/internal/testkit"
)

// startExternal starts a NATS server configured only from nats-config output for dir.
func startExternal(t *testing.T, dir string) *bus.Server {
	t.Helper()
	snippet, err := NatsConfig(dir)
	if err != nil {
		t.Fatal(err)
	}
	conf := filepath.Join(t.TempDir(), "nats.conf")
	full := "listen: 127.0.0.1:-1\nserver_name: ext\njetstream: {store_dir: \"" + filepath.Join(t.TempDir(), "js") + "\"}\n" + snippet
	if err := os.WriteFile(conf, []byte(full), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	srv, err := bus.StartServerFromConfig(ctx, conf, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Shutdown)
	return srv
}

func startReplica(t *testing.T, o Options) *Controller {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := Start(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	t.Cleanup(func() { once.Do(c.Close) })
	return c
}

// TestReplicas runs two controller replicas on one NATS server: both answer the API (queue
// group), exactly one schedules, grants stay atomic across replicas, and when the leader dies
// the other one takes over and grants a queued request.
func TestReplicas(t *testing.T) {
	dir := t.TempDir()
	adminCfg, err := Init(dir, InitOptions{})
	if err != nil {
		t.Fatal(err)
	}
	srv := startExternal(t, dir)
	o := testOptions(dir)
	o.NatsURL = srv.TCPURL()
	o.OfflineAfter = time.Hour // simulated exporters do not heartbeat
	r := []*Controller{startReplica(t, o), startReplica(t, o)}
	l := &lab{t: t, dir: dir, ctl: r[0]}
	l.admin = l.connectConfig(adminCfg)
	const n = 20
	ctx := context.Background()
	if err := r[0].RegisterSimulated(ctx, "sim", n, map[string]string{"board": "rpi4"}); err != nil {
		t.Fatal(err)
	}
	alice, _ := l.client("alice", api.CreateClientRequest{})
	l.client("bob", api.CreateClientRequest{})
	testkit.CheckFor(t, 30*time.Second, func() error {
		for _, c := range r {
			m := c.Metrics()
			if m.Registered != n || c.identity(api.KindClient, "bob") == nil {
				return errors.New("not yet: both replicas see every exporter and client")
			}
		}
		return nil
	})

	// Exactly one leader.
	leaders := func() (lead []*Controller) {
		for _, c := range r {
			if c.Metrics().Leader == 1 {
				lead = append(lead, c)
			}
		}
		return lead
	}
	testkit.CheckFor(t, 30*time.Second, func() error {
		if len(leaders()) != 1 {
			return errors.New("not yet: one leader")
		}
		return nil
	})

	// Both replicas answer the API.
	before := []int64{r[0].served.Load(), r[1].served.Load()}
	for range 40 {
		callOK[api.ListExportersReply](t, alice, api.ClientSubject("alice", api.VerbExportersList), api.ListExportersRequest{})
	}
	for i, c := range r {
		if got := c.served.Load() - before[i]; got == 0 {
			t.Errorf("replica %d: served no request of 40, want some (queue group)", i)
		}
	}

	// Grant is atomic across replicas: alice asks replica 0 and bob replica 1 for the same
	// exporter at the same time; exactly one gets it, the other is queued.
	holder, waiting := make([]string, n), make([]string, n)
	for i := range n {
		e := "sim-" + strconv.Itoa(i)
		var wg sync.WaitGroup
		var mu sync.Mutex
		for j, who := range []string{"alice", "bob"} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				body, _ := wire.Marshal(api.LeaseRequest{Exporter: e, Duration: time.Minute})
				out, err := r[j].leaseRequest(ctx, who, body)
				if err != nil {
					t.Error(err)
					return
				}
				rep := out.(api.LeaseReply)
				mu.Lock()
				defer mu.Unlock()
				if rep.Lease.Status == api.StatusActive {
					if holder[i] != "" {
						t.Errorf("%s: two active leases", e)
					}
					holder[i] = rep.Lease.ID
				} else {
					waiting[i] = rep.Lease.ID
				}
			}()
		}
		wg.Wait()
		if holder[i] == "" || waiting[i] == "" {
			t.Fatalf("%s: got active %q and queued %q, want one of each", e, holder[i], waiting[i])
		}
	}

	// Kill the leader; the other replica takes over and grants the queued request when its
	// exporter frees.
	lead := leaders()[0]
	other := r[0]
	if lead == r[0] {
		other = r[1]
	}
	l.ctl = other
	killed := time.Now()
	lead.Close() // leaves the leader key behind, as a crash would
	testkit.CheckFor(t, 30*time.Second, func() error {
		if other.Metrics().Leader != 1 {
			return errors.New("not yet: the other replica leads")
		}
		return nil
	})
	took := time.Since(killed)
	t.Logf("takeover after %v (leader TTL %v)", took, other.leaderTTL())
	if limit := other.leaderTTL() + 2*o.Reconcile + time.Second; took > limit {
		t.Errorf("takeover took %v, want within the leader TTL (%v) plus a reconcile", took, other.leaderTTL())
	}
	callOK[api.Empty](t, l.admin, api.ClientSubject(AdminName, api.VerbLeaseRelease), api.LeaseID{ID: holder[0]})
	testkit.CheckFor(t, 30*time.Second, func() error {
		rep := callOK[api.LeaseReply](t, l.admin, api.ClientSubject(AdminName, api.VerbLeaseGet), api.LeaseID{ID: waiting[0]})
		if !(rep.Lease.Status == api.StatusActive && rep.Credential != nil) {
			return fmt.Errorf("not yet: queued request granted by the new leader (lease %s: %s)", rep.Lease.Status, rep.Lease.Reason)
		}
		return nil
	})
}
