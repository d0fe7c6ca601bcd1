package yamlconf

import (
	"errors"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
)

type inner struct {
	Rate int `yaml:"rate"`
}

type sample struct {
	Name  string            `yaml:"name" jsn:"required"`
	Port  uint16            `yaml:"port"`
	Wait  time.Duration     `yaml:"wait"`
	Tags  []string          `yaml:"tags"`
	Extra map[string]string `yaml:"extra"`
	Inner inner             `yaml:"inner"`
}

func parse(t testing.TB, src string) *yaml.Node {
	t.Helper()
	var doc yaml.Node
	if err := yaml.Unmarshal([]byte(src), &doc); err != nil {
		t.Fatalf("test YAML: %v", err)
	}
	if len(doc.Content) == 0 {
		return nil
	}
	return doc.Content[0]
}

var decodeTests = []struct {
	name string
	src  string
	want []string // the errors, in order; none means success
}{
	{"all keys", "name: a\nport: 22\nwait: 2s\ntags: [x, y]\nextra: {k: v}\ninner: {rate: 9}\n", nil},
	{"duration as nanoseconds", "name: a\nwait: 1000\n", nil},
	{"missing required", "port: 1\n", []string{`f.yaml:1:1: cfg: missing required field "name"`}},
	{"unknown key with suggestion", "name: a\nprot: 1\n", []string{`f.yaml:2:1: cfg: unknown field "prot" (did you mean "port"?)`}},
	{"out of range", "name: a\nport: 70000\n", []string{`f.yaml:2:7: cfg.port: value 70000 overflows uint16`}},
	{"wrong kind", "name: a\ntags: x\n", []string{`f.yaml:2:7: cfg.tags: want a sequence, got "x"`}},
	{"bad duration", "name: a\nwait: soon\n", []string{`f.yaml:2:7: cfg.wait:`}},
	{"nested unknown", "name: a\ninner: {rat: 1}\n", []string{`f.yaml:2:9: cfg.inner: unknown field "rat" (did you mean "rate"?)`}},
	{"duplicate key", "name: a\nname: b\n", []string{`f.yaml:2:1: cfg: duplicate key "name"`}},
	{"every problem at once", "port: -1\nwait: x\n", []string{`f.yaml:1:1: cfg: missing`, `f.yaml:1:7: cfg.port:`, `f.yaml:2:7: cfg.wait:`}},
}

func TestDecode(t *testing.T) {
	for _, tt := range decodeTests {
		t.Run(tt.name, func(t *testing.T) {
			var got sample
			err := Decode("f.yaml", parse(t, tt.src), "cfg", &got)
			if len(tt.want) == 0 {
				if err != nil {
					t.Fatalf("got %v, want no error", err)
				}
				return
			}
			var errs Errors
			if !errors.As(err, &errs) {
				t.Fatalf("got %v (%T), want Errors", err, err)
			}
			if len(errs) != len(tt.want) {
				t.Fatalf("got %d errors:\n%v\nwant %d: %q", len(errs), err, len(tt.want), tt.want)
			}
			for i, w := range tt.want {
				if !strings.HasPrefix(errs[i].Error(), w) {
					t.Errorf("error %d: got %q, want it to start with %q", i, errs[i], w)
				}
			}
		})
	}
}

func TestDecodeValues(t *testing.T) {
	var got sample
	src := "name: a\nport: 22\nwait: 2s\ntags: [x, y]\nextra: {k: v}\ninner: {rate: 9}\n"
	if err := Decode("f.yaml", parse(t, src), "", &got); err != nil {
		t.Fatal(err)
	}
	if got.Name != "a" || got.Port != 22 || got.Wait != 2*time.Second || len(got.Tags) != 2 ||
		got.Extra["k"] != "v" || got.Inner.Rate != 9 {
		t.Errorf("got %+v, want every key decoded", got)
	}
}

func TestNullKeepsDefaults(t *testing.T) {
	got := inner{Rate: 7}
	if err := Decode("f.yaml", parse(t, "~"), "cfg", &got); err != nil {
		t.Fatal(err)
	}
	if got.Rate != 7 {
		t.Errorf("got %+v, want the default kept", got)
	}
	// A required key must be in the file even when the value has a default.
	err := Decode("f.yaml", parse(t, "~"), "cfg", &sample{Name: "default"})
	if err == nil || !strings.Contains(err.Error(), `missing required field "name"`) {
		t.Errorf("got %v, want the missing required field reported", err)
	}
}

// FuzzDecode: any YAML decodes into the sample struct or fails with Errors; never a panic.
func FuzzDecode(f *testing.F) {
	for _, tt := range decodeTests {
		f.Add(tt.src)
	}
	f.Add("a: &a [*a, *a]\nb: *a\n")
	f.Fuzz(func(t *testing.T, src string) {
		var doc yaml.Node
		if yaml.Unmarshal([]byte(src), &doc) != nil || len(doc.Content) == 0 {
			return
		}
		var got sample
		err := Decode("f.yaml", doc.Content[0], "cfg", &got)
		var errs Errors
		if err != nil && !errors.As(err, &errs) {
			t.Fatalf("got %v (%T), want Errors", err, err)
		}
	})
}
