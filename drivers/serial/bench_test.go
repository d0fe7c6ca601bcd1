package serial

import (
	"io"
	"slices"
	"testing"
	"time"
)

// BenchmarkKeystrokeRoundTrip measures one keystroke through the whole path and back: client →
// bus → exporter → pty → echo device → pty → exporter → bus → client. It reports the p50 and
// p99 latency of a round trip.
func BenchmarkKeystrokeRoundTrip(b *testing.B) {
	dev := newDevice(b, "echo")
	lb := startLab(b, labConfig(dev.Path, ""))
	s, err := lb.serial("console").Connect(ctx)
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	key, echo := []byte{'k'}, make([]byte, 1)
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		start := time.Now()
		if _, err := s.Write(key); err != nil {
			b.Fatal(err)
		}
		if _, err := io.ReadFull(s, echo); err != nil {
			b.Fatal(err)
		}
		lat = append(lat, time.Since(start))
	}
	b.StopTimer()
	slices.Sort(lat)
	pct := func(p float64) float64 { return float64(lat[int(p*float64(len(lat)-1))].Microseconds()) }
	b.ReportMetric(pct(0.50), "p50-µs")
	b.ReportMetric(pct(0.99), "p99-µs")
}
