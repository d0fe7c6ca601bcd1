package cli

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"jsn.dev/jsn/bus/wire"
	"jsn.dev/jsn/client"
	"jsn.dev/jsn/cmd/jsn/cmdutil"
	"jsn.dev/jsn/drivers/driver"
	"jsn.dev/jsn/internal/yamlconf"
)

// sampleDesc is a hand-built description like the one examples/local.yaml produces, plus a
// composite with a child and a ref.
func sampleDesc() *wire.Description {
	powerMethods := []*wire.MethodDesc{
		{Name: "on", Kind: driver.KindCall, Doc: "switch the power on"},
		{Name: "cycle", Kind: driver.KindCall, Args: []*wire.ArgDesc{{Name: "wait", Type: driver.TypeDuration, Optional: true}}},
		{Name: "status", Kind: driver.KindCall, Returns: driver.TypeString},
		{Name: "read", Kind: driver.KindServerStream, Returns: driver.TypeReading, Args: []*wire.ArgDesc{{Name: "count", Type: driver.TypeInt, Optional: true}}},
	}
	return &wire.Description{
		Exporter: "demo",
		Labels:   map[string]string{"board": "virtual", "arch": "arm64"},
		Drivers: []*wire.NodeDesc{
			{Name: "power", Path: "power", Type: "power.Mock", Interface: "jsn.power.v1", Doc: "mock supply", Methods: powerMethods},
			{Name: "harness", Path: "harness", Type: "composite", Children: []*wire.NodeDesc{
				{Name: "net", Path: "harness.net", Type: "network.TCP", Interface: "jsn.network.v1", Unavailable: "port closed",
					Methods: []*wire.MethodDesc{{Name: "connect", Kind: driver.KindByteStream}}},
				{Name: "run", Path: "harness.run", Type: "shell", Interface: "jsn.shell.v1",
					Methods: []*wire.MethodDesc{{Name: "go", Kind: driver.KindServerStream, Returns: driver.TypeOutput,
						Args: []*wire.ArgDesc{{Name: "a", Type: driver.TypeString}, {Name: "b", Type: driver.TypeInt}}}}},
			}},
			{Name: "alias", Path: "alias", Type: "ref", Ref: "power", Interface: "jsn.power.v1", Methods: powerMethods},
		},
	}
}

func TestRenderTree(t *testing.T) {
	got := renderTree(sampleDesc())
	want := `demo  arch=arm64  board=virtual
├── power  power.Mock  jsn.power.v1  mock supply
│   ├── on()                           switch the power on
│   ├── cycle([wait duration])
│   ├── status() -> string
│   └── read([count int]) => reading…
├── harness  composite
│   ├── harness.net  network.TCP  jsn.network.v1  (unavailable: port closed)
│   │   └── connect() <=> bytes
│   └── harness.run  shell  jsn.shell.v1
│       └── go(a string, b int) => output…
└── alias -> power
`
	if got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
}

func TestPrintDescriptionJSON(t *testing.T) {
	var b bytes.Buffer
	if err := printDescription(&b, cmdutil.FormatJSON, sampleDesc()); err != nil {
		t.Fatal(err)
	}
	var back wire.Description
	if err := json.Unmarshal(b.Bytes(), &back); err != nil {
		t.Fatalf("got invalid JSON: %v", err)
	}
	if n := back.Find("harness.run"); n == nil || n.Method("go") == nil || len(n.Method("go").Args) != 2 {
		t.Errorf("got %+v, want harness.run with method go(a, b)", n)
	}
}

func TestFindMethod(t *testing.T) {
	desc := sampleDesc()
	tests := []struct {
		path, method string
		wantErr      string
	}{
		{"power", "on", ""},
		{"harness.run", "go", ""},
		{"alias", "status", ""},
		{"nope", "on", `no driver "nope"; drivers: power, harness, harness.net, harness.run, alias`},
		{"power", "of", `driver "power" has no method "of"; methods: on, cycle, status, read`},
		{"harness", "x", `driver "harness" has no method "x": it has no methods`},
	}
	for _, tt := range tests {
		n, m, err := findMethod(desc, tt.path, tt.method)
		if tt.wantErr == "" {
			if err != nil || n.Path != tt.path || m.Name != tt.method {
				t.Errorf("findMethod(%s, %s): got %v, want the method", tt.path, tt.method, err)
			}
			continue
		}
		if err == nil || err.Error() != tt.wantErr {
			t.Errorf("findMethod(%s, %s): got %v, want %q", tt.path, tt.method, err, tt.wantErr)
		}
		if ExitCode(err) != exitNotFound {
			t.Errorf("findMethod(%s, %s): got exit %d, want %d", tt.path, tt.method, ExitCode(err), exitNotFound)
		}
	}
}

func TestConvertArgs(t *testing.T) {
	desc := sampleDesc()
	method := func(path, name string) *wire.MethodDesc { return desc.Find(path).Method(name) }
	tests := []struct {
		path, name string
		args       []string
		want       []any
		wantErr    string
	}{
		{"power", "on", nil, []any{}, ""},
		{"power", "on", []string{"1"}, nil, "power.on takes no arguments, got 1"},
		{"power", "cycle", nil, []any{}, ""},
		{"power", "cycle", []string{"2s"}, []any{2 * time.Second}, ""},
		{"power", "cycle", []string{"abc"}, nil, `power.cycle: argument 1 (wait): "abc" is not a duration`},
		{"power", "cycle", []string{"1s", "2s"}, nil, "power.cycle takes 0 to 1 arguments (wait), got 2"},
		{"harness.run", "go", []string{"x", "7"}, []any{"x", int64(7)}, ""},
		{"harness.run", "go", []string{"x"}, nil, "harness.run.go takes 2 arguments (a, b), got 1"},
		{"harness.run", "go", []string{"x", "y"}, nil, `harness.run.go: argument 2 (b): "y" is not an int`},
	}
	for _, tt := range tests {
		got, err := convertArgs(tt.path+"."+tt.name, method(tt.path, tt.name), tt.args)
		if tt.wantErr != "" {
			if err == nil || !strings.HasPrefix(err.Error(), tt.wantErr) {
				t.Errorf("%s.%s %q: got %v, want %q", tt.path, tt.name, tt.args, err, tt.wantErr)
			}
			if ExitCode(err) != exitInvalidArg {
				t.Errorf("%s.%s %q: got exit %d, want %d", tt.path, tt.name, tt.args, ExitCode(err), exitInvalidArg)
			}
			continue
		}
		if err != nil || fmt.Sprint(got) != fmt.Sprint(tt.want) {
			t.Errorf("%s.%s %q: got %v, %v, want %v", tt.path, tt.name, tt.args, got, err, tt.want)
		}
	}
}

func TestExitCode(t *testing.T) {
	tests := []struct {
		err  error
		want int
	}{
		{nil, 0},
		{errors.New("boom"), 1},
		{fmt.Errorf("call: %w", client.ErrUnavailable), 1},
		{fmt.Errorf("call: %w", client.ErrFailedPrecondition), 1},
		{fmt.Errorf("call: %w", client.ErrDeadlineExceeded), 1},
		{fmt.Errorf("call: %w", client.ErrUnimplemented), 1},
		{fmt.Errorf("call: %w", client.ErrInternal), 1},
		{client.ErrNoSession, 2},
		{fmt.Errorf("connect: %w", client.ErrNoSession), 2},
		{cmdutil.Usagef("bad"), 2},
		{errors.New(`unknown command "x" for "jsn"`), 2},
		{errors.New("unknown flag: --x"), 2},
		{yamlconf.Errors{{File: "x.yaml", Line: 1, Col: 2, Msg: "bad"}}, 2},
		{fmt.Errorf("start: %w", yamlconf.Errors{{File: "x.yaml", Line: 1, Col: 2, Msg: "bad"}}), 2},
		{fmt.Errorf("call: %w", client.ErrNotFound), 3},
		{cmdutil.NotFoundf("no driver"), 3},
		{fmt.Errorf("call: %w", client.ErrInvalidArgument), 4},
		{fmt.Errorf("call: %w", client.ErrPermissionDenied), 5},
		{&cmdutil.ExitError{Code: 7}, 7},
		{fmt.Errorf("x: %w", &cmdutil.ExitError{Code: 130}), 130},
	}
	for _, tt := range tests {
		if got := ExitCode(tt.err); got != tt.want {
			t.Errorf("ExitCode(%v): got %d, want %d", tt.err, got, tt.want)
		}
	}
}

func TestSplitTarget(t *testing.T) {
	tests := []struct{ in, path, method string }{
		{"power.on", "power", "on"},
		{"harness.power.on", "harness.power", "on"},
		{"power", "", ""},
		{".on", "", ""},
		{"power.", "", ""},
		{"", "", ""},
	}
	for _, tt := range tests {
		p, m, err := splitTarget(tt.in)
		if tt.path == "" {
			if err == nil || ExitCode(err) != exitUsage {
				t.Errorf("splitTarget(%q): got %v, want a usage error", tt.in, err)
			}
			continue
		}
		if err != nil || p != tt.path || m != tt.method {
			t.Errorf("splitTarget(%q): got %q, %q, %v, want %q, %q", tt.in, p, m, err, tt.path, tt.method)
		}
	}
}

func FuzzSplitTarget(f *testing.F) {
	for _, s := range []string{"power.on", "a.b.c", ".", "x.", ".y", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p, m, err := splitTarget(s)
		if err != nil {
			return
		}
		if p == "" || m == "" || p+"."+m != s || strings.Contains(m, ".") {
			t.Errorf("splitTarget(%q): got %q, %q", s, p, m)
		}
	})
}

func TestWriteOutput(t *testing.T) {
	var out, errOut bytes.Buffer
	f := &cmdutil.Factory{Out: &out, ErrOut: &errOut}
	items := []any{
		map[string]any{"stream": "stdout", "data": []byte("out1\n")},
		map[string]any{"stream": "stderr", "data": []byte("err\n")},
		map[string]any{"stream": "stdout", "data": "out2\n"},
		map[string]any{"exit_code": uint8(3)},
	}
	code := -1
	for _, it := range items {
		c, err := writeOutput(f, it)
		if err != nil {
			t.Fatal(err)
		}
		if c >= 0 {
			code = c
		}
	}
	if out.String() != "out1\nout2\n" || errOut.String() != "err\n" || code != 3 {
		t.Errorf("got %q, %q, %d, want %q, %q, 3", out.String(), errOut.String(), code, "out1\nout2\n", "err\n")
	}
	if _, err := writeOutput(f, "x"); err == nil {
		t.Errorf("got nil error for a non-map item, want one")
	}
	if _, err := writeOutput(f, map[string]any{"exit_code": "x"}); err == nil {
		t.Errorf("got nil error for a string exit_code, want one")
	}
}

func TestSessionEnv(t *testing.T) {
	got := sessionEnv([]string{"HOME=/h", "PATH=/usr/bin", "JSN_HOST=old", "X=1=2"},
		map[string]string{client.EnvHost: "unix:///s", client.EnvExporter: "demo", client.EnvLease: "L", "PATH": "/s/bin:/usr/bin"})
	want := "HOME=/h X=1=2 JSN_HOST=unix:///s JSN_EXPORTER=demo JSN_LEASE=L PATH=/s/bin:/usr/bin"
	if strings.Join(got, " ") != want {
		t.Errorf("got %q, want %q", strings.Join(got, " "), want)
	}
}

func TestLookPath(t *testing.T) {
	dir := t.TempDir()
	exe := filepath.Join(dir, "tool")
	if err := os.WriteFile(exe, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "plain"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	path := "/nonexistent" + string(os.PathListSeparator) + dir
	if got, err := lookPath("tool", path); err != nil || got != exe {
		t.Errorf("got %q, %v, want %q", got, err, exe)
	}
	if _, err := lookPath("plain", path); err == nil {
		t.Errorf("got a non-executable file, want an error")
	}
	if _, err := lookPath("missing", path); err == nil || !strings.Contains(err.Error(), "command not found") {
		t.Errorf("got %v, want command not found", err)
	}
	if got, err := lookPath(exe, ""); err != nil || got != exe {
		t.Errorf("got %q, %v, want %q", got, err, exe)
	}
}

func TestHelpHasExamples(t *testing.T) {
	root := NewRootCmd(&cmdutil.Factory{In: strings.NewReader(""), Out: &bytes.Buffer{}, ErrOut: &bytes.Buffer{}})
	for _, c := range root.Commands() {
		if c.Name() == "help" || c.Name() == "completion" {
			continue
		}
		if c.Example == "" {
			t.Errorf("jsn %s: got no Example, want one", c.Name())
		}
		for _, s := range c.Commands() {
			if s.Example == "" {
				t.Errorf("jsn %s %s: got no Example, want one", c.Name(), s.Name())
			}
		}
	}
}

func TestOptionsFallBackToEnv(t *testing.T) {
	env := map[string]string{client.EnvHost: "unix:///s", client.EnvExporter: "lab", client.EnvLease: "L1"}
	f := &cmdutil.Factory{Getenv: func(k string) string { return env[k] }}
	o, err := options(f)
	if err != nil {
		t.Fatal(err)
	}
	if o.Host != "unix:///s" || o.Exporter != "lab" || o.Lease != "L1" || o.NoDirectStreams {
		t.Errorf("got %+v, want the environment's values", o)
	}
	env[client.EnvDirectStreams] = "off"
	if o, _ = options(f); !o.NoDirectStreams {
		t.Errorf("with %s=off: got NoDirectStreams false", client.EnvDirectStreams)
	}
	f.Host, f.ExporterName, f.Lease = "nats://h:1", "other", "L2"
	o, err = options(f)
	if err != nil {
		t.Fatal(err)
	}
	if o.Host != "nats://h:1" || o.Exporter != "other" || o.Lease != "L2" {
		t.Errorf("got %+v, want the flags' values", o)
	}
}

func TestOptionsNoSession(t *testing.T) {
	f := &cmdutil.Factory{Getenv: func(string) string { return "" }}
	_, err := options(f)
	if !errors.Is(err, client.ErrNoSession) {
		t.Fatalf("got %v, want ErrNoSession", err)
	}
	if !cmdutil.IsUsage(err) {
		t.Errorf("got IsUsage false, want true")
	}
}

func TestParseBegin(t *testing.T) {
	now := time.Date(2026, 12, 3, 10, 0, 0, 0, time.UTC)
	for _, tt := range []struct {
		in   string
		want time.Time
		err  string
	}{
		{"2026-12-04T09:00:00+01:00", time.Date(2026, 12, 4, 8, 0, 0, 0, time.UTC), ""},
		{"11:30", time.Date(2026, 12, 3, 11, 30, 0, 0, time.UTC), ""},
		{"11:30:15", time.Date(2026, 12, 3, 11, 30, 15, 0, time.UTC), ""},
		{"09:00", time.Time{}, "has passed today"},
		{"tomorrow", time.Time{}, "want RFC 3339"},
	} {
		got, err := parseBegin(tt.in, now)
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("parseBegin(%q): got %v, %v; want error %q", tt.in, got, err, tt.err)
			}
			continue
		}
		if err != nil || !got.Equal(tt.want) {
			t.Errorf("parseBegin(%q): got %v, %v; want %v", tt.in, got, err, tt.want)
		}
	}
}

func FuzzParseBegin(f *testing.F) {
	for _, s := range []string{"11:30", "2026-12-04T09:00:00Z", "25:99", ""} {
		f.Add(s)
	}
	now := time.Date(2026, 12, 3, 10, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, s string) {
		got, err := parseBegin(s, now)
		if err == nil && got.IsZero() {
			t.Errorf("parseBegin(%q): zero time without an error", s)
		}
		if err != nil && !strings.Contains(err.Error(), "--begin") {
			t.Errorf("parseBegin(%q): error %q does not name --begin", s, err)
		}
	})
}
