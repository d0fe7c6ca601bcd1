package mcpcmd_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	sdk "github.com/modelcontextprotocol/go-sdk/mcp"

	"jsn.dev/jsn/client/mcp/mcptest"
	"jsn.dev/jsn/cmd/jsn/jsntest"
	"jsn.dev/jsn/internal/testkit"
)

// The MCP Inspector CLI (npm @modelcontextprotocol/inspector, pinned in testdata/inspector) is
// the MCP client written by others these tests drive jsn mcp with. .ci/run installs it (npm ci).
const inspectorDir = "testdata/inspector"

func inspectorBin(t *testing.T) string {
	t.Helper()
	bin, _ := filepath.Abs(filepath.Join(inspectorDir, "node_modules", ".bin", "mcp-inspector"))
	if _, err := os.Stat(bin); err != nil {
		msg := "the MCP Inspector CLI is not installed: run `npm ci` in cmd/jsn/mcpcmd/" + inspectorDir + " (.ci/run does)"
		if os.Getenv("CI") != "" || os.Getenv("JSN_CI") != "" || os.Geteuid() == 0 {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	return bin
}

// inspect runs the Inspector CLI once against a server (stdio: jsn with server args; http:
// "--transport", "http", …) with method and tool arguments, and returns its output and whether
// the tool call failed (isError) or the Inspector did.
type inspection struct {
	out     string
	isError bool
	code    int
}

func inspect(t *testing.T, env []string, server []string, method string, args ...string) inspection {
	t.Helper()
	argv := append([]string{"--cli"}, server...)
	argv = append(argv, "--method", method)
	argv = append(argv, args...)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, inspectorBin(t), argv...)
	cmd.Env = append(jsntest.Env(), env...)
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = 10 * time.Second
	out, err := cmd.CombinedOutput()
	r := inspection{out: string(out)}
	if ee, ok := err.(*exec.ExitError); ok {
		r.code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("inspector %q: %v", argv, err)
	}
	var res struct {
		IsError bool `json:"isError"`
	}
	if json.Unmarshal(out, &res) == nil {
		r.isError = res.IsError
	}
	return r
}

// tool runs tools/call name with key=value arguments.
func tool(t *testing.T, env, server []string, name string, kv ...string) inspection {
	t.Helper()
	args := []string{"--tool-name", name}
	for _, a := range kv {
		args = append(args, "--tool-arg", a)
	}
	return inspect(t, env, server, "tools/call", args...)
}

func (r inspection) want(t *testing.T, what string, isError bool, substr ...string) {
	t.Helper()
	if r.code != 0 || r.isError != isError {
		t.Errorf("%s: exit %d, isError %v (want %v):\n%s", what, r.code, r.isError, isError, r.out)
		return
	}
	for _, s := range substr {
		if !strings.Contains(r.out, s) {
			t.Errorf("%s: output lacks %q:\n%s", what, s, r.out)
		}
	}
}

// jsonText is how a string appears inside the Inspector's JSON output.
func jsonText(s string) string {
	b, _ := json.Marshal(s)
	return strings.Trim(string(b), `"`)
}

func writeLab(t *testing.T, name string) string {
	t.Helper()
	file := filepath.Join(t.TempDir(), "lab.yaml")
	if err := os.WriteFile(file, []byte(mcptest.Config(t, name)), 0o600); err != nil {
		t.Fatal(err)
	}
	return file
}

// TestInspectorLocalSession: the MCP Inspector drives jsn mcp -c lab.yaml, and jsn mcp run
// inside jsn shell -c, over stdio — including the mistakes an agent makes.
func TestInspectorLocalSession(t *testing.T) {
	if testing.Short() {
		t.Skip("runs node and jsn processes")
	}
	inspectorBin(t)
	lab := writeLab(t, "board1")
	jsn := jsntest.Binary(t)
	srv := []string{jsn, "mcp", "-c", lab}

	r := inspect(t, nil, srv, "tools/list")
	r.want(t, "tools/list", false, `"name": "list_exporters"`, `"name": "request_lease"`, `"name": "release_lease"`, `"name": "describe"`,
		`"name": "call"`, `"name": "console_expect"`, `"name": "console_log"`, `"name": "flash"`, `"name": "screenshot"`)
	tool(t, nil, srv, "list_exporters").want(t, "list_exporters", false, `"name": "board1"`)
	tool(t, nil, srv, "describe").want(t, "describe", false, `"interface": "jsn.serial.v1"`, `"args": "rate:int"`)
	tool(t, nil, srv, "call", "driver=power", "method=on").want(t, "call power.on", false, `"result": null`)
	tool(t, nil, srv, "call", "driver=power", "method=explode").want(t, "bad method", true,
		jsonText(`driver power has no method "explode"; its methods: on, off, cycle, status`))
	tool(t, nil, srv, "call", "driver=console", "method=set_baudrate", `args=["fast"]`).want(t, "wrong type", true,
		jsonText(`console.set_baudrate: argument 1 (rate): want int, got string "fast"`))
	tool(t, nil, srv, "call", "driver=power", "method=on", "args=[1, 2]").want(t, "too many arguments", true,
		"power.on takes 0 arguments (none), got 2")
	tool(t, nil, srv, "call", "driver=nope", "method=on").want(t, "bad driver", true,
		jsonText(`no driver "nope" on exporter board1; drivers: power, console, sd, screen`))
	tool(t, nil, srv, "console_log").want(t, "console_log", false, "Hit any key to stop autoboot")
	tool(t, nil, srv, "console_expect", "send=version\n", `pattern=U-Boot \d+\.\d+-jsn \(`, "timeout=20s").want(t, "console_expect", false,
		`"match": "U-Boot 2024.01-jsn ("`)
	tool(t, nil, srv, "console_expect", "pattern=never printed", "timeout=1s").want(t, "console_expect timeout", true,
		jsonText(`console console: "never printed" not seen within 1s`))
	tool(t, nil, srv, "screenshot").want(t, "screenshot", false, `"type": "image"`, `"mimeType": "image/png"`)
	tool(t, nil, srv, "release_lease").want(t, "release_lease in a local session", true,
		"is a local session's: it ends when the session (jsn shell, jsn mcp -c) ends")

	// The way an agent's config names the server (docs/operations.md, "MCP server").
	agentCfg := filepath.Join(t.TempDir(), "mcp.json")
	b, _ := json.Marshal(map[string]any{"mcpServers": map[string]any{"jsn": map[string]any{"command": jsn, "args": []string{"mcp", "-c", lab}}}})
	if err := os.WriteFile(agentCfg, b, 0o600); err != nil {
		t.Fatal(err)
	}
	tool(t, nil, []string{"--config", agentCfg, "--server", "jsn"}, "call", "driver=power", "method=status").want(t, "from an agent config", false, `"result": "off"`)

	// jsn mcp inside jsn shell -c: the session's own lease.
	shell := []string{jsn, "shell", "-c", lab, "--", jsn, "mcp"}
	tool(t, nil, shell, "call", "driver=power", "method=status").want(t, "call in jsn shell", false, `"result": "off"`)
	tool(t, nil, shell, "console_log").want(t, "console_log in jsn shell", false, "Hit any key to stop autoboot")
}

// controllerLab is a controller and an exporter (the MCP test board) run as jsn processes, and
// the environment with the admin config current.
type controllerLab struct {
	env []string
	dir string
}

func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

func background(t *testing.T, env []string, log string, args ...string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(jsntest.Binary(t), args...)
	cmd.Env = env
	f, err := os.Create(log)
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
		f.Close()
		if t.Failed() {
			b, _ := os.ReadFile(log)
			t.Logf("%s:\n%s", log, b)
		}
	})
	return cmd
}

func startController(t *testing.T) *controllerLab {
	t.Helper()
	dir := t.TempDir()
	l := &controllerLab{dir: dir, env: append(jsntest.Env(), "XDG_CONFIG_HOME="+filepath.Join(dir, "xdg"))}
	port := freePort(t)
	endpoint := fmt.Sprintf("nats://127.0.0.1:%d", port)
	data := filepath.Join(dir, "data")
	l.jsn(t, "controller", "init", "--data", data, "--endpoint", endpoint).Want(t, 0)
	background(t, l.env, filepath.Join(dir, "controller.log"), "controller", "run", "--data", data, "--listen", fmt.Sprintf("127.0.0.1:%d", port))
	testkit.CheckFor(t, 30*time.Second, func() error {
		if r := l.jsn(t, "admin", "list", "client"); r.Code != 0 {
			return fmt.Errorf("the controller does not answer yet: %s", r.Stderr)
		}
		return nil
	})
	file := filepath.Join(dir, "board2.yaml")
	l.jsn(t, "admin", "create", "exporter", "board2", "-l", "board=mcp", "--out", file).Want(t, 0)
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	if i := strings.Index(s, "export:"); i >= 0 {
		s = s[:i]
	}
	board := mcptest.Config(t, "board2")
	if err := os.WriteFile(file, []byte(s+board[strings.Index(board, "export:"):]), 0o600); err != nil {
		t.Fatal(err)
	}
	background(t, l.env, filepath.Join(dir, "exporter.log"), "exporter", "run", "-c", file)
	testkit.CheckFor(t, 30*time.Second, func() error {
		r := l.jsn(t, "get", "exporters", "-o", "json")
		if !strings.Contains(r.Stdout, `"online": true`) && !strings.Contains(r.Stdout, `"online":true`) {
			return fmt.Errorf("exporter board2 not online yet: %s %s", r.Stdout, r.Stderr)
		}
		return nil
	})
	return l
}

func (l *controllerLab) jsn(t *testing.T, args ...string) jsntest.Result {
	t.Helper()
	return jsntest.Run(t, jsntest.Options{Env: l.env}, args...)
}

// TestInspectorController: the MCP Inspector drives jsn mcp against a controller (the admin's
// client config), over stdio and over streamable HTTP with a bearer token.
func TestInspectorController(t *testing.T) {
	if testing.Short() {
		t.Skip("runs node, a controller and an exporter")
	}
	inspectorBin(t)
	l := startController(t)
	jsn := jsntest.Binary(t)
	// The Inspector passes the server only a few variables of its own environment: -e adds ours.
	srv := []string{"-e", "XDG_CONFIG_HOME=" + filepath.Join(l.dir, "xdg"), jsn, "mcp"}

	tool(t, nil, srv, "list_exporters").want(t, "list_exporters", false, `"name": "board2"`, `"online": true`)
	tool(t, nil, srv, "call", "driver=power", "method=on").want(t, "call without a lease", true,
		"no lease: request one first with request_lease (list_exporters shows which exporters are free)")
	tool(t, nil, srv, "request_lease", "exporter=board2", "duration=5m").want(t, "request_lease", false, `"status": "active"`, `"exporter": "board2"`)
	tool(t, nil, srv, "request_lease", "exporter=nosuch").want(t, "request_lease of no exporter", true,
		"request_lease: NOT_FOUND: lease request: no registered exporter matches exporter nosuch")
	tool(t, nil, srv, "request_lease", "selector=board=mcp", "duration=forever").want(t, "request_lease bad duration", true,
		jsonText(`duration "forever": want a duration like 30s, 5m or 1h`))
	tool(t, nil, srv, "request_lease", "exporter=board2", "duration=99h").want(t, "request_lease too long", true,
		"exceeds the controller's maximum of 24h0m0s")
	// Each run above released its lease as its server ended: board2 is free again.
	testkit.CheckFor(t, 20*time.Second, func() error {
		r := l.jsn(t, "lease", "list", "--all", "-o", "json")
		if strings.Contains(r.Stdout, `"status": "active"`) || r.Code != 0 {
			return fmt.Errorf("a lease is still held: %s %s", r.Stdout, r.Stderr)
		}
		return nil
	})

	// Streamable HTTP on loopback with a token.
	cmd := exec.Command(jsn, "mcp", "--http", "127.0.0.1:0")
	cmd.Env = append(l.env, "JSN_MCP_TOKEN=t0ken")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Signal(syscall.SIGTERM); _ = cmd.Wait() })
	line, err := bufio.NewReader(stderr).ReadString('\n')
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`serving (http://\S+)`).FindStringSubmatch(line)
	if m == nil {
		t.Fatalf("jsn mcp --http printed %q", line)
	}
	url := m[1]
	httpSrv := []string{url, "--transport", "http", "--header", "Authorization: Bearer t0ken"}
	inspect(t, nil, httpSrv, "tools/call", "--tool-name", "list_exporters").want(t, "list_exporters over HTTP", false, `"name": "board2"`)
	if r := inspect(t, nil, []string{url, "--transport", "http", "--header", "Authorization: Bearer wrong"}, "tools/list"); r.code == 0 {
		t.Errorf("a wrong token was accepted:\n%s", r.out)
	}
	if resp, err := http.Post(url, "application/json", strings.NewReader(`{}`)); err != nil || resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("no token: %v %v, want 401", resp, err)
	}
	if r := l.jsn(t, "mcp", "--http", "0.0.0.0:0"); r.Code != 2 || !strings.Contains(r.Stderr, "only a loopback address") {
		t.Errorf("jsn mcp --http 0.0.0.0:0: exit %d %q, want a usage error", r.Code, r.Stderr)
	}
}

// TestGoClientController: an agent's whole session through the Go SDK's client against jsn mcp
// (a process, on stdio) and a controller: lease, describe, call, expect, release; the audit log
// then shows the calls.
func TestGoClientController(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a controller and an exporter")
	}
	l := startController(t)
	cmd := exec.Command(jsntest.Binary(t), "mcp")
	cmd.Env = l.env
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cs, err := sdk.NewClient(&sdk.Implementation{Name: "test", Version: "1"}, nil).Connect(ctx, &sdk.CommandTransport{Command: cmd}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer cs.Close()
	call := func(name string, args map[string]any) (string, bool) {
		r, err := cs.CallTool(ctx, &sdk.CallToolParams{Name: name, Arguments: args})
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		var s []string
		for _, c := range r.Content {
			if tc, ok := c.(*sdk.TextContent); ok {
				s = append(s, tc.Text)
			}
		}
		return strings.Join(s, "\n"), r.IsError
	}
	s, failed := call("request_lease", map[string]any{"selector": "board=mcp", "duration": "10m", "wait": "30s"})
	var lease struct{ Lease, Exporter, Status string }
	if failed || json.Unmarshal([]byte(s), &lease) != nil || lease.Status != "active" || lease.Exporter != "board2" {
		t.Fatalf("request_lease: %s", s)
	}
	if s, failed := call("call", map[string]any{"driver": "power", "method": "on"}); failed {
		t.Fatalf("call power.on: %s", s)
	}
	if s, failed := call("call", map[string]any{"driver": "power", "method": "status"}); failed || s != `{"result":"on"}` {
		t.Errorf("call power.status: %s", s)
	}
	if s, failed := call("console_expect", map[string]any{"send": "echo hi there\n", "pattern": "hi there\r?\n=> ", "timeout": "20s"}); failed {
		t.Errorf("console_expect: %s", s)
	}
	if s, failed := call("call", map[string]any{"driver": "console", "method": "set_baudrate", "args": []any{true}}); !failed ||
		!strings.Contains(s, "console.set_baudrate: argument 1 (rate): want int, got boolean true") {
		t.Errorf("wrong type: %s", s)
	}
	if s, failed := call("release_lease", nil); failed || !strings.Contains(s, lease.Lease) {
		t.Fatalf("release_lease: %s", s)
	}
	if s, failed := call("describe", nil); !failed || !strings.Contains(s, "no lease: request one first") {
		t.Errorf("describe after release: %s", s)
	}
	testkit.CheckFor(t, 10*time.Second, func() error {
		r := l.jsn(t, "audit", "--lease", lease.Lease)
		for _, w := range []string{"grant", "power.on", "power.status", "console.connect", "release"} {
			if !strings.Contains(r.Stdout, w) {
				return fmt.Errorf("jsn audit --lease %s lacks %s:\n%s%s", lease.Lease, w, r.Stdout, r.Stderr)
			}
		}
		return nil
	})
}
