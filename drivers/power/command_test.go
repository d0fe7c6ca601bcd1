package power

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"jsn.dev/jsn/bus/wire"
	"jsn.dev/jsn/drivers/driver"
	"jsn.dev/jsn/drivers/drivertest"
)

// backendsDir is the absolute path of the backends' test data.
func backendsDir(t *testing.T) string {
	t.Helper()
	d, err := filepath.Abs("testdata/backends")
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// buildOne builds the driver node "p" from src (its type/config YAML), validates and opens it.
// A non-empty wantErr expects a positioned config error containing it and returns nil.
func buildOne(t *testing.T, src, wantErr string) driver.Driver {
	t.Helper()
	var doc yaml.Node
	if err := yaml.Unmarshal([]byte("p:\n  "+strings.ReplaceAll(src, "\n", "\n  ")), &doc); err != nil {
		t.Fatalf("yaml: %v\n%s", err, src)
	}
	tree, err := driver.Build("exporter.yaml", doc.Content[0], driver.BuildOptions{Dir: backendsDir(t)})
	if wantErr != "" {
		if err == nil || !strings.Contains(err.Error(), wantErr) || !strings.Contains(err.Error(), "exporter.yaml:") {
			t.Fatalf("%s:\ngot %v, want a positioned error containing %q", src, err, wantErr)
		}
		return nil
	}
	if err != nil {
		t.Fatalf("%s:\n%v", src, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := tree.Open(ctx); err != nil {
		t.Fatalf("open: %v", err)
	}
	t.Cleanup(func() { tree.Close() })
	return tree.Find("p").Driver
}

func call(t *testing.T, d driver.Driver, method string, args ...any) {
	t.Helper()
	if _, err := drivertest.CallMethod(context.Background(), d, method, args...); err != nil {
		t.Fatalf("%s: %v", method, err)
	}
}

func wantCode(t *testing.T, err error, code wire.Code, msg string) {
	t.Helper()
	if got := wire.CodeOf(err); got != code || !strings.Contains(err.Error(), msg) {
		t.Fatalf("got %v (%v), want %s containing %q", got, err, code, msg)
	}
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	return string(b)
}

func TestCommandConfig(t *testing.T) {
	tests := []struct {
		src     string
		wantErr string
	}{
		{"type: power.Command\nconfig: {on: a, off: b}", ""},
		{"type: power.Command\nconfig: {on: a, off: b, status: c, status_on: '(?i)on', shell: [bash, -c], timeout: 2s, env: {A: b}, reset: leave}", ""},
		{"type: power.Command\nconfig: {off: b}", `missing required field "on"`},
		{"type: power.Command\nconfig: {on: a, off: ' '}", "off: must not be empty"},
		{"type: power.Command\nconfig: {on: a, off: b, status_on: '('}", "status_on"},
		{"type: power.Command\nconfig: {on: a, off: b, shell: []}", "shell"},
		{"type: power.Command\nconfig: {on: a, off: b, timeout: 0s}", "timeout: must be positive"},
		{"type: power.Command\nconfig: {on: a, off: b, cycle_wait: -1s}", "cycle_wait"},
		{"type: power.Command\nconfig: {on: a, off: b, reset: maybe}", `reset: want "off", "on" or "leave"`},
		{"type: power.Command\nconfig: {on: a, off: b, env: {'A=B': c}}", "env: bad variable name"},
		{"type: power.Command\nconfig: {on: a, off: b, statuss: c}", `unknown field "statuss" (did you mean "status"?)`},
	}
	for _, tt := range tests {
		buildOne(t, tt.src, tt.wantErr)
	}
}

func commandDriver(t *testing.T, extra string) (driver.Driver, string) {
	t.Helper()
	state := t.TempDir()
	src := `type: power.Command
config:
  on: ./relay.sh on
  off: ./relay.sh off
  env: {RELAY_STATE: ` + strconv.Quote(state) + `}` + extra
	return buildOne(t, src, ""), state
}

func TestCommandOnOffStatus(t *testing.T) {
	// With a status command the state comes from its output; without, it is assumed.
	for _, withStatus := range []bool{true, false} {
		extra := ""
		if withStatus {
			extra = "\n  status: ./relay.sh status\n  status_on: 'is on$'"
		}
		d, state := commandDriver(t, extra)
		steps := []struct{ method, want string }{
			{"status", "off"}, {"on", "on"}, {"off", "off"}, {"on", "on"},
		}
		for i, st := range steps {
			if st.method != "status" {
				call(t, d, st.method)
			}
			if got := status(t, d); got != st.want {
				t.Fatalf("status=%v step %d: after %s: got %q, want %q", withStatus, i, st.method, got, st.want)
			}
			if st.method != "status" {
				if got := strings.TrimSpace(readFile(t, filepath.Join(state, "state"))); got != st.want {
					t.Fatalf("relay state after %s: got %q, want %q", st.method, got, st.want)
				}
			}
		}
		if err := d.Reset(context.Background()); err != nil {
			t.Fatalf("Reset: %v", err)
		}
		if got := strings.TrimSpace(readFile(t, filepath.Join(state, "state"))); got != "off" {
			t.Fatalf("relay after Reset: got %q, want off", got)
		}
		log := readFile(t, filepath.Join(state, "log"))
		if !strings.Contains(log, "on action=on wait=\n") || !strings.Contains(log, "off action=off wait=\n") {
			t.Fatalf("relay log: got %q, want JSN_POWER_ACTION set", log)
		}
	}
}

func TestCommandResetLeave(t *testing.T) {
	d, state := commandDriver(t, "\n  reset: leave")
	call(t, d, "on")
	if err := d.Reset(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := strings.TrimSpace(readFile(t, filepath.Join(state, "state"))); got != "on" {
		t.Fatalf("relay after Reset with reset: leave: got %q, want on", got)
	}
}

func TestCommandCycle(t *testing.T) {
	// Default cycle: off, wait, on.
	d, state := commandDriver(t, "")
	call(t, d, "cycle", time.Millisecond)
	if got, want := readFile(t, filepath.Join(state, "log")), "off action=off wait=\non action=on wait=\n"; got != want {
		t.Fatalf("default cycle: got log %q, want %q", got, want)
	}
	// A cycle command gets the wait in seconds.
	d, state = commandDriver(t, "\n  cycle: ./relay.sh cycle")
	call(t, d, "cycle", 1500*time.Millisecond)
	if got, want := readFile(t, filepath.Join(state, "log")), "cycle action=cycle wait=1.5\n"; got != want {
		t.Fatalf("cycle command: got log %q, want %q", got, want)
	}
	if got := status(t, d); got != "on" {
		t.Fatalf("after cycle: got %q, want on", got)
	}
}

func TestCommandFailures(t *testing.T) {
	dir := t.TempDir()
	pidFile := filepath.Join(dir, "pid")
	d := buildOne(t, `type: power.Command
config:
  on: "echo partial; echo 'hub 1-1 not found' >&2; exit 3"
  off: "no-such-program-jsn-test"
  status: "sleep 600 & echo $! > `+pidFile+`; wait"
  timeout: 300ms`, "")
	ctx := context.Background()
	_, err := drivertest.CallMethod(ctx, d, "on")
	wantCode(t, err, wire.Unavailable, "exited with status 3: hub 1-1 not found")
	_, err = drivertest.CallMethod(ctx, d, "off")
	wantCode(t, err, wire.Unavailable, "exited with status 127")
	_, err = drivertest.CallMethod(ctx, d, "status")
	wantCode(t, err, wire.DeadlineExceeded, "did not finish within 300ms")
	// The grandchild (the backgrounded sleep) died with the group.
	pid, err := strconv.Atoi(strings.TrimSpace(readFile(t, pidFile)))
	if err != nil {
		t.Fatalf("pid file: %v", err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for syscall.Kill(pid, 0) == nil {
		if time.Now().After(deadline) {
			t.Fatalf("process %d of the timed-out group still runs", pid)
		}
		time.Sleep(10 * time.Millisecond)
	}
	_, err = drivertest.CollectStream(ctx, d, "read", int64(1))
	wantCode(t, err, wire.Unimplemented, "cannot measure")

	// A shell that does not exist.
	d = buildOne(t, "type: power.Command\nconfig: {on: x, off: y, shell: [/no/such/shell, -c]}", "")
	_, err = drivertest.CallMethod(ctx, d, "on")
	wantCode(t, err, wire.Unavailable, "no such file")

	// A caller that goes away cancels the command.
	d = buildOne(t, "type: power.Command\nconfig: {on: sleep 600, off: y}", "")
	cctx, cancel := context.WithCancel(ctx)
	time.AfterFunc(50*time.Millisecond, cancel)
	_, err = drivertest.CallMethod(cctx, d, "on")
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled on: got %v, want context.Canceled", err)
	}
}

func TestTailBuffer(t *testing.T) {
	tb := &tailBuffer{max: 4}
	for _, s := range []string{"ab", "cd", "efg", "hijklmn"} {
		tb.Write([]byte(s))
	}
	if got := tb.String(); got != "klmn" {
		t.Fatalf("got %q, want %q", got, "klmn")
	}
}
