package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// benchStart times whole-process starts side by side, interleaved in one run so that the load of
// the machine hits them all alike: a hello-world Go binary (the baseline), natsprobe (a binary
// that only links nats.go: the floor of any NATS client in Go), `jsn version`, and `jsn call
// power.on` inside a local session. The target is ≤ 2× the hello-world start.
func benchStart(ctx context.Context, s *suite) error {
	dir, err := os.MkdirTemp("", "jsn-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	jsn, err := buildJSN(dir)
	if err != nil {
		return err
	}
	hello := filepath.Join(dir, "hello")
	src := filepath.Join(dir, "hello.go")
	if err := os.WriteFile(src, []byte("package main\n\nimport \"fmt\"\n\nfunc main() { fmt.Println(\"hello, world\") }\n"), 0o644); err != nil {
		return err
	}
	if out, err := exec.Command("go", "build", "-o", hello, src).CombinedOutput(); err != nil {
		return fmt.Errorf("build hello: %v\n%s", err, out)
	}
	probe := filepath.Join(dir, "natsprobe")
	if out, err := exec.Command("go", "build", "-o", probe, "./internal/natsprobe").CombinedOutput(); err != nil {
		return fmt.Errorf("build natsprobe: %v\n%s", err, out)
	}
	sink, err := startSink()
	if err != nil {
		return err
	}
	defer sink.Close()
	b, err := startLab(ctx, local, sink)
	if err != nil {
		return err
	}
	defer b.close()
	env := append(os.Environ(), "JSN_HOST="+b.url, "JSN_EXPORTER="+b.exporter, "JSN_LEASE="+b.lease)
	runs := [][]string{{hello}, {probe}, {jsn, "version"}, {jsn, "call", "power.on"}}
	times := make([][]time.Duration, len(runs))
	n := 60
	if s.quick {
		n = 15
	}
	for i := 0; i < n+2; i++ { // two warm-up rounds: the page cache holds every binary
		for j, argv := range runs {
			cmd := exec.Command(argv[0], argv[1:]...)
			cmd.Env = env
			t0 := time.Now()
			if out, err := cmd.CombinedOutput(); err != nil {
				return fmt.Errorf("%s: %v: %s", strings.Join(argv, " "), err, out)
			}
			if i >= 2 {
				times[j] = append(times[j], time.Since(t0))
			}
		}
	}
	ms := func(j int) float64 { return percentile(times[j], 50) / 1000 }
	base := map[string]float64{"go-hello-start": ms(0), "nats.go-only-start": ms(1)}
	s.add(Result{Name: "whole-process `jsn version` p50", Unit: "ms", Value: ms(2), Baseline: base,
		RatioTo: "go-hello-start", Target: "≤ 2× go-hello-start",
		Note: "a binary that links only nats.go starts at " + fmt.Sprintf("%.2f×", ms(1)/ms(0)) + " already"})
	s.add(Result{Name: "whole-process `jsn call power.on` p50", Unit: "ms", Value: ms(3), Baseline: base,
		RatioTo: "go-hello-start", Target: "≤ 30 ms", Note: "start, connect, describe, call, in a local session"})
	return nil
}
