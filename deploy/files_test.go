package deploy

import (
	"bytes"
	"errors"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"jsn.dev/jsn/exporter"
)

// yamlFiles lists every YAML file under deploy/.
func yamlFiles(t *testing.T) []string {
	t.Helper()
	var files []string
	err := filepath.WalkDir(".", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if ext := filepath.Ext(path); !d.IsDir() && (ext == ".yaml" || ext == ".yml") {
			files = append(files, path)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatal("no YAML files under deploy/")
	}
	return files
}

// decodeAll decodes every document of a YAML file into generic maps.
func decodeAll(t *testing.T, file string) []map[string]any {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	var docs []map[string]any
	for {
		var doc map[string]any
		err := dec.Decode(&doc)
		if errors.Is(err, io.EOF) {
			return docs
		}
		if err != nil {
			t.Fatalf("%s: document %d: %v", file, len(docs)+1, err)
		}
		docs = append(docs, doc)
	}
}

// TestYAML decodes every YAML file in deploy/: each document is a Kubernetes object (apiVersion,
// kind and metadata.name) or a Kustomization whose resources exist.
func TestYAML(t *testing.T) {
	for _, file := range yamlFiles(t) {
		t.Run(file, func(t *testing.T) {
			docs := decodeAll(t, file)
			if len(docs) == 0 {
				t.Fatalf("%s: no YAML document", file)
			}
			for i, doc := range docs {
				api, _ := doc["apiVersion"].(string)
				kind, _ := doc["kind"].(string)
				if api == "" || kind == "" {
					t.Errorf("%s: document %d: got apiVersion %q and kind %q, want both", file, i+1, api, kind)
					continue
				}
				if kind == "Kustomization" {
					res, _ := doc["resources"].([]any)
					for _, r := range res {
						p := filepath.Join(filepath.Dir(file), r.(string))
						if _, err := os.Stat(p); err != nil {
							t.Errorf("%s: resource %s: %v", file, r, err)
						}
					}
					continue
				}
				md, _ := doc["metadata"].(map[string]any)
				if name, _ := md["name"].(string); name == "" {
					t.Errorf("%s: document %d (%s): no metadata.name", file, i+1, kind)
				}
			}
		})
	}
}

// TestExporterSecret checks the exporter config in the example Secret is one jsn loads.
func TestExporterSecret(t *testing.T) {
	for _, doc := range decodeAll(t, "kubernetes/exporter.yaml") {
		if doc["kind"] != "Secret" {
			continue
		}
		data, _ := doc["stringData"].(map[string]any)
		cfg, _ := data["exporter.yaml"].(string)
		if cfg == "" {
			t.Fatal("exporter Secret: no stringData exporter.yaml")
		}
		c, err := exporter.ParseConfig("exporter.yaml", []byte(cfg))
		if err != nil {
			t.Fatalf("exporter Secret: %v", err)
		}
		if _, err := c.Build(nil); err != nil {
			t.Fatalf("exporter Secret: build drivers: %v", err)
		}
		return
	}
	t.Fatal("kubernetes/exporter.yaml: no Secret")
}

// TestKustomize renders deploy/kubernetes with kubectl when it is installed (no cluster needed).
func TestKustomize(t *testing.T) {
	kubectl, err := exec.LookPath("kubectl")
	if err != nil {
		t.Skip("kubectl not installed")
	}
	out, err := exec.Command(kubectl, "kustomize", "kubernetes").CombinedOutput()
	if err != nil {
		t.Fatalf("kubectl kustomize: %v\n%s", err, out)
	}
	for _, want := range []string{"kind: StatefulSet", "kind: Deployment", "kind: Service", "namespace: jsn"} {
		if !bytes.Contains(out, []byte(want)) {
			t.Errorf("kubectl kustomize output: no %q", want)
		}
	}
}

// TestSystemdUnits runs systemd-analyze verify on the units (ExecStart pointed at an existing
// binary, the template as an instance) and fails on any complaint; it also holds the
// controller's exposure score (systemd-analyze security) to the level the file was written for.
func TestSystemdUnits(t *testing.T) {
	sa, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Skip("systemd-analyze not installed (apt-get install systemd)")
	}
	dir := t.TempDir()
	self, err := os.Executable() // any existing executable: verify checks ExecStart exists
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"jsn-controller.service", "jsn-exporter@.service"} {
		writeFile(t, filepath.Join(dir, f), rewrite(t, filepath.Join("systemd", f), "/usr/local/bin/jsn ", self+" "))
	}
	for _, tc := range []struct {
		unit      string
		threshold string // highest acceptable exposure, 0 to 100 (shown as 0.0 to 10.0)
	}{
		{"jsn-controller.service", "20"},
		{"jsn-exporter@rack1.service", "50"},
	} {
		t.Run(tc.unit, func(t *testing.T) {
			cmd := exec.Command(sa, "verify", "./"+tc.unit)
			cmd.Dir = dir
			out, err := cmd.CombinedOutput()
			if err != nil || len(bytes.TrimSpace(out)) > 0 {
				t.Fatalf("systemd-analyze verify %s: %v\n%s", tc.unit, err, out)
			}
			cmd = exec.Command(sa, "security", "--offline=yes", "--threshold="+tc.threshold, "./"+tc.unit)
			cmd.Dir = dir
			out, err = cmd.CombinedOutput()
			if err != nil {
				t.Fatalf("systemd-analyze security %s: %v\n%s", tc.unit, err, out)
			}
			lines := strings.Split(strings.TrimSpace(string(out)), "\n")
			t.Log(lines[len(lines)-1])
		})
	}
}
