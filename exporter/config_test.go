package exporter

import (
	"context"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"jsn.dev/jsn/bus/wire"
	_ "jsn.dev/jsn/drivers/composite" // composite and Jumpstarter's Composite and Proxy
	"jsn.dev/jsn/drivers/driver"
	"jsn.dev/jsn/internal/yamlconf"
)

var updateGolden = flag.Bool("update", false, "rewrite testdata/*.golden")

// cfgPower is a test-only power driver.
type cfgPower struct {
	Voltage float64       `yaml:"voltage"`
	Settle  time.Duration `yaml:"settle"`
}

func (*cfgPower) Open(context.Context) error  { return nil }
func (*cfgPower) Reset(context.Context) error { return nil }
func (*cfgPower) Close() error                { return nil }

func nopCall(context.Context, driver.Args) (any, error) { return nil, nil }

func nopStream(context.Context, driver.Args, func(any) error) error { return nil }

func (p *cfgPower) Validate() error {
	if p.Voltage < 0 {
		return driver.FieldErrorf("voltage", "must not be negative")
	}
	return nil
}

func (p *cfgPower) Methods() []driver.Method {
	return []driver.Method{
		{Name: "on", Doc: "switch on", Kind: driver.KindCall, Call: nopCall},
		{Name: "off", Doc: "switch off", Kind: driver.KindCall, Call: nopCall},
		{Name: "read", Doc: "stream readings", Kind: driver.KindServerStream, Returns: driver.TypeReading, Stream: nopStream,
			Args: []driver.Arg{{Name: "interval", Type: driver.TypeDuration, Optional: true}}},
	}
}

func init() {
	driver.MustRegister(driver.Info{Type: "cfgtest.Power", Interface: "jsn.power.v1", Doc: "test power supply",
		New: func(driver.Env) driver.Driver { return &cfgPower{} }, Aliases: []string{"jumpstarter_driver_cfgtest.driver.MockPower"}})
}

func TestGolden(t *testing.T) {
	files, err := filepath.Glob("testdata/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no testdata: %v", err)
	}
	for _, file := range files {
		t.Run(filepath.Base(file), func(t *testing.T) {
			var got []byte
			cfg, tree, err := Load(file, nil)
			if err != nil {
				var ce yamlconf.Errors
				if !errors.As(err, &ce) {
					t.Fatalf("got %T %v, want ConfigErrors", err, err)
				}
				got = []byte("# errors\n" + err.Error() + "\n")
			} else {
				desc := &wire.Description{Exporter: cfg.Metadata.Name, Labels: cfg.Metadata.Labels, Drivers: tree.Describe()}
				got, err = yaml.Marshal(desc)
				if err != nil {
					t.Fatal(err)
				}
			}
			golden := strings.TrimSuffix(file, ".yaml") + ".golden"
			if *updateGolden {
				if err := os.WriteFile(golden, got, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run go test -update)", err)
			}
			if string(got) != string(want) {
				t.Errorf("got\n%s\nwant\n%s", got, want)
			}
		})
	}
}

func TestParseConfig(t *testing.T) {
	cfg, err := LoadConfig("testdata/jumpstarter.yaml")
	if err != nil {
		t.Fatal(err)
	}
	abs, _ := filepath.Abs("testdata")
	if cfg.APIVersion != JumpstarterAPIVersion || cfg.Kind != Kind || cfg.Metadata.Name != "jumpstarter" ||
		cfg.Metadata.Namespace != "default" || cfg.Endpoint != "grpc.jumpstarter.example.com:443" ||
		cfg.Token != "xxxxx" || cfg.File != "testdata/jumpstarter.yaml" || cfg.Dir != abs || cfg.Export == nil {
		t.Errorf("got %+v", cfg)
	}
	cfg, err = LoadConfig("testdata/lab.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Metadata.Name != "lab-1" || cfg.Metadata.Labels["board"] != "rpi4" || cfg.Hooks != nil {
		t.Errorf("got %+v", cfg)
	}
	tree, err := cfg.Build(nil)
	if err != nil {
		t.Fatal(err)
	}
	p := tree.Find("harness.power").Driver.(*cfgPower)
	if p.Voltage != 5.1 || p.Settle != 250*time.Millisecond {
		t.Errorf("got %+v", p)
	}
	if _, err := LoadConfig("testdata/nope.yaml"); err == nil || !errors.Is(err, os.ErrNotExist) {
		t.Errorf("got %v, want a not-exist error", err)
	}
}

var parseErrorTests = []struct {
	name string
	src  string
	want []string
}{
	{"empty", "", []string{"c.yaml: empty config"}},
	{"bad direct streams", "apiVersion: jsn.dev/v1alpha1\nkind: ExporterConfig\ndirectStreams: {listen: 0.0.0.0:7400, advertise: tcp:host}\n", []string{
		`c.yaml:3:25: directStreams.listen: invalid address "0.0.0.0:7400": want unix:/path/to.sock, tcp:host:port or off`,
		`c.yaml:3:50: directStreams.advertise: invalid address "tcp:host": want unix:/path/to.sock or tcp:host:port`}},
	{"direct streams advertise without listen", "apiVersion: jsn.dev/v1alpha1\nkind: ExporterConfig\ndirectStreams: {listen: off, advertise: tcp:h:1}\n", []string{
		`c.yaml:3:41: directStreams.advertise: advertise needs listen`}},
	{"only comments", "# nothing\n", []string{"c.yaml: empty config"}},
	{"null document", "---\n", []string{"c.yaml: empty config"}},
	{"not a mapping", "- a\n- b\n", []string{"c.yaml:1:1: want a mapping (apiVersion, kind, metadata, export…)"}},
	{"malformed", "apiVersion: jsn.dev/v1alpha1\nkind: [\n", []string{"c.yaml:2: invalid YAML: did not find expected node content"}},
	{"malformed first line", "a: b: c\n", []string{"c.yaml:1: invalid YAML: mapping values are not allowed in this context"}},
	{"unknown anchor", "apiVersion: jsn.dev/v1alpha1\nkind: *k\n", []string{"c.yaml:2:7: invalid YAML: unknown anchor 'k' referenced"}},
	{"multiple documents", "apiVersion: jsn.dev/v1alpha1\nkind: ExporterConfig\n---\nkind: x\n", []string{
		"c.yaml:3:1: multiple YAML documents; an exporter config is one document"}},
	{"missing apiVersion and kind", "metadata: {name: a}\n", []string{
		`c.yaml:1:1: missing required field "apiVersion"`,
		`c.yaml:1:1: missing required field "kind"`}},
	{"wrong apiVersion and kind", "apiVersion: v1\nkind: Pod\n", []string{
		`c.yaml:1:13: apiVersion: unsupported apiVersion "v1"; want "jsn.dev/v1alpha1" or "jumpstarter.dev/v1alpha1"`,
		`c.yaml:2:7: kind: kind is "Pod"; want "ExporterConfig"`}},
	{"unknown and jumpstarter-only fields", `apiVersion: jsn.dev/v1alpha1
kind: ExporterConfig
metdata: {name: a}
grpcOptions: {}
description: x
`, []string{
		`c.yaml:3:1: unknown field "metdata" (did you mean "metadata"?)`,
		`c.yaml:4:1: field "grpcOptions" is only accepted in jumpstarter.dev/v1alpha1 files`,
		`c.yaml:5:1: field "description" is only accepted in jumpstarter.dev/v1alpha1 files`}},
	{"bad metadata", `apiVersion: jumpstarter.dev/v1alpha1
kind: ExporterConfig
metadata:
  name: a.b
  labels: {x: [1]}
  uid: 3
tls: {ca: "", insecure: maybe, verify: true}
`, []string{
		`c.yaml:4:9: metadata.name: invalid exporter name "a.b": use lower-case letters, digits, - and _, starting with a letter or digit`,
		`c.yaml:5:15: metadata.labels.x: want a string, got a sequence`,
		`c.yaml:6:3: metadata: unknown field "uid"`,
		`c.yaml:7:25: tls.insecure: want a bool, got "maybe"`,
		`c.yaml:7:32: tls: unknown field "verify"`}},
	{"duplicate top-level key", "apiVersion: jsn.dev/v1alpha1\nkind: ExporterConfig\nkind: ExporterConfig\n", []string{
		`c.yaml:3:1: duplicate key "kind" (first at line 2)`}},
}

func TestParseConfigErrors(t *testing.T) {
	for _, tt := range parseErrorTests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := ParseConfig("c.yaml", []byte(tt.src))
			if err == nil {
				t.Fatalf("got %+v, want errors", cfg)
			}
			var ce yamlconf.Errors
			if !errors.As(err, &ce) {
				t.Fatalf("got %T %v, want ConfigErrors", err, err)
			}
			got := strings.Split(err.Error(), "\n")
			if !slices.Equal(got, tt.want) {
				t.Errorf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(tt.want, "\n"))
			}
		})
	}
}

func TestDefaultName(t *testing.T) {
	for _, tt := range []struct{ file, want string }{
		{"/etc/jsn/exporter.yaml", "exporter"},
		{"Lab Bench.yaml", "lab-bench"},
		{"rpi4_a.b.yml", "rpi4_a-b"},
		{"__x.yaml", "x"},
		{"...yaml", "exporter"},
		{"ünï.yaml", "n-"},
	} {
		if got := DefaultName(tt.file); got != tt.want {
			t.Errorf("DefaultName(%q) = %q, want %q", tt.file, got, tt.want)
		}
		cfg, err := ParseConfig(tt.file, []byte("apiVersion: jsn.dev/v1alpha1\nkind: ExporterConfig\n"))
		if err != nil || cfg.Metadata.Name != tt.want {
			t.Errorf("ParseConfig(%q): got %+v, %v; want name %q", tt.file, cfg, err, tt.want)
		}
	}
}

func FuzzParseConfig(f *testing.F) {
	for _, tt := range parseErrorTests {
		f.Add([]byte(tt.src))
	}
	files, _ := filepath.Glob("testdata/*.yaml")
	for _, file := range files {
		data, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := ParseConfig("f.yaml", data)
		if err != nil {
			var ce yamlconf.Errors
			if !errors.As(err, &ce) || len(ce) == 0 {
				t.Fatalf("got %T %v, want ConfigErrors", err, err)
			}
			for _, e := range ce {
				if e.File != "f.yaml" || e.Msg == "" || e.Line < 0 {
					t.Fatalf("bad config error %+v", e)
				}
			}
			return
		}
		if cfg.Metadata.Name == "" || !nameRE().MatchString(cfg.Metadata.Name) {
			t.Fatalf("accepted a config with exporter name %q", cfg.Metadata.Name)
		}
		if tree, err := cfg.Build(nil); err == nil {
			tree.Describe()
		} else if !errors.As(err, new(yamlconf.Errors)) {
			t.Fatalf("Build: got %T %v, want ConfigErrors", err, err)
		}
	})
}
