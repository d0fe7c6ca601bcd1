package shell

import (
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"jsn.dev/jsn/drivers/driver"
)

// buildExport runs the framework's strict config decoding on an export mapping.
func buildExport(t *testing.T, src string) (*driver.Tree, error) {
	t.Helper()
	var doc yaml.Node
	if err := yaml.Unmarshal([]byte(src), &doc); err != nil {
		t.Fatal(err)
	}
	return driver.Build("exporter.yaml", doc.Content[0], driver.BuildOptions{Dir: t.TempDir()})
}

func TestBuildConfig(t *testing.T) {
	tree, err := buildExport(t, `
sh:
  type: jumpstarter_driver_shell.driver.Shell
  config:
    methods:
      ls: "ls"
      flash:
        command: "flash $1"
        description: flash an image
        timeout: 600
    shell: [bash, -c]
    timeout: 30
    env: {A: b}
    cwd: /tmp
    log_level: INFO
`)
	if err != nil {
		t.Fatalf("Build: %v", err)
	}
	n := tree.Find("sh")
	s := n.Driver.(*Shell)
	if s.Timeout.String() != "30s" || strings.Join(s.Shell, " ") != "bash -c" || s.Env["A"] != "b" || s.Cwd != "/tmp" {
		t.Fatalf("decoded config: got %+v", s)
	}
	if n.Method("flash") == nil || n.Method("ls") == nil || s.cmds[0].timeout.String() != "10m0s" {
		t.Fatalf("methods: got %v, flash timeout %s", n.MethodNames(), s.cmds[0].timeout)
	}

	_, err = buildExport(t, `
sh:
  type: shell
  config:
    methods: {Bad-Name: "x"}
`)
	if err == nil || !strings.Contains(err.Error(), "exporter.yaml:") || !strings.Contains(err.Error(), "invalid method name") {
		t.Fatalf("bad method name: got %v, want a positioned config error", err)
	}
}
