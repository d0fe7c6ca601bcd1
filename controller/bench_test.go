package controller

import (
	"context"
	"sort"
	"testing"
	"time"

	"jsn.dev/jsn/controller/api"
)

// BenchmarkLeaseGrant measures grant+release round trips through the real API with 1,000
// registered (simulated) exporters.
func BenchmarkLeaseGrant(b *testing.B) {
	dir := b.TempDir()
	adminCfg, err := Init(dir, InitOptions{})
	if err != nil {
		b.Fatal(err)
	}
	o := testOptions(dir)
	o.OfflineAfter = time.Hour
	ctx := context.Background()
	c, err := Start(ctx, o)
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	if err := c.RegisterSimulated(ctx, "sim", 1000, map[string]string{"board": "rpi4"}); err != nil {
		b.Fatal(err)
	}
	acfg := mustParse(b, adminCfg)
	acfg.Endpoint = c.URL()
	adm, err := DialAdmin(ctx, acfg)
	if err != nil {
		b.Fatal(err)
	}
	defer adm.Close()
	cfg, err := adm.CreateClient(ctx, "bench", nil, 0, false)
	if err != nil {
		b.Fatal(err)
	}
	cl, err := DialAdmin(ctx, mustParse(b, cfg)) // the same request helper works for the client API
	if err != nil {
		b.Fatal(err)
	}
	defer cl.Close()
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	start := time.Now()
	for range b.N {
		t0 := time.Now()
		var r api.LeaseReply
		if err := cl.clientCall(ctx, api.VerbLeaseRequest, api.LeaseRequest{Selector: "board=rpi4", Duration: time.Minute}, &r); err != nil {
			b.Fatal(err)
		}
		lat = append(lat, time.Since(t0))
		if err := cl.clientCall(ctx, api.VerbLeaseRelease, api.LeaseID{ID: r.Lease.ID}, nil); err != nil {
			b.Fatal(err)
		}
	}
	el := time.Since(start)
	b.StopTimer()
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
	b.ReportMetric(float64(b.N)/el.Seconds(), "grants/s")
}

func mustParse(b *testing.B, cfg []byte) *ClientConfig {
	c, err := ParseClientConfig(cfg)
	if err != nil {
		b.Fatal(err)
	}
	return c
}
