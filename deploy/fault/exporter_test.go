package fault

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"jsn.dev/jsn/client"
	"jsn.dev/jsn/controller/api"
)

// TestFaultExporterGone kills -9 an exporter under a running stream (power.read, on the bus)
// and measures how long the client takes to hear of it: the stream must end UNAVAILABLE
// "exporter … gone" from what the bus knows (the exporter's subscriptions vanish with its
// connection), not from the 35 s silence timeout. Restarted, the exporter resumes the lease.
func TestFaultExporterGone(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a controller and an exporter as processes")
	}
	l := newLab(t)
	l.startEmbedded()
	exps := l.startExporters("board", 1, map[string]string{"fault": "yes"}, "")
	ctl := l.client("c0")
	l.waitOnline(ctl, "fault=yes", 1)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	rep, err := ctl.RequestLease(ctx, api.LeaseRequest{Selector: "fault=yes", Duration: 10 * time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	opts, err := ctl.LeaseOptions(rep)
	if err != nil {
		t.Fatal(err)
	}
	ex, err := client.Dial(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer ex.Close()
	if err := ex.WaitReady(ctx, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := ex.Driver("power").Call(ctx, "on"); err != nil {
		t.Fatal(err)
	}
	items, err := ex.Driver("power").Stream(ctx, "read")
	if err != nil {
		t.Fatal(err)
	}
	defer items.Close()
	var reading map[string]any
	if err := items.Next(&reading); err != nil {
		t.Fatalf("first reading: %v", err)
	}
	ended := make(chan error, 1)
	go func() {
		for {
			if err := items.Next(&reading); err != nil {
				ended <- err
				return
			}
		}
	}()
	killed := time.Now()
	exps[0].kill()
	select {
	case err = <-ended:
	case <-time.After(time.Minute):
		t.Fatal("the stream did not end within a minute of the exporter's death")
	}
	took := time.Since(killed)
	if !errors.Is(err, client.ErrUnavailable) || !strings.Contains(err.Error(), "gone") {
		t.Errorf("stream ended with %v, want UNAVAILABLE exporter … gone", err)
	}
	t.Logf("exporter kill -9 under a stream: the client knew after %v: %v", took.Round(10*time.Millisecond), err)

	// Back (systemd restarts it): the lease goes on.
	exps[0].start()
	eventually(t, "the lease served again", time.Minute, func(ctx context.Context) error {
		var s string
		return ex.Driver("power").CallInto(ctx, "status", &s)
	})
}
