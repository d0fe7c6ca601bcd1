package shell

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"jsn.dev/jsn/drivers/driver"
	"jsn.dev/jsn/drivers/drivertest"
)

var validateTests = []struct {
	name    string
	methods map[string]any
	mod     func(*Shell)
	wantErr string // substring; "" means valid
}{
	{name: "one string", methods: map[string]any{"ls": "ls"}},
	{name: "mapping", methods: map[string]any{"flash": map[string]any{"command": "x", "description": "d", "timeout": 600}}},
	{name: "mapping duration", methods: map[string]any{"a_1": map[string]any{"command": "x", "timeout": "10m"}}},
	{name: "no methods", methods: nil, wantErr: "methods: must define at least one method"},
	{name: "upper case", methods: map[string]any{"Build": "x"}, wantErr: `methods.Build: invalid method name "Build"`},
	{name: "dash", methods: map[string]any{"build-info": "x"}, wantErr: "invalid method name"},
	{name: "leading digit", methods: map[string]any{"1st": "x"}, wantErr: "invalid method name"},
	{name: "empty name", methods: map[string]any{"": "x"}, wantErr: "invalid method name"},
	{name: "dot", methods: map[string]any{"a.b": "x"}, wantErr: "invalid method name"},
	{name: "empty command", methods: map[string]any{"a": ""}, wantErr: "methods.a: command must not be empty"},
	{name: "number command", methods: map[string]any{"a": 3}, wantErr: "want a command string"},
	{name: "unknown key", methods: map[string]any{"a": map[string]any{"command": "x", "cmd": "y"}}, wantErr: `unknown key "cmd"`},
	{name: "zero timeout", methods: map[string]any{"a": map[string]any{"command": "x", "timeout": 0}}, wantErr: "timeout: must be positive"},
	{name: "bad timeout", methods: map[string]any{"a": map[string]any{"command": "x", "timeout": "soon"}}, wantErr: "timeout"},
	{name: "empty shell", methods: map[string]any{"a": "x"}, mod: func(s *Shell) { s.Shell = nil }, wantErr: "shell: must name a program"},
	{name: "zero default timeout", methods: map[string]any{"a": "x"}, mod: func(s *Shell) { s.Timeout = 0 }, wantErr: "timeout: must be positive"},
	{name: "bad env name", methods: map[string]any{"a": "x"}, mod: func(s *Shell) { s.Env = map[string]string{"A=B": "c"} }, wantErr: "env: invalid variable name"},
}

func TestValidate(t *testing.T) {
	for _, tt := range validateTests {
		t.Run(tt.name, func(t *testing.T) {
			s := New(drivertest.Env("")).(*Shell)
			s.Commands = tt.methods
			if tt.mod != nil {
				tt.mod(s)
			}
			err := s.Validate()
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("got %v, want nil", err)
				}
				if len(s.Methods()) != len(tt.methods) {
					t.Fatalf("methods: got %d, want %d", len(s.Methods()), len(tt.methods))
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("got %v, want an error containing %q", err, tt.wantErr)
			}
			var fe *driver.FieldError
			if !errors.As(err, &fe) {
				t.Fatalf("got %T, want a driver.FieldError inside", err)
			}
		})
	}
}

func TestMethodTable(t *testing.T) {
	s := New(drivertest.Env("")).(*Shell)
	s.Commands = map[string]any{
		"zeta":  "echo z",
		"alpha": map[string]any{"command": "echo a\necho b", "timeout": 5},
		"mid":   map[string]any{"command": "x", "description": "does x"},
	}
	if err := s.Validate(); err != nil {
		t.Fatal(err)
	}
	ms := s.Methods()
	want := []struct{ name, doc string }{{"alpha", "runs: echo a …"}, {"mid", "does x"}, {"zeta", "runs: echo z"}}
	for i, w := range want {
		m := ms[i]
		if m.Name != w.name || m.Doc != w.doc || m.Kind != driver.KindServerStream || m.Returns != driver.TypeOutput {
			t.Fatalf("method %d: got %s %q %s %s, want %s %q server-stream output", i, m.Name, m.Doc, m.Kind, m.Returns, w.name, w.doc)
		}
		if len(m.Args) != 1 || m.Args[0].Name != "args" || !m.Args[0].Optional || m.Args[0].Type != driver.TypeAny {
			t.Fatalf("method %s args: got %+v", m.Name, m.Args)
		}
	}
	if s.cmds[0].timeout != 5*time.Second || s.cmds[1].timeout != DefaultTimeout {
		t.Fatalf("timeouts: got %s %s, want 5s %s", s.cmds[0].timeout, s.cmds[1].timeout, DefaultTimeout)
	}
}

var decodeTests = []struct {
	name    string
	item    any
	want    Output
	wantErr bool
}{
	{"stdout bytes", map[string]any{"stream": "stdout", "data": []byte("hi")}, Output{Stream: "stdout", Data: []byte("hi")}, false},
	{"stderr string", map[string]any{"stream": "stderr", "data": "oops"}, Output{Stream: "stderr", Data: []byte("oops")}, false},
	{"exit int8", map[string]any{"exit_code": int8(3)}, Output{Exited: true, ExitCode: 3}, false},
	{"exit uint64", map[string]any{"exit_code": uint64(137)}, Output{Exited: true, ExitCode: 137}, false},
	{"exit int", map[string]any{"exit_code": 0}, Output{Exited: true}, false},
	{"exit float", map[string]any{"exit_code": 1.5}, Output{}, true},
	{"exit huge", map[string]any{"exit_code": uint64(1 << 40)}, Output{}, true},
	{"bad stream", map[string]any{"stream": "stdin", "data": []byte("x")}, Output{}, true},
	{"no data", map[string]any{"stream": "stdout"}, Output{}, true},
	{"not a map", "stdout", Output{}, true},
}

func TestDecodeOutput(t *testing.T) {
	for _, tt := range decodeTests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := DecodeOutput(tt.item)
			if (err != nil) != tt.wantErr || got.Stream != tt.want.Stream || !bytes.Equal(got.Data, tt.want.Data) ||
				got.Exited != tt.want.Exited || got.ExitCode != tt.want.ExitCode {
				t.Fatalf("got %+v, %v, want %+v, error %v", got, err, tt.want, tt.wantErr)
			}
		})
	}
}

// TestConsume checks the client's item loop on a real run's items.
func TestConsume(t *testing.T) {
	s := newShell(t, map[string]any{"x": "echo a; echo b >&2; exit 5"}, nil)
	r := call(t, t.Context(), s, "x")
	if r.err != nil {
		t.Fatal(r.err)
	}
	items := []any{
		map[string]any{"stream": "stdout", "data": []byte("a\n")},
		map[string]any{"stream": "stderr", "data": "b\n"},
		map[string]any{"exit_code": int64(5)},
	}
	var out, errb bytes.Buffer
	code, err := consume(next(items), &out, &errb)
	if err != nil || code != 5 || out.String() != "a\n" || errb.String() != "b\n" {
		t.Fatalf("got %d, %v, %q, %q, want 5, nil, %q, %q", code, err, out.String(), errb.String(), "a\n", "b\n")
	}
	if _, err := consume(next(items[:2]), nil, nil); err == nil {
		t.Fatalf("stream without exit item: got nil error, want one")
	}
}

func next(items []any) func(*any) error {
	return func(out *any) error {
		if len(items) == 0 {
			return io.EOF
		}
		*out, items = items[0], items[1:]
		return nil
	}
}

// FuzzDecodeOutput: never panics; accepted data round-trips.
func FuzzDecodeOutput(f *testing.F) {
	for _, tt := range decodeTests {
		if m, ok := tt.item.(map[string]any); ok {
			s, _ := m["stream"].(string)
			d, _ := m["data"].([]byte)
			c, _ := m["exit_code"].(int8)
			f.Add(s, d, int64(c), uint64(c))
		}
	}
	f.Fuzz(func(t *testing.T, stream string, data []byte, code int64, ucode uint64) {
		for _, item := range []any{
			map[string]any{"stream": stream, "data": data},
			map[string]any{"stream": stream, "data": string(data)},
			map[string]any{"exit_code": code},
			map[string]any{"exit_code": ucode},
		} {
			o, err := DecodeOutput(item)
			if err != nil {
				continue
			}
			if !o.Exited && !bytes.Equal(o.Data, data) {
				t.Fatalf("data changed: got %q, want %q", o.Data, data)
			}
		}
	})
}

// FuzzParseMethod: arbitrary names, commands and timeouts never panic, and what is accepted is
// a valid method.
func FuzzParseMethod(f *testing.F) {
	f.Add("ls", "ls", "", "10m", int64(0))
	f.Add("Build", "x", "d", "soon", int64(-1))
	f.Add("a", "", "", "", int64(1<<62))
	f.Fuzz(func(t *testing.T, name, cmd, desc, timeout string, secs int64) {
		for _, v := range []any{
			cmd,
			map[string]any{"command": cmd, "description": desc, "timeout": timeout},
			map[string]any{"command": cmd, "timeout": secs},
		} {
			cmds, err := parseMethods(map[string]any{name: v}, DefaultTimeout)
			if err != nil {
				continue
			}
			if len(cmds) != 1 || !validName().MatchString(cmds[0].name) || cmds[0].script == "" || cmds[0].timeout <= 0 {
				t.Fatalf("accepted an invalid method: %+v", cmds)
			}
		}
	})
}
