package driver

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"jsn.dev/jsn/bus/wire"
)

const goodConfig = `
apiVersion: jsn.dev/v1alpha1
export:
  thing:
    type: jumpstarter_driver_test.driver.Thing
    description: the thing
    config:
      label: embedded
      name: t1
      port: 0x1F
      small: -128
      u16: 65535
      u64: 18446744073709551615
      i64: -9223372036854775808
      ratio: 2
      f32: 1.5
      on: true
      timeout: 1.5
      tags: [a, b]
      env: {A: 1}
      serial: {device: /dev/ttyS0, baudrate: 115200}
      serials: [{device: /dev/a}, {device: /dev/b}]
      ptr: 7
      opt: {device: /dev/c}
      free: {x: [1, two]}
      raw: {anything: goes}
      labels: {k: v}
  board:
    type: test.Parent
    children:
      extra:
        type: test.Rec
      alias:
        ref: board.a
  power:
    ref: thing
  proxy:
    type: jumpstarter_driver_test.driver.Proxy
    config: {ref: power}
  chained:
    ref: proxy
`

func TestBuildDecodesConfig(t *testing.T) {
	tree, err := build(t, goodConfig)
	if err != nil {
		t.Fatal(err)
	}
	n := tree.Find("thing")
	if n == nil {
		t.Fatal("Find(thing) = nil")
	}
	got := *n.Driver.(*thing)
	seven := 7
	want := thing{
		Embedded: Embedded{Label: "embedded"},
		Name:     "t1", Port: 31, Small: -128, U16: 65535, U64: 18446744073709551615, I64: -9223372036854775808,
		Ratio: 2, F32: 1.5, On: true, Timeout: 1500 * time.Millisecond,
		Tags: []string{"a", "b"}, Env: map[string]int{"A": 1},
		Serial:  serialCfg{Device: "/dev/ttyS0", Baudrate: 115200},
		Serials: []serialCfg{{Device: "/dev/a"}, {Device: "/dev/b"}},
		Ptr:     &seven, Opt: &serialCfg{Device: "/dev/c"},
		Free:   map[string]any{"x": []any{1, "two"}},
		Labels: map[string]string{"k": "v"},
	}
	if got.Raw == nil || got.Raw.Content[0].Value != "anything" {
		t.Errorf("got raw node %v, want the mapping {anything: goes}", got.Raw)
	}
	got.Raw = nil
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %+v,\nwant %+v", got, want)
	}
	if n.Info.Type != "test.Thing" || n.Doc != "the thing" {
		t.Errorf("got type %q doc %q, want test.Thing, the thing", n.Info.Type, n.Doc)
	}
}

func TestDurationForms(t *testing.T) {
	for _, tt := range []struct {
		yaml string
		want time.Duration
	}{
		{"30s", 30 * time.Second},
		{"1m30s", 90 * time.Second},
		{"2", 2 * time.Second},
		{"0.25", 250 * time.Millisecond},
		{`"100ms"`, 100 * time.Millisecond},
	} {
		tree, err := build(t, "export:\n  t:\n    type: test.Thing\n    config: {name: x, timeout: "+tt.yaml+"}\n")
		if err != nil {
			t.Fatalf("%s: %v", tt.yaml, err)
		}
		if got := tree.Find("t").Driver.(*thing).Timeout; got != tt.want {
			t.Errorf("timeout: %s: got %v, want %v", tt.yaml, got, tt.want)
		}
	}
}

func TestTreeShape(t *testing.T) {
	tree, err := build(t, goodConfig)
	if err != nil {
		t.Fatal(err)
	}
	var paths []string
	tree.Walk(func(n *Node) { paths = append(paths, n.Path) })
	want := []string{"thing", "board", "board.a", "board.b", "board.extra", "board.alias", "power", "proxy", "chained"}
	if !slices.Equal(paths, want) {
		t.Errorf("got walk %v, want %v", paths, want)
	}
	for _, tt := range []struct{ path, resolved string }{
		{"power", "thing"}, {"proxy", "thing"}, {"chained", "thing"}, {"board.alias", "board.a"}, {"thing", "thing"},
	} {
		if got := tree.Find(tt.path).Resolve().Path; got != tt.resolved {
			t.Errorf("%s resolves to %s, want %s", tt.path, got, tt.resolved)
		}
	}
	if got := tree.Find("chained").Target.Path; got != "proxy" {
		t.Errorf("chained.Target = %s, want proxy", got)
	}
	if tree.Find("power").Driver != nil {
		t.Error("ref node has a driver")
	}
	if tree.Find("nope") != nil || tree.Find("board.nope") != nil {
		t.Error("Find of a missing path is not nil")
	}
	if m := tree.Find("chained").Method("run"); m == nil || m.Name != "run" {
		t.Errorf("Method(run) through refs = %v", m)
	}
	if m := tree.Find("thing").Method("nope"); m != nil {
		t.Errorf("Method(nope) = %v, want nil", m)
	}
	if got, want := tree.Find("power").MethodNames(), []string{"on", "read", "run"}; !slices.Equal(got, want) {
		t.Errorf("got method names %v, want %v", got, want)
	}
	if got := tree.Find("board").MethodNames(); len(got) != 0 {
		t.Errorf("got method names %v for a driver without methods", got)
	}
}

func TestDescribe(t *testing.T) {
	tree, err := build(t, goodConfig)
	if err != nil {
		t.Fatal(err)
	}
	d := &wire.Description{Drivers: tree.Describe()}
	thing := d.Find("thing")
	if thing == nil || thing.Type != "test.Thing" || thing.Interface != "jsn.test.v1" || thing.Doc != "the thing" || thing.Ref != "" {
		t.Fatalf("got thing %+v", thing)
	}
	run := thing.Method("run")
	if run == nil || run.Kind != KindCall || run.Returns != TypeInt || len(run.Args) != 2 ||
		*run.Args[1] != (wire.ArgDesc{Name: "timeout", Type: TypeDuration, Optional: true}) {
		t.Errorf("got run %+v", run)
	}
	for _, tt := range []struct{ path, ref string }{{"power", "thing"}, {"proxy", "power"}, {"chained", "proxy"}} {
		n := d.Find(tt.path)
		if n == nil || n.Type != "ref" || n.Ref != tt.ref || n.Interface != "jsn.test.v1" || len(n.Methods) != 3 {
			t.Errorf("%s: got %+v, want a ref to %s with the methods of thing", tt.path, n, tt.ref)
		}
	}
	if b := d.Find("board.b"); b == nil || b.Type != "test.Rec" || b.Doc != "records its life cycle" {
		t.Errorf("got board.b %+v", b)
	}
	if got := len(d.WithInterface("jsn.test.v1")); got != 4 {
		t.Errorf("got %d nodes with jsn.test.v1, want 4 (thing and three refs)", got)
	}
}

func TestEmptyExport(t *testing.T) {
	for _, src := range []string{"export:\n", "kind: x\n", "export: {}\n"} {
		tree, err := build(t, src)
		if err != nil || len(tree.Roots) != 0 {
			t.Errorf("%q: got %v, %v; want an empty tree", src, tree, err)
		}
	}
}

const lifeConfig = `
export:
  p:
    type: test.Parent
    children:
      c:
        type: test.Rec
        children:
          gc:
            type: test.Rec
  r:
    ref: p.c
  q:
    type: test.Rec
`

func TestLifecycleOrder(t *testing.T) {
	takeEvents()
	tree, err := build(t, lifeConfig)
	if err != nil {
		t.Fatal(err)
	}
	if ev := takeEvents(); len(ev) != 0 {
		t.Fatalf("Build had side effects: %v", ev)
	}
	ctx := context.Background()
	if err := tree.Open(ctx); err != nil {
		t.Fatal(err)
	}
	want := []string{"open p.a", "open p.b", "open p.c.gc", "open p.c", "open p", "open q"}
	if got := takeEvents(); !slices.Equal(got, want) {
		t.Errorf("got open order %v, want %v", got, want)
	}
	if err := tree.Open(ctx); err == nil {
		t.Error("second Open succeeded")
	}
	if err := tree.Reset(ctx); err != nil {
		t.Fatal(err)
	}
	want = []string{"reset p.a", "reset p.b", "reset p.c.gc", "reset p.c", "reset p", "reset q"}
	if got := takeEvents(); !slices.Equal(got, want) {
		t.Errorf("got reset order %v, want %v", got, want)
	}
	if err := tree.Close(); err != nil {
		t.Fatal(err)
	}
	want = []string{"close p.a", "close p.b", "close p.c.gc", "close p.c", "close p", "close q"}
	if got := takeEvents(); !slices.Equal(got, want) {
		t.Errorf("got close order %v, want %v", got, want)
	}
	if err := tree.Close(); err != nil {
		t.Fatal(err)
	}
	if got := takeEvents(); len(got) != 0 {
		t.Errorf("second Close closed again: %v", got)
	}
}

func TestOpenFailure(t *testing.T) {
	takeEvents()
	tree, err := build(t, `
export:
  a:
    type: test.Rec
  b:
    type: test.Rec
    config: {fail: open}
  c:
    type: test.Rec
`)
	if err != nil {
		t.Fatal(err)
	}
	err = tree.Open(context.Background())
	if err == nil || err.Error() != "open export.b: open broke" {
		t.Fatalf("got %v, want open export.b: open broke", err)
	}
	want := []string{"open a", "open b", "close a", "close b"}
	if got := takeEvents(); !slices.Equal(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
	if err := tree.Close(); err != nil {
		t.Fatal(err)
	}
	if got, want := takeEvents(), []string{"close c"}; !slices.Equal(got, want) {
		t.Errorf("Close after failed Open: got %v, want %v (every driver closed exactly once)", got, want)
	}
}

func TestResetAndCloseCollectErrors(t *testing.T) {
	takeEvents()
	tree, err := build(t, `
export:
  a:
    type: test.Rec
    config: {fail: reset}
  b:
    type: test.Rec
    config: {fail: close}
  c:
    type: test.Rec
    config: {fail: reset}
`)
	if err != nil {
		t.Fatal(err)
	}
	if err := tree.Open(context.Background()); err != nil {
		t.Fatal(err)
	}
	takeEvents()
	err = tree.Reset(context.Background())
	if got, want := errString(err), "reset export.a: reset broke\nreset export.c: reset broke"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	if got, want := takeEvents(), []string{"reset a", "reset b", "reset c"}; !slices.Equal(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
	err = tree.Close()
	if got, want := errString(err), "close export.b: close broke"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	if got, want := takeEvents(), []string{"close a", "close b", "close c"}; !slices.Equal(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

func TestBuildPassesEnv(t *testing.T) {
	envs.mu.Lock()
	envs.list = nil
	envs.mu.Unlock()
	if _, err := build(t, "export:\n  x:\n    type: test.EnvProbe\n    children:\n      y: {type: test.EnvProbe}\n"); err != nil {
		t.Fatal(err)
	}
	envs.mu.Lock()
	got := envs.list
	envs.mu.Unlock()
	if len(got) != 2 || got[0].Path != "x" || got[1].Path != "x.y" || got[0].Dir != "/etc/jsn" || got[0].Log == nil {
		t.Errorf("got envs %+v", got)
	}
}

func TestConfigErrorFormat(t *testing.T) {
	for _, tt := range []struct {
		e    ConfigError
		want string
	}{
		{ConfigError{File: "f.yaml", Line: 3, Col: 5, Path: "export.a", Msg: "bad"}, "f.yaml:3:5: export.a: bad"},
		{ConfigError{File: "f.yaml", Line: 3, Msg: "bad"}, "f.yaml:3: bad"},
		{ConfigError{File: "f.yaml", Msg: "empty config"}, "f.yaml: empty config"},
	} {
		if got := tt.e.Error(); got != tt.want {
			t.Errorf("got %q, want %q", got, tt.want)
		}
	}
	errs := ConfigErrors{{File: "f", Line: 9, Msg: "b"}, {File: "f", Line: 2, Col: 7, Msg: "a"}}
	errs.Sort()
	if got, want := errs.Error(), "f:2:7: a\nf:9: b"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	var one ConfigError
	if !errors.As(error(errs), &one) || one.Msg != "a" {
		t.Errorf("errors.As ConfigError: got %+v", one)
	}
	if !strings.Contains(FieldErrorf("port", "bad %d", 1).Error(), "port: bad 1") {
		t.Error("FieldErrorf message")
	}
}

func TestNullConfigKeepsDefaults(t *testing.T) {
	tree, err := build(t, "export:\n  a:\n    type: test.Rec\n    config:\n")
	if err != nil {
		t.Fatal(err)
	}
	if got := tree.Find("a").Driver.(*rec).path; got != "a" {
		t.Fatalf("got path %q, want %q: a null config must not zero what the constructor set", got, "a")
	}
}

func TestEnvChildGivesOwnPathAndTap(t *testing.T) {
	var got []string
	opts := BuildOptions{Tap: func(path string) func([]byte) {
		return func(b []byte) { got = append(got, path+":"+string(b)) }
	}}
	var env Env
	envChildOnce.Do(func() {
		MustRegister(Info{Type: "test.EnvChild", New: func(e Env) Driver { envChild <- e; return new(noConfig) }})
	})
	export, err := exportNode("export:\n  board: {type: test.EnvChild}\n")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Build("x.yaml", export, opts); err != nil {
		t.Fatal(err)
	}
	env = <-envChild
	child := env.Child("console")
	if child.Path != "board.console" {
		t.Fatalf("got child path %q, want board.console", child.Path)
	}
	child.Tap([]byte("hi"))
	env.Tap([]byte("yo"))
	if want := []string{"board.console:hi", "board:yo"}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("got taps %v, want %v", got, want)
	}
}

var (
	envChildOnce sync.Once
	envChild     = make(chan Env, 1)
)
