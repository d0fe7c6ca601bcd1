package exporter

import (
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"jsn.dev/jsn/controller/api"
)

func TestParseHooks(t *testing.T) {
	cfg, err := ParseConfig("x.yaml", []byte(`apiVersion: jsn.dev/v1alpha1
kind: ExporterConfig
endpoint: nats://127.0.0.1:4222
credentials: |
  -----BEGIN NATS USER JWT-----
hooks:
  beforeLease:
    script: jsn power off
    timeout: 30
    onFailure: endLease
  afterLease:
    script: echo bye
`))
	if err != nil {
		t.Fatal(err)
	}
	b, a := cfg.LeaseHooks.BeforeLease, cfg.LeaseHooks.AfterLease
	if b == nil || b.Script != "jsn power off" || b.Timeout != 30*time.Second || b.OnFailure != OnFailureEndLease {
		t.Errorf("got beforeLease %+v, want script, 30s, endLease", b)
	}
	if a == nil || a.Timeout != DefaultHookTimeout || a.OnFailure != OnFailureWarn {
		t.Errorf("got afterLease %+v, want defaults", a)
	}
	if !strings.HasPrefix(cfg.Credentials, "-----BEGIN NATS USER JWT-----") {
		t.Errorf("got credentials %q", cfg.Credentials)
	}
}

func TestParseHooksErrors(t *testing.T) {
	for _, tc := range []struct{ hooks, want string }{
		{"  beforeLease:\n    script: x\n    onFailure: quit\n", `x.yaml:6:16: hooks.beforeLease.onFailure: onFailure is "quit"; want "warn", "endLease" or "exit"`},
		{"  beforeLease:\n    script: x\n    exec: \"\"\n", `x.yaml:6:11: hooks.beforeLease.exec: want an interpreter such as /bin/bash or python3, got ""`},
		{"  beforeLease:\n    scrpt: x\n", `x.yaml:5:5: hooks.beforeLease: unknown field "scrpt"`},
		{"  afterLease:\n    script: x\n    timeout: soon\n", `x.yaml:6:14: hooks.afterLease.timeout: want a duration`},
		{"  duringLease:\n    script: x\n", `x.yaml:4:3: hooks: unknown field "duringLease"`},
		{"  afterLease:\n    script: \"\"\n", `x.yaml:5:13: hooks.afterLease.script: empty script`},
	} {
		_, err := ParseConfig("x.yaml", []byte("apiVersion: jsn.dev/v1alpha1\nkind: ExporterConfig\nhooks:\n"+tc.hooks))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("hooks %q: got %v, want %q", tc.hooks, err, tc.want)
		}
	}
}

// TestHookTimeoutKillsProcessGroup: a hook past its timeout is killed with its background
// children. (The timeout leaves a loaded machine's shell the time to print its first line.)
func TestHookTimeoutKillsProcessGroup(t *testing.T) {
	var mu sync.Mutex
	var out []api.HookOutput
	r := &hookRun{name: HookBeforeLease, hook: &Hook{Script: "echo start; sleep 60 & sleep 60", Timeout: 3 * time.Second},
		lease: &api.Lease{ID: "l1"}, log: discardLog(), env: hookEnv(nil, ""),
		out: func(h api.HookOutput) { mu.Lock(); out = append(out, h); mu.Unlock() }}
	start := time.Now()
	err := r.run(context.Background())
	if err == nil || !strings.Contains(err.Error(), "timed out") {
		t.Fatalf("got %v, want a timeout", err)
	}
	if d := time.Since(start); d > 30*time.Second {
		t.Errorf("hook ran %v: the background sleep was not killed", d)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(out) != 2 || string(out[0].Data) != "start\n" || !out[1].Done || out[1].ExitCode == nil {
		t.Errorf("got %+v, want the output line then Done", out)
	}
}

func discardLog() *slog.Logger { return slog.New(slog.DiscardHandler) }
