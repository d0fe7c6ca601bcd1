package controller

import (
	"context"
	"errors"
	"os"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"jsn.dev/jsn/bus/wire"
	"jsn.dev/jsn/client"
	"jsn.dev/jsn/controller/api"
	"jsn.dev/jsn/drivers/driver"
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
	adm, err := client.DialController(ctx, acfg)
	if err != nil {
		b.Fatal(err)
	}
	defer adm.Close()
	cfg, err := adm.CreateClient(ctx, "bench", nil, 0, false)
	if err != nil {
		b.Fatal(err)
	}
	cl, err := client.DialController(ctx, mustParse(b, cfg))
	if err != nil {
		b.Fatal(err)
	}
	defer cl.Close()
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	start := time.Now()
	for range b.N {
		t0 := time.Now()
		r, err := cl.RequestLease(ctx, api.LeaseRequest{Selector: "board=rpi4", Duration: time.Minute})
		if err != nil {
			b.Fatal(err)
		}
		lat = append(lat, time.Since(t0))
		if err := cl.Release(ctx, r.Lease.ID); err != nil {
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

func mustParse(b *testing.B, cfg []byte) *client.Config {
	c, err := client.ParseConfig("", cfg)
	if err != nil {
		b.Fatal(err)
	}
	return c
}

// BenchmarkMemory10k registers 10,000 (simulated) exporters, each with a describe tree of a
// typical size, and reports the process RSS: the controller with its embedded NATS server and
// JetStream store (run alone: -run XXX -bench Memory10k -benchtime 1x).
func BenchmarkMemory10k(b *testing.B) {
	const n = 10000
	dir := b.TempDir()
	if _, err := Init(dir, InitOptions{}); err != nil {
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
	before := rssMB(b)
	desc := typicalDescribe()
	now := time.Now().UTC()
	labels := map[string]string{"board": "rpi4", "site": "lab1", "rack": "r12"}
	b.ResetTimer()
	for range b.N {
		for i := range n {
			name := "sim-" + strconv.Itoa(i)
			id := api.Identity{Name: name, Kind: api.KindExporter, PublicKey: "UABCDEFGHIJKLMNOPQRSTUVWXYZ234567ABCDEFGHIJKLMNOPQRSTUV", Labels: labels, Created: now, Scheme: api.IdentityScheme}
			if err := c.storeIdentity(ctx, &id); err != nil && !errors.Is(err, wire.ErrFailedPrecondition) { // exists: a second round
				b.Fatal(err)
			}
			d := *desc
			d.Exporter = name
			if err := c.putExporter(ctx, &exporterRecord{Name: name, Labels: labels, Describe: &d, Registered: now, LastSeen: now}); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.StopTimer()
	if m := c.Metrics(); m.Registered != n {
		b.Fatalf("registered: got %d, want %d", m.Registered, n)
	}
	// One heartbeat round over all of them, as the steady state does every 3s.
	if err := c.TouchSimulated(ctx, "sim", n); err != nil {
		b.Fatal(err)
	}
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	after := rssMB(b)
	b.ReportMetric(after, "rss-MB")
	b.ReportMetric(before, "rss-before-MB")
	b.ReportMetric(float64(ms.HeapInuse)/(1<<20), "heap-MB")
}

func typicalDescribe() *wire.Description {
	m := func(name string, kind driver.Kind) *wire.MethodDesc {
		return &wire.MethodDesc{Name: name, Doc: "does " + name + " on the device", Kind: kind}
	}
	return &wire.Description{Labels: map[string]string{"board": "rpi4"}, Drivers: []*wire.NodeDesc{
		{Name: "power", Path: "power", Type: "power.Tasmota", Interface: "jsn.power.v1", Doc: "mains switch",
			Methods: []*wire.MethodDesc{m("on", driver.KindCall), m("off", driver.KindCall), m("cycle", driver.KindCall), m("status", driver.KindCall), m("read", driver.KindServerStream)}},
		{Name: "serial", Path: "serial", Type: "serial.Port", Interface: "jsn.serial.v1", Doc: "debug console",
			Methods: []*wire.MethodDesc{m("connect", driver.KindByteStream), m("write", driver.KindCall), m("expect", driver.KindCall)}},
		{Name: "storage", Path: "storage", Type: "storage.SDWire", Interface: "jsn.storage.v1", Doc: "SD card mux",
			Methods: []*wire.MethodDesc{m("host", driver.KindCall), m("dut", driver.KindCall), m("flash", driver.KindByteStream)}},
		{Name: "net", Path: "net", Type: "network.TCP", Interface: "jsn.network.v1", Doc: "ssh",
			Methods: []*wire.MethodDesc{m("connect", driver.KindByteStream)}},
	}}
}

func rssMB(b *testing.B) float64 {
	s, err := os.ReadFile("/proc/self/status")
	if err != nil {
		b.Skipf("no /proc: %v", err)
	}
	for _, ln := range strings.Split(string(s), "\n") {
		if f := strings.Fields(ln); len(f) >= 2 && f[0] == "VmRSS:" {
			kb, _ := strconv.Atoi(f[1])
			return float64(kb) / 1024
		}
	}
	b.Skip("no VmRSS")
	return 0
}
