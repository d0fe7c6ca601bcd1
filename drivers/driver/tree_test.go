package driver

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// build parses src, a config file with an export: mapping at the top, and builds its tree.
func build(t testing.TB, src string) (*Tree, error) {
	t.Helper()
	export, err := exportNode(src)
	if err != nil {
		t.Fatalf("parse test YAML: %v", err)
	}
	return Build("exporter.yaml", export, BuildOptions{Dir: "/etc/jsn"})
}

func exportNode(src string) (*yaml.Node, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal([]byte(src), &doc); err != nil {
		return nil, err
	}
	if len(doc.Content) == 0 || doc.Content[0].Kind != yaml.MappingNode {
		return nil, nil
	}
	root := doc.Content[0]
	for i := 0; i+1 < len(root.Content); i += 2 {
		if root.Content[i].Value == "export" {
			return root.Content[i+1], nil
		}
	}
	return nil, nil
}

// errLines returns the lines of a ConfigErrors error, failing if err is of another type.
func errLines(t *testing.T, err error) []string {
	t.Helper()
	if err == nil {
		return nil
	}
	var ce ConfigErrors
	if !errors.As(err, &ce) {
		t.Fatalf("got error %T %q, want ConfigErrors", err, err)
	}
	var out []string
	for _, e := range ce {
		out = append(out, e.Error())
	}
	return out
}

var buildErrorTests = []struct {
	name string
	src  string
	want []string
}{
	{"unknown config field", `
export:
  power:
    type: test.Thing
    config:
      name: x
      prot: 1
`, []string{`exporter.yaml:7:7: export.power.config: unknown field "prot" (did you mean "port"?)`}},
	{"wrong type", `
export:
  power:
    type: test.Thing
    config:
      name: x
      port: abc
      on: maybe
      ratio: [1]
      timeout: soon
      tags: one
      env: {a: x}
`, []string{
		`exporter.yaml:7:13: export.power.config.port: want an integer, got "abc"`,
		`exporter.yaml:8:11: export.power.config.on: want a bool, got "maybe"`,
		`exporter.yaml:9:14: export.power.config.ratio: want a number, got a sequence`,
		`exporter.yaml:10:16: export.power.config.timeout: want a duration ("30s" or a number of seconds), got "soon"`,
		`exporter.yaml:11:13: export.power.config.tags: want a sequence, got "one"`,
		`exporter.yaml:12:16: export.power.config.env.a: want an integer, got "x"`,
	}},
	{"overflow", `
export:
  t:
    type: test.Thing
    config:
      name: x
      small: 300
      u16: -1
      i64: 99999999999999999999
      u64: 18446744073709551616
      f32: 1e100
`, []string{
		`exporter.yaml:7:14: export.t.config.small: value 300 overflows int8`,
		`exporter.yaml:8:12: export.t.config.u16: value -1 overflows uint16`,
		`exporter.yaml:9:12: export.t.config.i64: value 99999999999999999999 overflows int64`,
		`exporter.yaml:10:12: export.t.config.u64: value 18446744073709551616 overflows uint64`,
		`exporter.yaml:11:12: export.t.config.f32: value 1e100 overflows float32`,
	}},
	{"duplicate keys", `
export:
  t:
    type: test.Thing
    config:
      name: x
      name: y
  t:
    type: test.Rec
`, []string{
		`exporter.yaml:7:7: export.t.config: duplicate key "name" (first at line 6)`,
		`exporter.yaml:8:3: export: duplicate key "t" (first at line 3)`,
	}},
	{"missing required", `
export:
  a:
    type: test.Thing
    config:
      port: 1
      serial: {baudrate: 9600}
  b:
    type: test.Thing
`, []string{
		`exporter.yaml:6:7: export.a.config: missing required field "name"`,
		`exporter.yaml:7:15: export.a.config.serial: missing required field "device"`,
		`exporter.yaml:8:3: export.b.config: missing required field "name"`,
	}},
	{"required null counts as missing", `
export:
  a:
    type: test.Thing
    config:
      name:
`, []string{`exporter.yaml:6:7: export.a.config: missing required field "name"`}},
	{"validate", `
export:
  a:
    type: test.Thing
    config:
      name: invalid
      port: -2
      serial:
        device: /dev/ttyUSB0
        baudrate: 1
`, []string{
		`exporter.yaml:6:7: export.a.config: name and port do not go together`,
		`exporter.yaml:7:7: export.a.config.port: must not be negative, got -2`,
		`exporter.yaml:10:9: export.a.config.serial.baudrate: 1 baud is too slow`,
	}},
	{"node shape", `
export:
  a:
    typ: test.Rec
  b:
    type: test.Rec
    ref: a
  c: just a string
  d:
  e.f:
    type: test.Rec
  g:
    type: test.Thign
  h:
    type: jumpstarter_driver_foo.driver.Bar
  i:
    type: test.NoConfig
    config: {x: 1}
  j:
    type: test.Rec
    children: [1]
`, []string{
		"exporter.yaml:3:3: export.a: missing \"type\" (or \"ref\"): add the driver class, e.g. `type: jumpstarter_driver_power.driver.MockPower` or `type: power.Mock`; `ref: other.path` for a second name of another node; or only `children:` for a group",
		`exporter.yaml:4:5: export.a: unknown field "typ" (did you mean "type"?)`,
		`exporter.yaml:7:5: export.b: a node has either type or ref, not both`,
		`exporter.yaml:8:6: export.c: want a mapping with type or ref, got "just a string"`,
		`exporter.yaml:9:3: export.d: want a mapping with type or ref, got nothing`,
		`exporter.yaml:10:3: export: invalid driver name "e.f": use letters, digits, - and _ (no dots)`,
		`exporter.yaml:13:11: export.g.type: unknown driver type "test.Thign" (did you mean "test.Thing"?)`,
		`exporter.yaml:15:11: export.h.type: jumpstarter class "jumpstarter_driver_foo.driver.Bar" has no jsn equivalent`,
		`exporter.yaml:18:13: export.i.config: this driver takes no config`,
		`exporter.yaml:21:15: export.j.children: want a mapping of driver names to nodes, got a sequence`,
		`exporter.yaml: Jumpstarter classes jsn loads: jumpstarter_driver_test.driver.Proxy, jumpstarter_driver_test.driver.Thing`,
	}},
	{"export not a mapping", `
export: [a, b]
`, []string{`exporter.yaml:2:9: export: want a mapping of driver names to nodes, got a sequence`}},
	{"refs", `
export:
  a:
    ref: b
  b:
    ref: a
  c:
    ref: nowhere
  d:
    ref: d
  e:
    ref: a
  f:
    type: test.Proxy
    config: {ref: f}
  g:
    type: test.Proxy
    config: {reff: a}
  h:
    ref: e
    config: {x: 1}
`, []string{
		`exporter.yaml:4:10: export.a.ref: ref cycle: a -> b -> a`,
		`exporter.yaml:8:10: export.c.ref: ref to unknown driver "nowhere"`,
		`exporter.yaml:10:10: export.d.ref: ref cycle: d -> d`,
		`exporter.yaml:15:19: export.f.config.ref: ref cycle: f -> f`,
		`exporter.yaml:18:13: export.g.config: missing required field "ref"`,
		`exporter.yaml:18:14: export.g.config: unknown field "reff" (did you mean "ref"?)`,
		`exporter.yaml:21:5: export.h: a ref node has no config`,
	}},
	{"built-in child clash", `
export:
  p:
    type: test.Parent
    children:
      a:
        type: test.Rec
      c:
        type: test.Rec
`, []string{`exporter.yaml:6:7: export.p.children: child "a" clashes with a built-in child of test.Parent`}},
	{"bad methods", `
export:
  m:
    type: test.BadMethods
`, []string{
		`exporter.yaml:3:3: export.m: driver type test.BadMethods: method "x": kind "call" needs exactly its own handler (Call, Stream or Bytes)`,
		`exporter.yaml:3:3: export.m: driver type test.BadMethods: method "y" declared twice`,
	}},
	{"errors in nested children are all collected", `
export:
  top:
    type: test.Rec
    children:
      x:
        type: test.Thing
        config: {name: a, port: z}
      y:
        type: test.Rec
        config: {fial: open}
`, []string{
		`exporter.yaml:8:33: export.top.children.x.config.port: want an integer, got "z"`,
		`exporter.yaml:11:18: export.top.children.y.config: unknown field "fial" (did you mean "fail"?)`,
	}},
}

func TestBuildErrors(t *testing.T) {
	for _, tt := range buildErrorTests {
		t.Run(tt.name, func(t *testing.T) {
			tree, err := build(t, tt.src)
			if err == nil {
				t.Fatalf("got tree with %d roots, want errors", len(tree.Roots))
			}
			got := errLines(t, err)
			if !slices.Equal(got, tt.want) {
				t.Errorf("got errors\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(tt.want, "\n"))
			}
		})
	}
}
