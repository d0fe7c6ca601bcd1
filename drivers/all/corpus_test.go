package all_test

import (
	"context"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"jsn.dev/jsn/drivers/driver"
	"jsn.dev/jsn/exporter/exportertest"

	_ "jsn.dev/jsn/drivers/all"
)

// TestJumpstarterCorpus loads every exporter config of testdata/jumpstarter (Jumpstarter's
// format, each written with the keys its Jumpstarter README documents) into a real exporter
// on a real NATS bus, and checks that describe shows every node with the jsn type its class
// maps to. Every Jumpstarter class jsn registers has a config here, so a class added without
// one fails the test.
func TestJumpstarterCorpus(t *testing.T) {
	files, err := filepath.Glob("testdata/jumpstarter/*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	covered := map[string]bool{}
	for _, file := range files {
		data, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		classes := exportClasses(t, data)
		for _, c := range classes {
			covered[c.class] = true
		}
		t.Run(strings.TrimSuffix(filepath.Base(file), ".yaml"), func(t *testing.T) {
			lab := exportertest.Start(t, string(data))
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			desc, err := lab.Exporter.Describe(ctx)
			if err != nil {
				t.Fatal(err)
			}
			// A flasher given only serial and power makes its own tftp and http servers.
			if filepath.Base(file) == "flashers-auto.yaml" {
				for path, typ := range map[string]string{"storage.tftp": "fileserver.TFTP", "storage.http": "fileserver.HTTP"} {
					if n := desc.Find(path); n == nil || n.Type != typ || n.Unavailable != "" {
						t.Errorf("%s: got %+v, want an available %s made by the flasher", path, n, typ)
					}
				}
			}
			for _, c := range classes {
				n := desc.Find(c.path)
				if n == nil {
					t.Errorf("%s: no node %s in describe", c.class, c.path)
					continue
				}
				info, _ := driver.Lookup(c.class)
				if info.Ref {
					if n.Type != "ref" || n.Ref == "" {
						t.Errorf("%s: node %s is %s, want a ref", c.class, c.path, n.Type)
					}
					continue
				}
				if n.Type != info.Type {
					t.Errorf("%s: node %s is %s, want %s", c.class, c.path, n.Type, info.Type)
				}
				if info.Interface != "" && len(n.Methods) == 0 {
					t.Errorf("%s: node %s has no methods", c.class, c.path)
				}
				if n.Unavailable != "" {
					t.Logf("%s: %s unavailable here: %s", c.class, c.path, n.Unavailable)
				}
			}
		})
	}
	// Every Jumpstarter class jsn loads is in the corpus (two spellings of one class count once).
	var missing []string
	types := map[string]bool{}
	for _, c := range driver.Aliases("jumpstarter_") {
		info, _ := driver.Lookup(c)
		if !covered[c] && !types[info.Type] && !coveredType(covered, info.Type) {
			missing = append(missing, c)
		}
		types[info.Type] = true
	}
	if len(missing) > 0 {
		t.Errorf("Jumpstarter classes without a config in testdata/jumpstarter: %s", strings.Join(missing, ", "))
	}
	if len(covered) < 30 {
		t.Errorf("the corpus covers %d Jumpstarter classes, want at least 30", len(covered))
	}
	var list []string
	for c := range covered {
		list = append(list, c)
	}
	sort.Strings(list)
	t.Logf("%d configs, %d Jumpstarter classes: %s", len(files), len(covered), strings.Join(list, " "))
}

func coveredType(covered map[string]bool, typ string) bool {
	for c := range covered {
		if info, ok := driver.Lookup(c); ok && info.Type == typ {
			return true
		}
	}
	return false
}

type classAt struct{ class, path string }

// exportClasses returns the Jumpstarter class of every node of the config's export tree.
func exportClasses(t *testing.T, data []byte) []classAt {
	t.Helper()
	var cfg struct {
		Export map[string]node `yaml:"export"`
	}
	if err := yaml.Unmarshal(data, &cfg); err != nil {
		t.Fatal(err)
	}
	var out []classAt
	var walk func(prefix string, ns map[string]node)
	walk = func(prefix string, ns map[string]node) {
		for name, n := range ns {
			p := prefix + name
			if strings.HasPrefix(n.Type, "jumpstarter_") {
				out = append(out, classAt{n.Type, p})
			}
			walk(p+".", n.Children)
		}
	}
	walk("", cfg.Export)
	return out
}

type node struct {
	Type     string          `yaml:"type"`
	Children map[string]node `yaml:"children"`
}
