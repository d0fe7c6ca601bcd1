package driver

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"testing"
)

func init() {
	// The real one is package composite's; the framework only needs the name to exist.
	MustRegister(Info{Type: "composite", New: func(Env) Driver { return new(noConfig) }})
	MustRegister(Info{Type: "test.Logger", New: func(env Env) Driver { return &logger{log: env.Log} }})
}

// logger logs one record at each level when opened.
type logger struct {
	noConfig
	log *slog.Logger
	Tag string `yaml:"tag"`
}

func (l *logger) Open(ctx context.Context) error {
	l.log.Debug("debug " + l.Tag)
	l.log.Info("info " + l.Tag)
	l.log.Warn("warn " + l.Tag)
	return nil
}

func TestJumpstarterNodeKeys(t *testing.T) {
	tree, err := build(t, `
export:
  t:
    type: test.Thing
    description: the thing
    methods_description: {on: switch the thing on, run: run a command}
    config: {name: x, log_level: DEBUG}
  group:
    children:
      a: {type: test.Rec}
  alias: {ref: group.a}
`)
	if err != nil {
		t.Fatal(err)
	}
	d := tree.Describe()
	if d[0].Doc != "the thing" {
		t.Errorf("doc %q", d[0].Doc)
	}
	docs := map[string]string{}
	for _, m := range d[0].Methods {
		docs[m.Name] = m.Doc
	}
	if docs["on"] != "switch the thing on" || docs["run"] != "run a command" || docs["read"] != "" {
		t.Errorf("method docs %v", docs)
	}
	if g := tree.Find("group"); g == nil || g.Info.Type != "composite" || tree.Find("group.a") == nil {
		t.Errorf("a node with only children is not a composite: %+v", g)
	}
	if a := tree.Find("alias"); a == nil || a.Resolve() != tree.Find("group.a") {
		t.Errorf("ref into an implied composite does not resolve")
	}
}

func TestLogLevel(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelWarn}))
	export, err := exportNode(`
export:
  quiet: {type: test.Logger, config: {tag: q}}
  loud: {type: test.Logger, config: {tag: l, log_level: debug}}
  mute: {type: test.Logger, config: {tag: m, log_level: ERROR}}
`)
	if err != nil {
		t.Fatal(err)
	}
	tree, err := Build("x.yaml", export, BuildOptions{Log: log})
	if err != nil {
		t.Fatal(err)
	}
	if err := tree.Open(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer tree.Close()
	out := buf.String()
	for _, want := range []string{"warn q", "debug l", "info l", "warn l"} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %q:\n%s", want, out)
		}
	}
	for _, not := range []string{"debug q", "info q", "warn m"} {
		if strings.Contains(out, not) {
			t.Errorf("log has %q:\n%s", not, out)
		}
	}
}

func TestCompatErrors(t *testing.T) {
	_, err := build(t, `
export:
  a:
    type: jumpstarter_driver_nope.driver.A
  b:
    type: jumpstarter_driver_nope.driver.B
  c: {ref: a}
  d:
    type: test.Thing
    methods_description: {of: x}
    config: {name: y, log_level: LOUD}
`)
	got := errLines(t, err)
	want := []string{
		`exporter.yaml:4:11: export.a.type: jumpstarter class "jumpstarter_driver_nope.driver.A" has no jsn equivalent`,
		`exporter.yaml:6:11: export.b.type: jumpstarter class "jumpstarter_driver_nope.driver.B" has no jsn equivalent`,
		`exporter.yaml:10:27: export.d.methods_description: driver type test.Thing has no method "of" (did you mean "on"?)`,
		`exporter.yaml:11:34: export.d.config.log_level: want DEBUG, INFO, WARNING, ERROR or CRITICAL, got "LOUD"`,
		`exporter.yaml: Jumpstarter classes jsn loads: jumpstarter_driver_test.driver.Proxy, jumpstarter_driver_test.driver.Thing`,
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestFailedResetMarksUnavailable(t *testing.T) {
	tree, err := build(t, "export:\n  a: {type: test.Rec}\n  b: {type: test.Rec}\n  r: {ref: a}\n")
	if err != nil {
		t.Fatal(err)
	}
	if err := tree.Open(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer tree.Close()
	a := tree.Find("a").Driver.(*rec)
	a.Fail = "reset"
	if err := tree.Reset(context.Background()); err == nil {
		t.Fatal("reset did not fail")
	}
	if got := tree.Find("r").Unavailable(); got != "reset failed: reset broke" {
		t.Errorf("unavailable after a failed reset: %q", got)
	}
	if got := tree.Find("b").Unavailable(); got != "" {
		t.Errorf("b unavailable: %q", got)
	}
	if d := tree.Describe(); d[0].Unavailable == "" {
		t.Errorf("describe does not show it: %+v", d[0])
	}
	a.Fail = ""
	if err := tree.Reset(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := tree.Find("a").Unavailable(); got != "" {
		t.Errorf("still unavailable after a good reset: %q", got)
	}
}
