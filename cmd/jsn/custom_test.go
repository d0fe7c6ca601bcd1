package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestCustomBinary builds examples/custom-jsn — a tiny main.go that imports jsn as a library
// plus a driver package of its own — as a module outside this repository (a temp directory,
// replace directive to this tree), and runs a session with its driver.
func TestCustomBinary(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a whole jsn binary; skipped with -short")
	}
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	src := filepath.Join(root, "examples", "custom-jsn")
	dir := t.TempDir()
	if err := os.CopyFS(dir, os.DirFS(src)); err != nil {
		t.Fatal(err)
	}
	mod, err := os.ReadFile(filepath.Join(dir, "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	fixed := strings.Replace(string(mod), "jsn.dev/jsn => ../..", "jsn.dev/jsn => "+root, 1)
	if fixed == string(mod) {
		t.Fatal("examples/custom-jsn/go.mod has no `replace jsn.dev/jsn => ../..`")
	}
	if err := os.WriteFile(filepath.Join(dir, "go.mod"), []byte(fixed), 0o644); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "mylab")
	build := exec.Command("go", "build", "-o", bin, ".")
	build.Dir = dir
	build.Env = append(os.Environ(), "GOFLAGS=-mod=mod")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	run := exec.Command(bin, "shell", "-c", "lab.yaml", "--", "sh", "-c", bin+" call counter.inc && "+bin+" call counter.add 5 && "+bin+" describe && "+bin+" power on")
	run.Dir = dir
	out, err := run.CombinedOutput()
	if err != nil {
		t.Fatalf("mylab shell: %v\n%s", err, out)
	}
	for _, want := range []string{"2\n7\n", "counter  mylab.Counter", "add(n int) -> int", "power  power.Mock"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}
