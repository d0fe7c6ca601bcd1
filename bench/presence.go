package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"

	"jsn.dev/jsn/client"
)

// benchPresence times how long the controller takes to show a real exporter process as offline
// after it is killed with SIGKILL (no goodbye, no more heartbeats), with the controller's
// production settings. Target: ≤ 15 s.
func benchPresence(ctx context.Context, s *suite) error {
	dir, err := os.MkdirTemp("", "jsn-bench-presence-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	jsn, err := buildJSN(dir)
	if err != nil {
		return err
	}
	c, adminCfg, err := startController(ctx, filepath.Join(dir, "data"), 0, 0)
	if err != nil {
		return err
	}
	defer c.Close()
	acfg, adm, err := dialAdmin(ctx, c, adminCfg)
	if err != nil {
		return err
	}
	defer adm.Close()
	ctl, err := client.DialController(ctx, acfg)
	if err != nil {
		return err
	}
	defer ctl.Close()
	expCfg, err := adm.CreateExporter(ctx, "kill9", map[string]string{"board": "kill9"})
	if err != nil {
		return err
	}
	cfgFile := filepath.Join(dir, "kill9.yaml")
	if err := os.WriteFile(cfgFile, expCfg, 0o600); err != nil {
		return err
	}
	online := func(want bool, within time.Duration) (time.Duration, error) {
		t0 := time.Now()
		for time.Since(t0) < within {
			es, err := ctl.ListExporters(ctx, "board=kill9")
			if err == nil && len(es) == 1 && es[0].Online == want {
				return time.Since(t0), nil
			}
			time.Sleep(100 * time.Millisecond)
		}
		return 0, fmt.Errorf("exporter online=%v not seen within %s", !want, within)
	}
	runs := 3
	if s.quick {
		runs = 1
	}
	var worst, total time.Duration
	for i := 0; i < runs; i++ {
		cmd := exec.Command(jsn, "exporter", "run", "-c", cfgFile)
		cmd.Env = append(os.Environ(), "JSN_ENDPOINT="+c.URL())
		if err := cmd.Start(); err != nil {
			return err
		}
		if _, err := online(true, 30*time.Second); err != nil {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
			return err
		}
		_ = cmd.Process.Signal(syscall.SIGKILL)
		_ = cmd.Wait()
		d, err := online(false, 60*time.Second)
		if err != nil {
			return err
		}
		total += d
		worst = max(worst, d)
	}
	s.add(Result{Name: fmt.Sprintf("exporter kill -9 → offline in `jsn get exporters` (worst of %d)", runs), Unit: "s",
		Value: worst.Seconds(), Baseline: map[string]float64{"mean": total.Seconds() / float64(runs)}, Target: "≤ 15 s"})
	return nil
}
