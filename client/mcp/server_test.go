package mcp_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	sdk "github.com/modelcontextprotocol/go-sdk/mcp"

	"jsn.dev/jsn/bus/wire"
	"jsn.dev/jsn/client"
	"jsn.dev/jsn/client/mcp"
	"jsn.dev/jsn/client/mcp/mcptest"
	"jsn.dev/jsn/exporter/exportertest"
	"jsn.dev/jsn/internal/testkit"

	_ "jsn.dev/jsn/drivers/all"
)

// connect serves a local session of the test board and connects an MCP client (the Go SDK's)
// to it in-process.
func connect(t *testing.T) (*sdk.ClientSession, *exportertest.Lab) {
	t.Helper()
	lab := exportertest.Start(t, mcptest.Config(t, "board1"))
	s := mcp.New(&mcp.Session{Options: client.Options{Host: lab.Local.URL, Exporter: lab.Local.Exporter, Lease: lab.Local.Lease, Name: "mcp"}}, "test")
	t.Cleanup(func() { _ = s.Close(context.Background()) })
	ctx := context.Background()
	st, ct := sdk.NewInMemoryTransports()
	ss, err := s.MCP().Connect(ctx, st, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ss.Close() })
	cs, err := sdk.NewClient(&sdk.Implementation{Name: "test", Version: "1"}, nil).Connect(ctx, ct, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cs.Close() })
	return cs, lab
}

// tool calls a tool and returns its text and whether it failed.
func tool(t *testing.T, cs *sdk.ClientSession, name string, args map[string]any) (string, bool, *sdk.CallToolResult) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	r, err := cs.CallTool(ctx, &sdk.CallToolParams{Name: name, Arguments: args})
	if err != nil {
		t.Fatalf("%s: protocol error: %v", name, err)
	}
	var text []string
	for _, c := range r.Content {
		if tc, ok := c.(*sdk.TextContent); ok {
			text = append(text, tc.Text)
		}
	}
	return strings.Join(text, "\n"), r.IsError, r
}

func ok(t *testing.T, cs *sdk.ClientSession, name string, args map[string]any) string {
	t.Helper()
	s, failed, _ := tool(t, cs, name, args)
	if failed {
		t.Fatalf("%s %v: %s", name, args, s)
	}
	return s
}

func fails(t *testing.T, cs *sdk.ClientSession, name string, args map[string]any, want string) {
	t.Helper()
	s, failed, _ := tool(t, cs, name, args)
	if !failed || !strings.Contains(s, want) {
		t.Errorf("%s %v: got failed=%v %q, want an error containing %q", name, args, failed, s, want)
	}
}

func TestToolsLocalSession(t *testing.T) {
	cs, lab := connect(t)
	ctx := context.Background()
	var names []string
	for tl, err := range cs.Tools(ctx, nil) {
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, tl.Name)
	}
	if got := strings.Join(names, " "); got != "call console_expect console_log describe flash list_exporters release_lease request_lease screenshot" {
		t.Errorf("tools: %s", got)
	}

	if s := ok(t, cs, "list_exporters", nil); !strings.Contains(s, `"name":"board1"`) {
		t.Errorf("list_exporters: %s", s)
	}
	if s := ok(t, cs, "request_lease", map[string]any{"exporter": "board1"}); !strings.Contains(s, lab.Local.Lease) {
		t.Errorf("request_lease in a local session: %s, want its lease %s", s, lab.Local.Lease)
	}
	fails(t, cs, "request_lease", map[string]any{"exporter": "board9"}, `no exporter "board9" in this local session; it has only board1`)
	d := ok(t, cs, "describe", nil)
	for _, w := range []string{`"path":"console"`, `"interface":"jsn.serial.v1"`, `"name":"set_baudrate"`, `"args":"rate:int"`, `"args":"[wait:duration]"`} {
		if !strings.Contains(d, w) {
			t.Errorf("describe lacks %s: %s", w, d)
		}
	}

	// call, and the mistakes an agent makes.
	ok(t, cs, "call", map[string]any{"driver": "power", "method": "on"})
	if s := ok(t, cs, "call", map[string]any{"driver": "power", "method": "status"}); s != `{"result":"on"}` {
		t.Errorf("power.status: %s", s)
	}
	ok(t, cs, "call", map[string]any{"driver": "power", "method": "cycle", "args": []any{"10ms"}})
	fails(t, cs, "call", map[string]any{"driver": "power", "method": "explode"}, `driver power has no method "explode"; its methods: on, off, cycle, status`)
	fails(t, cs, "call", map[string]any{"driver": "pwr", "method": "on"}, `no driver "pwr" on exporter board1; drivers: power, console, sd, screen`)
	fails(t, cs, "call", map[string]any{"driver": "console", "method": "set_baudrate", "args": []any{"fast"}},
		`console.set_baudrate: argument 1 (rate): want int, got string "fast"`)
	fails(t, cs, "call", map[string]any{"driver": "console", "method": "set_baudrate", "args": []any{1.5}},
		`console.set_baudrate: argument 1 (rate): want int, got number 1.5`)
	fails(t, cs, "call", map[string]any{"driver": "power", "method": "cycle", "args": []any{"soon"}},
		`power.cycle: argument 1 (wait): want duration, got string "soon", which is not a duration like 1s or 500ms`)
	fails(t, cs, "call", map[string]any{"driver": "power", "method": "on", "args": []any{1}},
		`power.on takes 0 arguments (none), got 1`)
	fails(t, cs, "call", map[string]any{"driver": "console", "method": "connect"},
		`console.connect is a byte-stream method: the call tool calls plain methods only`)
	fails(t, cs, "call", map[string]any{"driver": 5, "method": "on"}, `validating "arguments"`)
	fails(t, cs, "call", map[string]any{"method": "on"}, `validating "arguments"`)

	// The console: history, expect, and a timeout.
	testkit.CheckFor(t, 10*time.Second, func() error {
		s, failed, _ := tool(t, cs, "console_log", nil)
		if failed || !strings.Contains(s, "Hit any key") {
			return fmt.Errorf("console_log: %s", s)
		}
		return nil
	})
	var ex struct{ Match, Output string }
	if err := json.Unmarshal([]byte(ok(t, cs, "console_expect", map[string]any{"send": "version\n", "pattern": `U-Boot \d+\.\d+-jsn \(`, "timeout": "10s"})), &ex); err != nil {
		t.Fatal(err)
	}
	if ex.Match != "U-Boot 2024.01-jsn (" {
		t.Errorf("console_expect: %+v", ex)
	}
	fails(t, cs, "console_expect", map[string]any{"send": "echo hello\n", "pattern": "never printed", "timeout": "500ms"},
		`console console: "never printed" not seen within 500ms; it printed meanwhile: "`)
	fails(t, cs, "console_expect", map[string]any{"pattern": "("}, "pattern \"(\": error parsing regexp")
	fails(t, cs, "console_expect", map[string]any{"pattern": "x", "timeout": "soon"}, `timeout "soon": want a duration like 30s, 5m or 1h`)
	if s := ok(t, cs, "console_log", map[string]any{"max_bytes": 20}); !strings.Contains(s, `"truncated":true`) {
		t.Errorf("console_log max_bytes 20: %s", s)
	}

	// Flash an image file, take a screenshot.
	img := filepath.Join(t.TempDir(), "disk.img")
	if err := os.WriteFile(img, bytes.Repeat([]byte("jsn!"), 1<<16), 0o600); err != nil {
		t.Fatal(err)
	}
	fails(t, cs, "flash", map[string]any{"image": img}, "FAILED_PRECONDITION")
	ok(t, cs, "call", map[string]any{"driver": "sd", "method": "host"})
	if s := ok(t, cs, "flash", map[string]any{"image": img}); !strings.Contains(s, `"written":262144`) {
		t.Errorf("flash: %s", s)
	}
	fails(t, cs, "flash", map[string]any{"image": "/nonexistent.img"}, "flash: image /nonexistent.img: no such file or directory (the path is on the MCP server's host)")
	fails(t, cs, "flash", nil, "flash: give either image (a file path) or url")
	_, failed, r := tool(t, cs, "screenshot", nil)
	if failed || len(r.Content) == 0 {
		t.Fatalf("screenshot: %+v", r)
	}
	im, isImage := r.Content[0].(*sdk.ImageContent)
	if !isImage || im.MIMEType != "image/png" {
		t.Fatalf("screenshot content: %#v", r.Content[0])
	}
	if cfg, err := png.DecodeConfig(bytes.NewReader(im.Data)); err != nil || cfg.Width != 64 {
		t.Errorf("screenshot: %v, %+v", err, cfg)
	}
	fails(t, cs, "screenshot", map[string]any{"driver": "console"}, `no video driver "console" on exporter board1; video drivers: screen`)

	fails(t, cs, "release_lease", nil, "is a local session's: it ends when the session (jsn shell, jsn mcp -c) ends")
	fails(t, cs, "describe", map[string]any{"lease": "nope"}, `no lease "nope" held by this server; held: `+lab.Local.Lease+" (board1)")
}

// FuzzConvertArgs: whatever JSON an agent sends as a call's args is converted or refused with a
// message naming the argument, never a panic.
func FuzzConvertArgs(f *testing.F) {
	f.Add(`["1s", 3, true, "x", 1.5]`)
	f.Add(`[null]`)
	f.Add(`[{"a": [1]}, "soon", 1e300]`)
	f.Fuzz(func(t *testing.T, js string) {
		var raw []any
		if json.Unmarshal([]byte(js), &raw) != nil {
			return
		}
		m := &wire.MethodDesc{Name: "m", Args: []*wire.ArgDesc{{Name: "d", Type: wire.TypeDuration}, {Name: "i", Type: wire.TypeInt},
			{Name: "b", Type: wire.TypeBool, Optional: true}, {Name: "s", Type: wire.TypeBytes, Optional: true}, {Name: "f", Type: wire.TypeFloat, Optional: true}}}
		out, err := mcp.ConvertArgs("x.m", m, raw)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "x.m") {
				t.Fatalf("%s: error %q does not name the method", js, err)
			}
			return
		}
		if len(out) != len(raw) {
			t.Fatalf("%s: %d converted of %d", js, len(out), len(raw))
		}
	})
}
