package controller

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"jsn.dev/jsn/bus"
	"jsn.dev/jsn/bus/wire"
	"jsn.dev/jsn/controller/api"
	"jsn.dev/jsn/internal/testkit"
)

// heldBy returns the lease record of exporter e in jsn-leases (nil if free), read from the
// bucket, not from a replica's cache.
func heldBy(t *testing.T, c *Controller, e string) *leaseRecord {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	kv, err := c.leases.Get(ctx, e)
	if errors.Is(err, bus.ErrKeyNotFound) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	var r leaseRecord
	if err := wire.Unmarshal(kv.Value, &r); err != nil {
		t.Fatal(err)
	}
	if r.Finishing {
		return nil
	}
	return &r
}

// groupInvariant checks the bucket: no exporter stays held by a part of a group that is not
// active with it. A part is held alone for a moment while its group is granted (parts first, then
// the commit) and released (the group first, then its parts), and for groupGrace when a grant
// never committed; margin is how long such a moment may last.
func groupInvariant(c *Controller, margin time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	entries, err := c.leases.Entries(ctx)
	if err != nil {
		return err
	}
	now := time.Now()
	for _, kv := range entries {
		e := kv.Key
		var r leaseRecord
		if err := wire.Unmarshal(kv.Value, &r); err != nil {
			return err
		}
		if r.Finishing || r.Lease.Group == "" {
			continue
		}
		gkv, err := c.queue.Get(ctx, r.Lease.Group)
		if err != nil {
			return fmt.Errorf("exporter %s held by part %s of group %s, which has no record: %v", e, r.Lease.ID, r.Lease.Group, err)
		}
		var g leaseRecord
		if err := wire.Unmarshal(gkv.Value, &g); err != nil {
			return err
		}
		var since time.Duration // how long the part has been held alone
		switch {
		case g.Lease.Status == api.StatusActive && slices.Contains(g.Siblings, groupPart{Exporter: e, ID: r.Lease.ID}):
			continue
		case g.Lease.Status == api.StatusEnded:
			since = now.Sub(g.Lease.End)
		default: // a grant that did not commit (yet)
			since = now.Sub(r.Lease.Begin) - groupGrace
		}
		if since > margin {
			return fmt.Errorf("exporter %s held alone by part %s of group %s (%s, parts %v) for %v", e, r.Lease.ID, r.Lease.Group,
				g.Lease.Status, g.Siblings, since)
		}
	}
	return nil
}

// schedulerRound waits until c's scheduler has run one more round.
func schedulerRound(t *testing.T, c *Controller) {
	t.Helper()
	n := c.groupRounds.Load()
	testkit.CheckFor(t, 10*time.Second, func() error {
		if c.groupRounds.Load() < n+2 { // the round running now may have started before
			return errors.New("the scheduler has not run a round yet")
		}
		return nil
	})
}

func partExporters(rep api.LeaseReply) []string {
	var out []string
	for _, p := range rep.Parts {
		out = append(out, p.Lease.Exporter)
	}
	slices.Sort(out)
	return out
}

// TestGroupLease leases two exporters as one group: queued while one is busy with the other NOT
// held; granted in one step once both are free; each part's credential reaches only its exporter;
// another client can neither see, extend nor release the group; extend moves every part; a part
// ended by an admin ends its sibling with a reason naming it; release ends every part; the audit
// log carries the group id.
func TestGroupLease(t *testing.T) {
	l := startLab(t)
	e1 := l.exporter("e1", map[string]string{"board": "rpi4"})
	l.exporter("h1", map[string]string{"role": "host"})
	alice, _ := l.client("alice", api.CreateClientRequest{})
	bob, bobCfg := l.client("bob", api.CreateClientRequest{})
	subj := func(c, v string) string { return api.ClientSubject(c, v) }
	busy := callOK[api.LeaseReply](t, bob, subj("bob", api.VerbLeaseRequest), api.LeaseRequest{Exporter: "h1", Duration: 10 * time.Minute})

	req := api.LeaseRequest{Duration: 10 * time.Minute, Parts: []api.LeasePart{{Selector: "board=rpi4"}, {Selector: "role=host"}}}
	q := callOK[api.LeaseReply](t, alice, subj("alice", api.VerbLeaseRequest), req)
	G := q.Lease.ID
	if q.Lease.Status != api.StatusQueued || q.Lease.Group != G || len(q.Parts) != 0 {
		t.Fatalf("group with h1 busy: %+v (%d parts), want queued", q.Lease, len(q.Parts))
	}
	if !strings.Contains(q.Lease.Reason, "waiting for all 2 parts") || !strings.Contains(q.Lease.Reason, "role=host") || !strings.Contains(q.Lease.Reason, "h1 by bob") {
		t.Errorf("queued group reason %q: want it to wait for all parts, naming role=host leased by bob", q.Lease.Reason)
	}
	if q.Lease.FreeAt.IsZero() {
		t.Errorf("queued group: no free_at, want h1's end")
	}
	// While queued, e1 is not held, whatever a few scheduler rounds do.
	for range 5 {
		if r := heldBy(t, l.ctl, "e1"); r != nil {
			t.Fatalf("e1 held by %s (group %s) while the group waits for h1", r.Lease.ID, r.Lease.Group)
		}
		schedulerRound(t, l.ctl)
	}
	list := callOK[api.ListLeasesReply](t, alice, subj("alice", api.VerbLeaseList), api.ListLeasesRequest{})
	if len(list.Leases) != 1 || list.Leases[0].Group != G || len(list.Leases[0].Parts) != 2 {
		t.Errorf("alice's leases while queued: %+v, want the one queued group with its 2 parts", list.Leases)
	}
	// Another client cannot see, extend or release it.
	for _, v := range []string{api.VerbLeaseGet, api.VerbLeaseRelease, api.VerbLeaseKeepalive} {
		if _, err := call[api.LeaseReply](t, bob, subj("bob", v), api.LeaseID{ID: G}); !errors.Is(err, wire.ErrNotFound) {
			t.Errorf("bob %s of alice's group: %v, want NOT_FOUND", v, err)
		}
	}

	// h1 freed: both granted in one step.
	callOK[api.Empty](t, bob, subj("bob", api.VerbLeaseRelease), api.LeaseID{ID: busy.Lease.ID})
	var g api.LeaseReply
	testkit.CheckFor(t, 20*time.Second, func() error {
		g = callOK[api.LeaseReply](t, alice, subj("alice", api.VerbLeaseGet), api.LeaseID{ID: G})
		if g.Lease.Status != api.StatusActive {
			return fmt.Errorf("group %s: %s (%s)", G, g.Lease.Status, g.Lease.Reason)
		}
		return nil
	})
	if got := partExporters(g); !slices.Equal(got, []string{"e1", "h1"}) {
		t.Fatalf("group parts on %v, want e1 and h1", got)
	}
	parts := map[string]api.LeaseReply{}
	for _, p := range g.Parts {
		parts[p.Lease.Exporter] = p
		if p.Lease.Group != G || p.Credential == nil || p.Lease.ID == G {
			t.Errorf("part %+v: want its own id, group %s, a credential", p.Lease, G)
		}
		if r := heldBy(t, l.ctl, p.Lease.Exporter); r == nil || r.Lease.ID != p.Lease.ID {
			t.Errorf("exporter %s not held by part %s in the bucket", p.Lease.Exporter, p.Lease.ID)
		}
	}
	if err := groupInvariant(l.ctl, 0); err != nil {
		t.Error(err)
	}

	// Each part's credential reaches its own exporter only.
	calls := make(chan string, 4)
	if _, err := e1.Subscribe("jsn.x.e1.call.>", "", func(m *bus.Msg) { calls <- m.Subject }); err != nil {
		t.Fatal(err)
	}
	if err := e1.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	pa := l.attack(t, parts["e1"].Credential.Creds(), "_INBOX_alice")
	if pa.nc == nil {
		t.Fatal("e1 part credential refused")
	}
	_ = pa.nc.Publish("jsn.x.e1.call.power.on", nil)
	select {
	case <-calls:
	case <-time.After(10 * time.Second):
		t.Fatal("a call with e1's part credential did not reach e1")
	}
	_ = pa.nc.Publish("jsn.x.h1.call.power.on", nil)
	pa.denied(t, "e1's part credential on h1", "jsn.x.h1.call.power.on")
	// Bob's raw connection cannot use alice's API subjects for her group.
	rb := l.attack(t, credsOf(t, bobCfg), "_INBOX_bob")
	for _, v := range []string{api.VerbLeaseRelease, api.VerbLeaseExtend, api.VerbLeaseGet} {
		_ = rb.nc.Publish(api.ClientSubject("alice", v), nil)
		rb.denied(t, "bob publishing on alice's "+v, api.ClientSubject("alice", v))
	}
	if _, err := call[api.LeaseReply](t, bob, subj("bob", api.VerbLeaseExtend), api.ExtendRequest{ID: G, Duration: 20 * time.Minute}); !errors.Is(err, wire.ErrNotFound) {
		t.Errorf("bob extends alice's group: %v, want NOT_FOUND", err)
	}

	// Extend moves every part, or none.
	ext := callOK[api.LeaseReply](t, alice, subj("alice", api.VerbLeaseExtend), api.ExtendRequest{ID: G, Duration: 20 * time.Minute})
	if len(ext.Parts) != 2 {
		t.Fatalf("extended group: %d parts", len(ext.Parts))
	}
	for _, p := range ext.Parts {
		if time.Until(p.Lease.End) < 15*time.Minute {
			t.Errorf("part on %s ends at %v after extending the group by 20m", p.Lease.Exporter, p.Lease.End)
		}
	}
	if _, err := call[api.LeaseReply](t, alice, subj("alice", api.VerbLeaseExtend), api.ExtendRequest{ID: G, Duration: time.Minute}); !errors.Is(err, wire.ErrFailedPrecondition) {
		t.Errorf("shortening the group without --set: %v, want FAILED_PRECONDITION", err)
	}

	// An admin ends the part on h1: the part on e1 ends too, naming it.
	h1Part := parts["h1"].Lease.ID
	callOK[api.Empty](t, l.admin, subj(AdminName, api.VerbLeaseRelease), api.LeaseID{ID: h1Part})
	testkit.CheckFor(t, 10*time.Second, func() error {
		if r := heldBy(t, l.ctl, "e1"); r != nil {
			return fmt.Errorf("e1 still held by %s after its sibling on h1 ended", r.Lease.ID)
		}
		return nil
	})
	e1End := callOK[api.LeaseReply](t, alice, subj("alice", api.VerbLeaseGet), api.LeaseID{ID: parts["e1"].Lease.ID})
	want := "group " + G + ": part " + h1Part + " on h1 ended: released by " + AdminName
	if e1End.Lease.Status != api.StatusEnded || e1End.Lease.Reason != want {
		t.Errorf("e1's part after h1's ended: %s %q, want ended %q", e1End.Lease.Status, e1End.Lease.Reason, want)
	}
	ge := callOK[api.LeaseReply](t, alice, subj("alice", api.VerbLeaseGet), api.LeaseID{ID: G})
	if ge.Lease.Status != api.StatusEnded || !strings.Contains(ge.Lease.Reason, "part "+h1Part+" on h1 ended") {
		t.Errorf("group after a part ended: %s %q", ge.Lease.Status, ge.Lease.Reason)
	}
	if _, err := call[api.LeaseReply](t, alice, subj("alice", api.VerbLeaseExtend), api.ExtendRequest{ID: G, Duration: 30 * time.Minute}); !errors.Is(err, wire.ErrFailedPrecondition) {
		t.Errorf("extending an ended group: %v, want FAILED_PRECONDITION", err)
	}
	// The audit log has the group id with each part's events.
	testkit.CheckFor(t, 10*time.Second, func() error {
		a := callOK[api.AuditReply](t, alice, subj("alice", api.VerbAudit), api.AuditQuery{Lease: h1Part})
		var evs []string
		for _, e := range a.Events {
			if e.Group != G {
				return fmt.Errorf("audit event %s of part %s: group %q, want %s", e.Event, h1Part, e.Group, G)
			}
			evs = append(evs, e.Event)
		}
		if !slices.Contains(evs, api.AuditGrant) || !slices.Contains(evs, api.AuditRelease) {
			return fmt.Errorf("audit of part %s: %v, want grant and release", h1Part, evs)
		}
		return nil
	})

	// A new group, released: both parts end at once.
	req.ID = "g2"
	g2 := callOK[api.LeaseReply](t, alice, subj("alice", api.VerbLeaseRequest), req)
	if g2.Lease.Status != api.StatusActive || len(g2.Parts) != 2 {
		t.Fatalf("group with both free: %s (%s), %d parts; want granted at once", g2.Lease.Status, g2.Lease.Reason, len(g2.Parts))
	}
	again := callOK[api.LeaseReply](t, alice, subj("alice", api.VerbLeaseRequest), req)
	if again.Lease.ID != "g2" || len(again.Parts) != 2 || again.Parts[0].Lease.ID != g2.Parts[0].Lease.ID {
		t.Errorf("repeated group request: %+v, want the same group", again.Lease)
	}
	callOK[api.Empty](t, alice, subj("alice", api.VerbLeaseRelease), api.LeaseID{ID: "g2"})
	for _, e := range []string{"e1", "h1"} {
		if r := heldBy(t, l.ctl, e); r != nil {
			t.Errorf("%s still held by %s after the group's release", e, r.Lease.ID)
		}
	}
	for _, p := range g2.Parts {
		r := callOK[api.LeaseReply](t, alice, subj("alice", api.VerbLeaseGet), api.LeaseID{ID: p.Lease.ID})
		if r.Lease.Status != api.StatusEnded || r.Lease.Reason != "released by alice" {
			t.Errorf("part %s after the group's release: %s %q", p.Lease.ID, r.Lease.Status, r.Lease.Reason)
		}
	}
}

// TestGroupRequestErrors: a count larger than the matching exporters queues with a clear
// reason and holds nothing; malformed parts are refused naming the part; a policy refusal names
// the policy.
func TestGroupRequestErrors(t *testing.T) {
	l := startLab(t)
	l.exporter("e1", map[string]string{"board": "rpi4"})
	l.exporter("e2", map[string]string{"board": "rpi4"})
	alice, _ := l.client("alice", api.CreateClientRequest{Group: "students"})
	subj := api.ClientSubject("alice", api.VerbLeaseRequest)
	q := callOK[api.LeaseReply](t, alice, subj, api.LeaseRequest{Duration: time.Minute, Parts: []api.LeasePart{{Selector: "board=rpi4", Count: 3}}})
	if q.Lease.Status != api.StatusQueued || q.Lease.Reason != "needs 3 exporters matching board=rpi4, 2 exist" {
		t.Errorf("3 of 2: %s %q", q.Lease.Status, q.Lease.Reason)
	}
	for range 3 {
		schedulerRound(t, l.ctl)
		for _, e := range []string{"e1", "e2"} {
			if r := heldBy(t, l.ctl, e); r != nil {
				t.Fatalf("%s held by %s for a group that cannot be granted", e, r.Lease.ID)
			}
		}
	}
	g := callOK[api.LeaseReply](t, alice, api.ClientSubject("alice", api.VerbLeaseGet), api.LeaseID{ID: q.Lease.ID})
	if g.Lease.Status != api.StatusQueued || !strings.Contains(g.Lease.Reason, "needs 3") {
		t.Errorf("3 of 2 after scheduling: %s %q", g.Lease.Status, g.Lease.Reason)
	}
	for _, c := range []struct {
		parts []api.LeasePart
		want  string
	}{
		{[]api.LeasePart{{Exporter: "e1"}, {Exporter: "e1"}}, "part 2: exporter e1 is named twice"},
		{[]api.LeasePart{{Selector: "board=rpi4", Exporter: "e1"}}, "part 1: give either a selector or an exporter name"},
		{[]api.LeasePart{{Selector: "board=="}}, "part 1:"},
		{[]api.LeasePart{{Selector: "board=rpi4", Count: 17}}, "more than 16 parts"},
		{[]api.LeasePart{{Selector: "board=rpi4"}, {Selector: "board=x86"}}, "part 2: no registered exporter matches selector board=x86"},
	} {
		_, err := call[api.LeaseReply](t, alice, subj, api.LeaseRequest{Duration: time.Minute, Parts: c.parts})
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("parts %+v: %v, want %q", c.parts, err, c.want)
		}
	}
	if _, err := call[api.LeaseReply](t, alice, subj, api.LeaseRequest{Duration: time.Minute, Selector: "board=rpi4",
		Parts: []api.LeasePart{{Selector: "board=rpi4"}}}); !errors.Is(err, wire.ErrInvalidArgument) {
		t.Errorf("parts and a selector: %v, want INVALID_ARGUMENT", err)
	}
	// Policies apply per part: e2 is outside the students' selector.
	callOK[api.Empty](t, l.admin, api.AdminSubject(AdminName, api.VerbPolicySet), api.Policy{Name: "lab-a", Groups: []string{"students"}, Selector: "board=rpi4"})
	callOK[api.Empty](t, l.admin, api.AdminSubject(AdminName, api.VerbCreateExporter), api.CreateExporterRequest{Name: "x1", Labels: map[string]string{"board": "x86"}})
	testkit.CheckFor(t, 10*time.Second, func() error {
		_, err := call[api.LeaseReply](t, alice, subj, api.LeaseRequest{Duration: time.Minute, Parts: []api.LeasePart{{Exporter: "e1"}, {Exporter: "x1"}}})
		if err == nil || !strings.Contains(err.Error(), "policy lab-a") {
			return fmt.Errorf("a part outside the policy: %v, want a refusal naming policy lab-a", err)
		}
		return nil
	})
}

// TestGroupContention runs three clients that each lease two of three exporters as a group,
// over and over: one group at a time can hold two; none deadlocks, every client gets its turn,
// no two groups share an exporter, and at every step no exporter is held by a part whose group
// is not active with it.
func TestGroupContention(t *testing.T) {
	l := startLab(t)
	for _, e := range []string{"p1", "p2", "p3"} {
		l.exporter(e, map[string]string{"pool": "a"})
	}
	names := []string{"c1", "c2", "c3"}
	conns := map[string]*bus.Conn{}
	for _, n := range names {
		conns[n], _ = l.client(n, api.CreateClientRequest{})
	}
	var mu sync.Mutex
	holder := map[string]string{} // exporter → client holding it now
	stop := make(chan struct{})
	checked := make(chan error, 1)
	go func() {
		var err error
		defer func() { checked <- err }()
		for {
			select {
			case <-stop:
				return
			case <-time.After(50 * time.Millisecond):
			}
			// Releases and grants take a moment; a part held alone for longer is one left behind.
			if err = groupInvariant(l.ctl, 5*time.Second); err != nil {
				return
			}
		}
	}()
	const rounds = 4
	var wg sync.WaitGroup
	errs := make(chan error, len(names)*rounds)
	for _, n := range names {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := conns[n]
			for i := range rounds {
				rep, err := call[api.LeaseReply](t, c, api.ClientSubject(n, api.VerbLeaseRequest), api.LeaseRequest{ID: fmt.Sprintf("%s-%d", n, i), Duration: time.Minute,
					Parts: []api.LeasePart{{Selector: "pool=a", Count: 2}}})
				if err != nil {
					errs <- err
					return
				}
				deadline := time.Now().Add(60 * time.Second)
				for rep.Lease.Status != api.StatusActive {
					if rep.Lease.Status == api.StatusEnded || time.Now().After(deadline) {
						errs <- fmt.Errorf("%s round %d: %s (%s)", n, i, rep.Lease.Status, rep.Lease.Reason)
						return
					}
					time.Sleep(50 * time.Millisecond) // polling the queue, as a client does
					if rep, err = call[api.LeaseReply](t, c, api.ClientSubject(n, api.VerbLeaseGet), api.LeaseID{ID: rep.Lease.ID}); err != nil {
						errs <- err
						return
					}
				}
				ex := partExporters(rep)
				mu.Lock()
				if len(ex) != 2 || ex[0] == ex[1] {
					errs <- fmt.Errorf("%s round %d: parts on %v, want two distinct exporters", n, i, ex)
				}
				for _, e := range ex {
					if h := holder[e]; h != "" {
						errs <- fmt.Errorf("%s round %d: %s granted while %s holds it", n, i, e, h)
					}
					holder[e] = n
				}
				mu.Unlock()
				mu.Lock()
				for _, e := range ex {
					delete(holder, e)
				}
				mu.Unlock()
				if _, err := call[api.Empty](t, c, api.ClientSubject(n, api.VerbLeaseRelease), api.LeaseID{ID: rep.Lease.ID}); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(stop)
	if err := <-checked; err != nil {
		t.Error(err)
	}
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	for _, e := range []string{"p1", "p2", "p3"} {
		if r := heldBy(t, l.ctl, e); r != nil {
			t.Errorf("%s still held by %s (group %s) after every group was released", e, r.Lease.ID, r.Lease.Group)
		}
	}
}

// TestGroupReplicaStops stops a controller replica between the parts of a group grant (it
// created the first part's lease and nothing else), then kills it: the other replica ends the
// part left behind and grants the group whole; no exporter stays held alone.
func TestGroupReplicaStops(t *testing.T) {
	var stopped atomic.Pointer[Controller]
	groupStopAfter = func(c *Controller, part int) bool {
		return part == 0 && stopped.CompareAndSwap(nil, c)
	}
	t.Cleanup(func() { groupStopAfter = nil })
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
	ctx := context.Background()
	if err := r[0].RegisterSimulated(ctx, "sim", 2, map[string]string{"board": "rpi4"}); err != nil {
		t.Fatal(err)
	}
	alice, _ := l.client("alice", api.CreateClientRequest{})
	testkit.CheckFor(t, 30*time.Second, func() error {
		for i, c := range r {
			if c.identity(api.KindClient, "alice") == nil || c.Metrics().Registered != 2 {
				return fmt.Errorf("replica %d does not know alice and the exporters yet", i)
			}
		}
		return nil
	})
	q := callOK[api.LeaseReply](t, alice, api.ClientSubject("alice", api.VerbLeaseRequest),
		api.LeaseRequest{Duration: 10 * time.Minute, Parts: []api.LeasePart{{Selector: "board=rpi4", Count: 2}}})
	dead := stopped.Load()
	if dead == nil {
		t.Fatalf("no replica stopped inside the grant: %+v", q.Lease)
	}
	other := r[0]
	if dead == r[0] {
		other = r[1]
	}
	l.ctl = other
	dead.Close()
	var left string
	for _, e := range []string{"sim-0", "sim-1"} {
		if h := heldBy(t, other, e); h != nil {
			left = h.Lease.ID
		}
	}
	if left == "" {
		t.Fatal("the stopped grant left no part behind: the test stops nothing")
	}
	var g api.LeaseReply
	testkit.CheckFor(t, 60*time.Second, func() error {
		var err error
		if g, err = call[api.LeaseReply](t, alice, api.ClientSubject("alice", api.VerbLeaseGet), api.LeaseID{ID: q.Lease.ID}); err != nil {
			return err // the remaining replica is busy taking over
		}
		if g.Lease.Status != api.StatusActive {
			return fmt.Errorf("group %s after the replica stopped: %s (%s)", q.Lease.ID, g.Lease.Status, g.Lease.Reason)
		}
		return nil
	})
	if got := partExporters(g); !slices.Equal(got, []string{"sim-0", "sim-1"}) {
		t.Errorf("group parts on %v", got)
	}
	lo := callOK[api.LeaseReply](t, alice, api.ClientSubject("alice", api.VerbLeaseGet), api.LeaseID{ID: left})
	if lo.Lease.Status != api.StatusEnded || !strings.Contains(lo.Lease.Reason, "left over from a grant that did not complete") {
		t.Errorf("the part left behind: %s %q", lo.Lease.Status, lo.Lease.Reason)
	}
	if err := groupInvariant(other, 0); err != nil {
		t.Error(err)
	}
}

// TestGroupKeepalive holds a keepalive group: lease.keepalive of the group renews every part;
// when its holder stops renewing, the parts end and so does the group.
func TestGroupKeepalive(t *testing.T) {
	dir := t.TempDir()
	adminCfg, err := Init(dir, InitOptions{})
	if err != nil {
		t.Fatal(err)
	}
	l := &lab{t: t, dir: dir}
	o := testOptions(dir)
	o.KeepaliveWindow = 2 * time.Second
	l.start(o)
	l.admin = l.connectConfig(adminCfg)
	l.exporter("k1", map[string]string{"pool": "k"})
	l.exporter("k2", map[string]string{"pool": "k"})
	alice, _ := l.client("alice", api.CreateClientRequest{})
	bob, _ := l.client("bob", api.CreateClientRequest{})
	subj := func(c, v string) string { return api.ClientSubject(c, v) }
	g := callOK[api.LeaseReply](t, alice, subj("alice", api.VerbLeaseRequest),
		api.LeaseRequest{Keepalive: true, Duration: 10 * time.Minute, Parts: []api.LeasePart{{Selector: "pool=k", Count: 2}}})
	if g.Lease.Status != api.StatusActive || g.Lease.Keepalive != o.KeepaliveWindow || len(g.Parts) != 2 {
		t.Fatalf("keepalive group: %+v, %d parts", g.Lease, len(g.Parts))
	}
	if _, err := call[api.KeepaliveReply](t, bob, subj("bob", api.VerbLeaseKeepalive), api.LeaseID{ID: g.Lease.ID}); !errors.Is(err, wire.ErrNotFound) {
		t.Errorf("bob renewing alice's group: %v, want NOT_FOUND", err)
	}
	first := map[string]time.Time{}
	for _, p := range g.Parts {
		first[p.Lease.ID] = p.Lease.End
	}
	// Renewed past the first window: every part moves.
	testkit.CheckFor(t, 20*time.Second, func() error {
		callOK[api.KeepaliveReply](t, alice, subj("alice", api.VerbLeaseKeepalive), api.LeaseID{ID: g.Lease.ID})
		cur := callOK[api.LeaseReply](t, alice, subj("alice", api.VerbLeaseGet), api.LeaseID{ID: g.Lease.ID})
		if cur.Lease.Status != api.StatusActive || len(cur.Parts) != 2 {
			t.Fatalf("keepalive group while renewed: %s (%s)", cur.Lease.Status, cur.Lease.Reason)
		}
		for _, p := range cur.Parts {
			if p.Lease.End.Sub(first[p.Lease.ID]) < o.KeepaliveWindow {
				return fmt.Errorf("part %s on %s renewed by %v so far", p.Lease.ID, p.Lease.Exporter, p.Lease.End.Sub(first[p.Lease.ID]))
			}
		}
		return nil
	})
	// Not renewed any more: the group ends.
	testkit.CheckFor(t, 15*time.Second, func() error {
		cur := callOK[api.LeaseReply](t, alice, subj("alice", api.VerbLeaseGet), api.LeaseID{ID: g.Lease.ID})
		if cur.Lease.Status != api.StatusEnded {
			return fmt.Errorf("group %s still %s after its holder stopped renewing", g.Lease.ID, cur.Lease.Status)
		}
		if !strings.Contains(cur.Lease.Reason, "stopped renewing") {
			t.Errorf("group ended: %q, want the part's keepalive reason", cur.Lease.Reason)
		}
		return nil
	})
	for _, e := range []string{"k1", "k2"} {
		if r := heldBy(t, l.ctl, e); r != nil {
			t.Errorf("%s still held by %s after the keepalive group ended", e, r.Lease.ID)
		}
	}
}

// FuzzExpandParts: any lease.request body's parts are decoded and checked without a panic; parts
// that pass are at most api.MaxParts, each exactly a selector that parses or a valid exporter
// name, no exporter named twice.
func FuzzExpandParts(f *testing.F) {
	for _, ps := range [][]api.LeasePart{{{Selector: "board=rpi4"}, {Selector: "role=host"}}, {{Selector: "a", Count: 3}, {Exporter: "e1"}},
		{{Exporter: "e1"}, {Exporter: "e1"}}, {{Selector: "a", Count: -1}}, {{Selector: "a", Count: 1 << 40}}, {{}}} {
		b, _ := wire.Marshal(api.LeaseRequest{Parts: ps})
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var req api.LeaseRequest
		if decode(data, &req) != nil {
			return
		}
		out, err := expandParts(req.Parts)
		if err != nil {
			if err.Error() == "" {
				t.Fatal("an empty error")
			}
			return
		}
		if len(out) > api.MaxParts {
			t.Fatalf("%d parts pass", len(out))
		}
		named := map[string]bool{}
		for _, p := range out {
			if (p.Selector == "") == (p.Exporter == "") || p.Exporter != "" && (!wire.ValidName(p.Exporter) || named[p.Exporter]) {
				t.Fatalf("part %+v passes", p)
			}
			if _, err := ParseSelector(p.Selector); err != nil {
				t.Fatalf("part %+v passes with a bad selector: %v", p, err)
			}
			named[p.Exporter] = p.Exporter != ""
		}
	})
}
