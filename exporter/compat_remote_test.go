package exporter

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"jsn.dev/jsn/controller/api"
	"jsn.dev/jsn/internal/testkit"
)

// remoteRun is RunRemote running in the background.
type remoteRun struct {
	done chan struct{} // closed when RunRemote returned
	err  error         // what it returned; set before done is closed
}

// startRemote runs RunRemote in the background until it returns or the test ends.
func startRemote(t *testing.T, cfg *Config) *remoteRun {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	r := &remoteRun{done: make(chan struct{})}
	log := slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	go func() {
		defer close(r.done)
		r.err = RunRemote(ctx, cfg, log)
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case <-r.done:
		case <-time.After(30 * time.Second):
			t.Error("RunRemote did not return after cancel")
		}
	})
	return r
}

// wait waits for RunRemote to stop by itself and returns its result.
func (r *remoteRun) wait(t *testing.T) error {
	t.Helper()
	select {
	case <-r.done:
		return r.err
	case <-time.After(60 * time.Second):
		t.Fatal("RunRemote did not stop by itself")
		return nil
	}
}

// TestRemoteOnFailureExit: a beforeLease hook failing with onFailure: exit ends the lease and
// stops the exporter with an error; the hook had Jumpstarter's j on its PATH.
func TestRemoteOnFailureExit(t *testing.T) {
	l := startLab(t)
	dir := t.TempDir()
	cfg := l.exporterConfig("bench-exit", map[string]string{"board": "exit"}, fmt.Sprintf(`export:
  probe:
    type: extest.Probe
hooks:
  beforeLease:
    exec: /bin/sh
    script: readlink "$(command -v j)" > %[1]s/j; while [ ! -f %[1]s/go ]; do sleep 0.05; done; exit 3
    onFailure: exit
`, dir))
	run := startRemote(t, cfg)
	alice := l.client("alice")
	l.online(alice, "bench-exit", true)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	rep, _ := leaseDial(ctx, t, alice, api.LeaseRequest{Exporter: "bench-exit", Duration: time.Minute})
	if err := os.WriteFile(filepath.Join(dir, "go"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	err := run.wait(t)
	if err == nil || !strings.Contains(err.Error(), "beforeLease hook failed (onFailure: exit)") {
		t.Fatalf("RunRemote returned %v, want the hook's failure", err)
	}
	testkit.CheckFor(t, 30*time.Second, func() error {
		r, err := alice.GetLease(ctx, rep.Lease.ID)
		if err != nil || r.Lease.Status != api.StatusEnded {
			return fmt.Errorf("lease not ended yet: %v", err)
		}
		return nil
	})
	l.online(alice, "bench-exit", false)
	target, _ := os.ReadFile(filepath.Join(dir, "j"))
	exe, _ := os.Executable()
	if strings.TrimSpace(string(target)) != exe {
		t.Errorf("the hook's j links to %q, want %s (this binary)", target, exe)
	}
}

// TestRemoteExitOnLeaseEnd: with exitOnLeaseEnd the exporter serves one lease and stops cleanly
// once it has ended (after its afterLease hook).
func TestRemoteExitOnLeaseEnd(t *testing.T) {
	l := startLab(t)
	dir := t.TempDir()
	cfg := l.exporterConfig("bench-once", map[string]string{"board": "once"}, fmt.Sprintf(`exitOnLeaseEnd: true
export:
  probe:
    type: extest.Probe
hooks:
  afterLease:
    script: echo done > %s/after
`, dir))
	if !cfg.ExitOnLeaseEnd {
		t.Fatal("exitOnLeaseEnd not loaded")
	}
	run := startRemote(t, cfg)
	alice := l.client("alice")
	l.online(alice, "bench-once", true)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	rep, ex := leaseDial(ctx, t, alice, api.LeaseRequest{Exporter: "bench-once", Duration: time.Minute})
	if err := ex.WaitReady(ctx, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := ex.Driver("probe").Call(ctx, "resets"); err != nil {
		t.Fatal(err)
	}
	select {
	case <-run.done:
		t.Fatalf("RunRemote returned during the lease: %v", run.err)
	default:
	}
	if err := alice.Release(ctx, rep.Lease.ID); err != nil {
		t.Fatal(err)
	}
	if err := run.wait(t); err != nil {
		t.Fatalf("RunRemote: %v, want a clean stop", err)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "after")); string(b) != "done\n" {
		t.Errorf("afterLease did not run before the exit: %q", b)
	}
}
