package exporter

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"jsn.dev/jsn/client"
	"jsn.dev/jsn/controller/api"
	"jsn.dev/jsn/internal/testkit"
)

// TestRemoteCallsAudited: a distributed-mode exporter appends each call it serves to the audit
// log, with who, the lease, path.method, the result code and a duration, whether it succeeded,
// failed in the driver or was refused.
func TestRemoteCallsAudited(t *testing.T) {
	l := startLab(t)
	cfg := l.exporterConfig("bench5", map[string]string{"board": "x"}, `export:
  probe: {type: extest.Probe}
`)
	runRemote(t, cfg)
	bob := l.client("bob")
	l.online(bob, "bench5", true)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	rep, ex := leaseDial(ctx, t, bob, api.LeaseRequest{Exporter: "bench5", Duration: time.Minute})
	if err := ex.WaitReady(ctx, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := ex.Driver("probe").Call(ctx, "echo", "ab", 2); err != nil {
		t.Fatal(err)
	}
	if _, err := ex.Driver("probe").Call(ctx, "nosuch"); !errors.Is(err, client.ErrNotFound) {
		t.Fatalf("unknown method: %v", err)
	}
	if err := bob.Release(ctx, rep.Lease.ID); err != nil {
		t.Fatal(err)
	}
	testkit.CheckFor(t, 30*time.Second, func() error {
		r, err := bob.Audit(ctx, api.AuditQuery{Kind: api.AuditKindCall, Lease: rep.Lease.ID})
		if err != nil {
			return err
		}
		var got []string
		for _, e := range r.Events {
			if e.Client != "bob" || e.Exporter != "bench5" || e.Lease != rep.Lease.ID || e.Duration <= 0 {
				return fmt.Errorf("event %+v: want client bob, exporter bench5, lease %s, a duration", e, rep.Lease.ID)
			}
			got = append(got, e.Call+" "+e.Code)
		}
		if fmt.Sprint(got) != "[probe.echo OK probe.nosuch NOT_FOUND]" {
			return fmt.Errorf("call events %q, want probe.echo OK, probe.nosuch NOT_FOUND", got)
		}
		return nil
	})
}
