package exporter

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestJumpstarterTopLevelKeys: motd, exitOnLeaseEnd, failureDetection and the hook keys of
// Jumpstarter's ExporterConfig load.
func TestJumpstarterTopLevelKeys(t *testing.T) {
	cfg, err := ParseConfig("js.yaml", []byte(`apiVersion: jumpstarter.dev/v1alpha1
kind: ExporterConfig
metadata: {name: js, namespace: lab}
endpoint: grpc.example:443
token: abc
motd: "welcome to the bench"
exitOnLeaseEnd: true
failureDetection: {maxRapidFailures: 3, rapidFailureWindow: 30}
hooks:
  beforeLease: {exec: /bin/bash, script: "j power on", onFailure: exit, timeout: 60}
  afterLease: {script: "j power off", onFailure: endLease}
export: {}
`))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Motd != "welcome to the bench" || !cfg.ExitOnLeaseEnd {
		t.Errorf("motd %q exitOnLeaseEnd %v", cfg.Motd, cfg.ExitOnLeaseEnd)
	}
	b := cfg.LeaseHooks.BeforeLease
	if b.Exec != "/bin/bash" || b.OnFailure != OnFailureExit {
		t.Errorf("beforeLease %+v", b)
	}
	if got := b.argv(""); !slices.Equal(got, []string{"/bin/bash", "-c", "j power on"}) {
		t.Errorf("argv %q", got)
	}
	if got := cfg.LeaseHooks.AfterLease.argv(""); !slices.Equal(got, []string{"/bin/sh", "-c", "j power off"}) {
		t.Errorf("argv %q", got)
	}
	// failureDetection is Jumpstarter's only.
	_, err = ParseConfig("x.yaml", []byte("apiVersion: jsn.dev/v1alpha1\nkind: ExporterConfig\nfailureDetection: {}\n"))
	if err == nil || !strings.Contains(err.Error(), `field "failureDetection" is only accepted in jumpstarter.dev/v1alpha1 files`) {
		t.Errorf("got %v", err)
	}
}

func TestHookScriptFile(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "setup.py"), []byte("print(1)\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	h := &Hook{Script: "setup.py"}
	if got := h.argv(dir); !slices.Equal(got, []string{"python3", filepath.Join(dir, "setup.py")}) {
		t.Errorf("argv %q", got)
	}
	h.Exec = "/usr/bin/python3"
	if got := h.argv(dir); !slices.Equal(got, []string{"/usr/bin/python3", filepath.Join(dir, "setup.py")}) {
		t.Errorf("argv %q", got)
	}
}

// TestEveryErrorAtOnce: a bad top-level key does not hide the export tree's errors.
func TestEveryErrorAtOnce(t *testing.T) {
	_, err := ParseConfig("x.yaml", []byte(`apiVersion: jumpstarter.dev/v1alpha1
kind: ExporterConfig
bogus: 1
export:
  a: {type: jumpstarter_driver_nope.driver.Nope}
  b: {ref: a}
`))
	got := err.Error()
	for _, want := range []string{`x.yaml:3:1: unknown field "bogus"`, `x.yaml:5:13: export.a.type: jumpstarter class "jumpstarter_driver_nope.driver.Nope" has no jsn equivalent`} {
		if !strings.Contains(got, want) {
			t.Errorf("errors lack %q:\n%s", want, got)
		}
	}
	if strings.Contains(got, "export.b") {
		t.Errorf("cascade error for a ref to a node that failed:\n%s", got)
	}
}
