package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"sort"
	"strings"
	"text/tabwriter"
	"time"
)

// Result is one measured figure with its baselines.
type Result struct {
	Name     string             `json:"name"`
	Unit     string             `json:"unit"`
	Value    float64            `json:"value"`
	Baseline map[string]float64 `json:"baselines,omitempty"`
	// Ratio is Value divided by the baseline named in RatioTo (for latencies lower is better,
	// for throughputs higher is better); Target says what the project aims for.
	RatioTo string  `json:"ratio_to,omitempty"`
	Ratio   float64 `json:"ratio,omitempty"`
	Target  string  `json:"target,omitempty"`
	Note    string  `json:"note,omitempty"`
}

type suite struct {
	quick   bool
	results []Result
	// For profiling and A/B runs of the byte stream: only the paths named here (comma-separated;
	// "" = all), and this many MiB instead of the default (0 = default).
	streamPaths string
	streamMiB   int64
	// transport selects the bus transports of call, stream and flash: "local", "tcp" or ""
	// (both).
	transport string
	// flashMiB overrides the flash image size (0 = default).
	flashMiB int64
}

func (s *suite) add(r Result) {
	if r.RatioTo != "" && r.Baseline[r.RatioTo] != 0 {
		r.Ratio = r.Value / r.Baseline[r.RatioTo]
	}
	s.results = append(s.results, r)
	fmt.Fprintf(os.Stderr, "  %s: %.3g %s\n", r.Name, r.Value, r.Unit)
	if r.Note != "" {
		fmt.Fprintf(os.Stderr, "    (%s)\n", r.Note)
	}
}

func main() {
	if runHelper() {
		return
	}
	quick := flag.Bool("quick", false, "a fast pass with small sizes (CI)")
	only := flag.String("run", "", "run only the benchmarks whose name contains this")
	out := flag.String("o", "results.json", "where to write the results")
	cpuprofile := flag.String("cpuprofile", "", "write a CPU profile of the run to this file")
	streamPaths := flag.String("stream-paths", "", "byte stream: measure only these paths (comma-separated: jsn,jsn-bus,raw-nats-pubsub,grpc-tunnel,direct-tcp)")
	streamMiB := flag.Int64("stream-mib", 0, "byte stream: MiB to move per path (default 1024, 64 with -quick)")
	flashMiB := flag.Int64("flash-mib", 0, "flash: image size in MiB (default 1024, 128 with -quick)")
	transport := flag.String("transport", "", "call, stream and flash: measure only this transport (local or tcp; default both)")
	flag.Parse()
	if *transport != "" && *transport != "local" && *transport != "tcp" {
		fmt.Fprintf(os.Stderr, "-transport %q: want local or tcp\n", *transport)
		os.Exit(2)
	}
	if *cpuprofile != "" {
		f, err := os.Create(*cpuprofile)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		defer pprof.StopCPUProfile()
	}
	s := &suite{quick: *quick, streamPaths: *streamPaths, streamMiB: *streamMiB, transport: *transport, flashMiB: *flashMiB}
	ctx := context.Background()
	benches := []struct {
		name string
		fn   func(context.Context, *suite) error
	}{
		{"call", benchCall},
		{"stream", benchStream},
		{"console", benchConsole},
		{"flash", benchFlash},
		{"cli-start", benchStart},
		{"rss", benchRSS},
		{"lease", benchLease},
		{"presence", benchPresence},
		{"process", benchProcess},
		{"kernel", benchKernel},
		{"dashboard", benchDashboard},
	}
	fmt.Fprintf(os.Stderr, "jsn benchmarks (%s, %d CPUs, quick=%v)\n", runtime.Version(), runtime.NumCPU(), *quick)
	failed := false
	for _, b := range benches {
		if *only != "" && !strings.Contains(b.name, *only) {
			continue
		}
		fmt.Fprintf(os.Stderr, "%s…\n", b.name)
		if err := b.fn(ctx, s); err != nil {
			var skip skipped
			if errors.As(err, &skip) {
				fmt.Fprintf(os.Stderr, "bench %s: skipped: %v\n", b.name, err)
				continue
			}
			fmt.Fprintf(os.Stderr, "bench %s: %v\n", b.name, err)
			failed = true
		}
	}
	print(s.results)
	data, _ := json.MarshalIndent(map[string]any{
		"date": time.Now().UTC().Format(time.RFC3339), "go": runtime.Version(), "cpus": runtime.NumCPU(),
		"quick": *quick, "results": s.results,
	}, "", "  ")
	if err := os.WriteFile(*out, append(data, '\n'), 0o644); err != nil {
		fmt.Fprintln(os.Stderr, err)
		failed = true
	} else {
		abs, _ := filepath.Abs(*out)
		fmt.Fprintf(os.Stderr, "wrote %s\n", abs)
	}
	if failed {
		pprof.StopCPUProfile()
		os.Exit(1)
	}
}

// skipped is returned by a benchmark this machine cannot run (no pseudo-terminals, no cat); the
// suite reports it and goes on.
type skipped struct{ reason string }

func (s skipped) Error() string { return s.reason }

func print(rs []Result) {
	w := tabwriter.NewWriter(os.Stdout, 2, 4, 2, ' ', 0)
	fmt.Fprintln(w, "what\tjsn\tbaselines (same run)\tratio\ttarget")
	for _, r := range rs {
		var bl []string
		keys := make([]string, 0, len(r.Baseline))
		for k := range r.Baseline {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			bl = append(bl, fmt.Sprintf("%s %s", k, fmtVal(r.Baseline[k], r.Unit)))
		}
		ratio := ""
		if r.Ratio != 0 {
			ratio = fmt.Sprintf("%.2f× %s", r.Ratio, r.RatioTo)
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\n", r.Name, fmtVal(r.Value, r.Unit), strings.Join(bl, "; "), ratio, r.Target)
	}
	w.Flush()
}

func fmtVal(v float64, unit string) string {
	switch unit {
	case "µs":
		return fmt.Sprintf("%.0f µs", v)
	case "ms":
		return fmt.Sprintf("%.1f ms", v)
	case "MB/s":
		return fmt.Sprintf("%.0f MB/s", v)
	}
	return fmt.Sprintf("%.3g %s", v, unit)
}

// percentile returns the p-th percentile (0..100) of ds in microseconds.
func percentile(ds []time.Duration, p float64) float64 {
	if len(ds) == 0 {
		return 0
	}
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	i := int(float64(len(s)-1) * p / 100)
	return float64(s[i]) / float64(time.Microsecond)
}
