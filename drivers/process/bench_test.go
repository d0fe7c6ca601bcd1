package process

import (
	"context"
	"path/filepath"
	"sort"
	"testing"
	"time"

	"jsn.dev/jsn/drivers/drivertest"
)

// BenchmarkCall measures a call to a Python driver through the driver alone (no bus): the
// process's share of a call's latency.
func BenchmarkCall(b *testing.B) {
	script, _ := filepath.Abs("../../bench/process_driver.py")
	p := New(drivertest.Env("py"))
	p.Command = []string{"/usr/bin/python3", "-m", "jsn_driver", script}
	ctx := context.Background()
	if err := p.Open(ctx); err != nil {
		b.Skip(err)
	}
	defer p.Close()
	var ds []time.Duration
	for b.Loop() {
		t0 := time.Now()
		if _, err := p.call(ctx, "on", nil); err != nil {
			b.Fatal(err)
		}
		ds = append(ds, time.Since(t0))
	}
	sort.Slice(ds, func(i, j int) bool { return ds[i] < ds[j] })
	b.ReportMetric(float64(ds[len(ds)/2].Microseconds()), "p50-µs")
}
