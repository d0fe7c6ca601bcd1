package controller

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"jsn.dev/jsn/bus"
	"jsn.dev/jsn/bus/wire"
	"jsn.dev/jsn/client"
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
	o.MaxQueued = 20           // bob queues one request per exporter
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

// TestReplicasLeaseCycles runs request/release cycles through two replicas (the queue group
// sends each call to either): a lease is seen by the replica the next call reaches (sync
// token), every release is recorded as such (the scheduling replica does not overwrite it),
// and the lease pushes, though sent by both replicas and possibly out of order, carry
// revisions whose newest always names the exporter's true lease.
func TestReplicasLeaseCycles(t *testing.T) {
	dir := t.TempDir()
	adminCfg, err := Init(dir, InitOptions{})
	if err != nil {
		t.Fatal(err)
	}
	srv := startExternal(t, dir)
	o := testOptions(dir)
	o.NatsURL = srv.TCPURL()
	o.OfflineAfter = time.Hour
	r := []*Controller{startReplica(t, o), startReplica(t, o)}
	l := &lab{t: t, dir: dir, ctl: r[0]}
	l.admin = l.connectConfig(adminCfg)
	ctx := context.Background()
	if err := r[0].RegisterSimulated(ctx, "cyc", 2, map[string]string{"cyc": "yes"}); err != nil {
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
			if n := c.Metrics().Registered; n != 2 {
				return fmt.Errorf("replica %d sees %d exporters registered, want 2", i, n)
			}
			if c.identity(api.KindClient, "alice") == nil {
				return fmt.Errorf("replica %d does not know alice yet", i)
			}
		}
		return nil
	})

	// What the exporters are told.
	type push struct {
		rev   uint64
		lease string
	}
	var mu sync.Mutex
	pushes := map[string][]push{}
	mon := l.connect("jsn-controller", r[0].auth.CtlCreds)
	sub, err := mon.Subscribe("jsn.x.*.lease", "", func(m *bus.Msg) {
		rev, err := strconv.ParseUint(m.Header.Get(api.HeaderLeaseRev), 10, 64)
		if err != nil {
			t.Errorf("push on %s: header %s: %v", m.Subject, api.HeaderLeaseRev, err)
		}
		p := push{rev: rev}
		if len(m.Data) > 0 {
			var l api.Lease
			if err := wire.Unmarshal(m.Data, &l); err != nil {
				t.Errorf("push on %s: %v", m.Subject, err)
			}
			p.lease = l.ID
		}
		mu.Lock()
		pushes[strings.Split(m.Subject, ".")[2]] = append(pushes[strings.Split(m.Subject, ".")[2]], p)
		mu.Unlock()
	})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = sub.Unsubscribe() }()
	if err := mon.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	// newest returns the lease of exporter e's newest push.
	newest := func(e string) (string, bool) {
		mu.Lock()
		defer mu.Unlock()
		var best push
		for _, p := range pushes[e] {
			if p.rev >= best.rev {
				best = p
			}
		}
		return best.lease, best.rev > 0
	}

	for i := range 40 {
		rep, err := alice.RequestLease(ctx, api.LeaseRequest{Selector: "cyc=yes", Duration: time.Minute})
		if err != nil {
			t.Fatal(err)
		}
		if rep.Lease.Status != api.StatusActive {
			t.Fatalf("cycle %d: lease %s is %s, want active (nothing else holds the exporters)", i, rep.Lease.ID, rep.Lease.Status)
		}
		id, e := rep.Lease.ID, rep.Lease.Exporter
		if g, err := alice.GetLease(ctx, id); err != nil || g.Lease.Status != api.StatusActive {
			t.Fatalf("cycle %d: lease.get %s right after the grant: got %+v, %v, want active", i, id, g, err)
		}
		testkit.CheckFor(t, 30*time.Second, func() error {
			if got, _ := newest(e); got != id {
				return fmt.Errorf("cycle %d: the newest push names lease %q, want %s", i, got, id)
			}
			return nil
		})
		if err := alice.Release(ctx, id); err != nil {
			t.Fatal(err)
		}
		g, err := alice.GetLease(ctx, id)
		if err != nil || g.Lease.Status != api.StatusEnded || g.Lease.Reason != "released by alice" {
			t.Fatalf("cycle %d: lease.get %s right after the release: got %+v, %v, want ended, released by alice", i, id, g, err)
		}
		testkit.CheckFor(t, 30*time.Second, func() error {
			if got, ok := newest(e); !ok || got != "" {
				return fmt.Errorf("cycle %d: the newest push names lease %q (pushed: %v), want none", i, got, ok)
			}
			return nil
		})
	}
}

func TestLeafLinked(t *testing.T) {
	links := map[string]int{}
	for _, tc := range []struct {
		data string
		want bool
	}{
		{`{"server":{"id":"S1"},"acc":"A","leafnodes":0,"conns":3}`, false},
		{`{"server":{"id":"S1"},"leafnodes":1}`, true},
		{`{"server":{"id":"S1"},"leafnodes":1}`, false}, // the periodic repeat
		{`{"server":{"id":"S1"},"leafnodes":0}`, false}, // unlinked
		{`{"server":{"id":"S1"},"leafnodes":1}`, true},  // linked again
		{`{"server":{"id":"S2"},"leafnodes":2}`, true},
		{`{"server":{"id":""},"leafnodes":5}`, false},
		{`{"server":{"id":"S3"},"leafnodes":-1}`, false},
		{`not json`, false},
	} {
		if got := leafLinked(links, []byte(tc.data)); got != tc.want {
			t.Errorf("%s: got %v, want %v", tc.data, got, tc.want)
		}
	}
}

func FuzzLeafLinked(f *testing.F) {
	f.Add([]byte(`{"server":{"id":"S1"},"acc":"A","leafnodes":1,"conns":3}`))
	f.Add([]byte(`{"server":{"id":"S2"},"leafnodes":-7}`))
	f.Add([]byte(`{}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		links := map[string]int{"S1": 1}
		leafLinked(links, data)
		if len(links) > 1025 {
			t.Fatalf("%d servers remembered", len(links))
		}
	})
}

// TestLeaseRequestID: a lease request with an id is idempotent for its client (the same lease
// comes back, active or queued), and another client cannot use that id (raw NATS connections, as
// an attacker has).
func TestLeaseRequestID(t *testing.T) {
	l := startLab(t)
	l.exporter("e1", map[string]string{"board": "rpi4"})
	alice, _ := l.client("alice", api.CreateClientRequest{})
	bob, _ := l.client("bob", api.CreateClientRequest{})
	req := api.LeaseRequest{ID: "a1b2c3d4e5f60718", Exporter: "e1", Duration: time.Minute}
	first := callOK[api.LeaseReply](t, alice, api.ClientSubject("alice", api.VerbLeaseRequest), req)
	if first.Lease.ID != req.ID || first.Lease.Status != api.StatusActive || first.Credential == nil {
		t.Fatalf("first request: got %+v, want lease %s active with a credential", first.Lease, req.ID)
	}
	again := callOK[api.LeaseReply](t, alice, api.ClientSubject("alice", api.VerbLeaseRequest), req)
	if again.Lease.ID != req.ID || again.Lease.Begin != first.Lease.Begin || again.Credential == nil || again.Credential.JWT != first.Credential.JWT {
		t.Fatalf("repeated request: got %+v, want the same lease and credential", again.Lease)
	}
	if _, err := call[api.LeaseReply](t, bob, api.ClientSubject("bob", api.VerbLeaseRequest), req); !errors.Is(err, wire.ErrInvalidArgument) {
		t.Fatalf("bob with alice's lease id: got %v, want INVALID_ARGUMENT", err)
	}
	// A queued request repeated stays one request.
	q := api.LeaseRequest{ID: "q1b2c3d4e5f60718", Exporter: "e1", Duration: time.Minute}
	for range 2 {
		r := callOK[api.LeaseReply](t, alice, api.ClientSubject("alice", api.VerbLeaseRequest), q)
		if r.Lease.ID != q.ID || r.Lease.Status != api.StatusQueued {
			t.Fatalf("queued request: got %+v, want %s queued", r.Lease, q.ID)
		}
	}
	ls := callOK[api.ListLeasesReply](t, alice, api.ClientSubject("alice", api.VerbLeaseList), api.ListLeasesRequest{})
	if len(ls.Leases) != 2 {
		t.Errorf("alice's leases: got %d, want 2 (one active, one queued)", len(ls.Leases))
	}
	for _, bad := range []string{"a.b", "*", strings.Repeat("x", 65)} {
		r := req
		r.ID = bad
		if _, err := call[api.LeaseReply](t, alice, api.ClientSubject("alice", api.VerbLeaseRequest), r); !errors.Is(err, wire.ErrInvalidArgument) {
			t.Errorf("id %q: got %v, want INVALID_ARGUMENT", bad, err)
		}
	}
}
