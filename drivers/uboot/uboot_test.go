package uboot

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
	"go.yaml.in/yaml/v3"

	"jsn.dev/jsn/bus/wire"
	"jsn.dev/jsn/drivers/driver"
	"jsn.dev/jsn/drivers/drivertest"
	"jsn.dev/jsn/drivers/serial"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// board is a stand-in for a U-Boot console behind a serial driver, for the error paths the
// QEMU end-to-end test (drivers/flasher) cannot provoke: it counts autoboot down until a key
// arrives, then answers a few commands the way U-Boot's hush does (echo, printenv, setenv,
// sleep, test, unknown commands, `$?`). Real U-Boot is tested end to end in drivers/flasher.
type board struct {
	mu       sync.Mutex
	env      map[string]string
	silent   bool // print nothing at all
	dropConn bool // end the console stream at the next command
	booted   bool // autoboot was interrupted (a later connection finds the prompt)
}

func (b *board) Connect(ctx context.Context, s driver.Stream) error {
	b.mu.Lock()
	silent := b.silent
	b.mu.Unlock()
	lines := make(chan string)
	keys := make(chan struct{}, 1)
	go func() {
		defer close(lines)
		r := bufio.NewReader(s)
		var line []byte
		for {
			c, err := r.ReadByte()
			if err != nil {
				return
			}
			select {
			case keys <- struct{}{}:
			default:
			}
			switch c {
			case 3:
				line = nil
				if !silent {
					io.WriteString(s, "<INTERRUPT>\r\n=> ")
				}
			case '\n':
				select {
				case lines <- string(line):
				case <-ctx.Done():
					return
				}
				line = nil
			default:
				line = append(line, c)
			}
		}
	}()
	if silent {
		<-ctx.Done()
		return ctx.Err()
	}
	b.mu.Lock()
	booted := b.booted
	b.booted = true
	b.mu.Unlock()
	if !booted {
		io.WriteString(s, "U-Boot 2023.01\r\nHit any key to stop autoboot:  3 ")
		select {
		case <-keys:
		case <-ctx.Done():
			return ctx.Err()
		}
		io.WriteString(s, "\b\b\b 0 \r\n=> ")
	}
	status := 0
	for {
		var l string
		var ok bool
		select {
		case l, ok = <-lines:
		case <-ctx.Done():
			return ctx.Err()
		}
		if !ok {
			return nil
		}
		b.mu.Lock()
		drop := b.dropConn
		b.mu.Unlock()
		if drop {
			return wire.Errorf(wire.Unavailable, "serial: the device went away")
		}
		io.WriteString(s, l+"\r\n") // echo
		for _, c := range strings.Split(l, ";") {
			f := strings.Fields(strings.ReplaceAll(c, "$?", fmt.Sprint(status)))
			if len(f) == 0 {
				continue
			}
			status = 0
			switch f[0] {
			case "echo":
				io.WriteString(s, strings.Join(f[1:], " ")+"\r\n")
			case "printenv":
				b.mu.Lock()
				v, ok := b.env[f[1]]
				b.mu.Unlock()
				if ok {
					io.WriteString(s, f[1]+"="+v+"\r\n")
				} else {
					io.WriteString(s, "## Error: \""+f[1]+"\" not defined\r\n")
					status = 1
				}
			case "setenv":
				b.mu.Lock()
				b.env[f[1]] = strings.Trim(strings.Join(f[2:], " "), "'")
				b.mu.Unlock()
			case "sleep":
				select {
				case <-time.After(2 * time.Second):
				case <-ctx.Done():
					return ctx.Err()
				}
			case "test":
				status = 1
			default:
				io.WriteString(s, "Unknown command '"+f[0]+"' - try 'help'\r\n")
				status = 1
			}
		}
		io.WriteString(s, "=> ")
	}
}

func (b *board) SetBaudrate(context.Context, int64) error       { return nil }
func (b *board) SetDTR(context.Context, bool) error             { return nil }
func (b *board) SetRTS(context.Context, bool) error             { return nil }
func (b *board) SendBreak(context.Context, time.Duration) error { return nil }
func (b *board) Log(time.Time) []byte                           { return nil }
func (b *board) Info() serial.Status                            { return serial.Status{} }
func (b *board) Open(context.Context) error                     { return nil }
func (b *board) Reset(context.Context) error                    { return nil }
func (b *board) Close() error                                   { return nil }
func (b *board) Methods() []driver.Method                       { return serial.Methods(b, serial.Options{}) }

func newConsole(t *testing.T, b *board) *Console {
	t.Helper()
	c := NewConsole(drivertest.Env("uboot")).(*Console)
	if err := c.UseChildren(map[string]driver.Driver{"serial": b}); err != nil {
		t.Fatal(err)
	}
	return c
}

func TestConsoleAgainstStandIn(t *testing.T) {
	b := &board{env: map[string]string{"bootdelay": "3"}}
	c := newConsole(t, b)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := c.Interrupt(ctx); err != nil {
		t.Fatal(err)
	}
	r, err := c.Run(ctx, "echo hello world", nil)
	if err != nil || r.Output != "hello world\n" || r.Status != 0 {
		t.Fatalf("run echo: got %+v, %v", r, err)
	}
	if r, err := c.Run(ctx, "nosuch", nil); err != nil || r.Status != 1 || !strings.Contains(r.Output, "Unknown command") {
		t.Fatalf("unknown command: got %+v, %v", r, err)
	}
	if _, err := c.RunChecked(ctx, "nosuch arg", nil); wire.CodeOf(err) != wire.FailedPrecondition || !strings.Contains(err.Error(), `U-Boot command "nosuch arg" failed (status 1)`) {
		t.Fatalf("RunChecked: got %v", err)
	}
	if v, err := c.GetEnv(ctx, "bootdelay"); err != nil || v != "3" {
		t.Fatalf("get_env: %q %v", v, err)
	}
	if err := c.SetEnv(ctx, "x", "1 2"); err != nil {
		t.Fatal(err)
	}
	if v, err := c.GetEnv(ctx, "x"); err != nil || v != "1 2" {
		t.Fatalf("get_env after set_env: %q %v", v, err)
	}
	if _, err := c.GetEnv(ctx, "unset"); wire.CodeOf(err) != wire.NotFound {
		t.Fatalf("unset: %v", err)
	}
	for _, bad := range []struct{ name, value string }{{"a b", "x"}, {"", "x"}, {"ok", "it's"}, {"ok", "a\nb"}} {
		if err := c.SetEnv(ctx, bad.name, bad.value); wire.CodeOf(err) != wire.InvalidArgument {
			t.Errorf("set_env %q %q: got %v, want INVALID_ARGUMENT", bad.name, bad.value, err)
		}
	}
	if _, err := c.Run(ctx, "a\nb", nil); wire.CodeOf(err) != wire.InvalidArgument {
		t.Fatalf("two lines: %v", err)
	}
	// A command over its timeout is interrupted, and the next one works.
	sctx, scancel := context.WithTimeout(ctx, 300*time.Millisecond)
	_, err = c.Run(sctx, "sleep 2", nil)
	scancel()
	if wire.CodeOf(err) != wire.DeadlineExceeded || !strings.Contains(err.Error(), `"sleep 2"`) {
		t.Fatalf("timeout: got %v", err)
	}
	if r, err := c.Run(ctx, "echo again", nil); err != nil || r.Output != "again\n" {
		t.Fatalf("after a timeout: %+v %v", r, err)
	}
	// Streaming output.
	var got strings.Builder
	if _, err := c.Run(ctx, "echo streamed", func(b []byte) { got.Write(b) }); err != nil || !strings.Contains(got.String(), "streamed") {
		t.Fatalf("streamed output: %q %v", got.String(), err)
	}
	// The console going away mid-command is UNAVAILABLE.
	b.mu.Lock()
	b.dropConn = true
	b.mu.Unlock()
	if _, err := c.Run(ctx, "echo x", nil); wire.CodeOf(err) != wire.Unavailable {
		t.Fatalf("console gone: got %v, want UNAVAILABLE", err)
	}
}

func TestConsoleNoPrompt(t *testing.T) {
	c := newConsole(t, &board{silent: true})
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	err := c.Interrupt(ctx)
	if wire.CodeOf(err) != wire.DeadlineExceeded || !strings.Contains(err.Error(), `no U-Boot prompt "=>" in time`) {
		t.Fatalf("got %v, want DEADLINE_EXCEEDED naming the prompt", err)
	}
	if err := c.RebootToConsole(context.Background()); wire.CodeOf(err) != wire.FailedPrecondition {
		t.Fatalf("reboot without power: got %v", err)
	}
}

func TestConsoleConfig(t *testing.T) {
	for _, tc := range []struct{ src, want string }{
		{"type: jumpstarter_driver_uboot.driver.UbootConsole\n  config: {prompt: '=>'}\n  children: {serial: {type: power.Mock}}", `child "serial" must be a jsn.serial.v1 driver`},
		{"type: uboot.Console", `child "serial" is required`},
		{"type: uboot.Console\n  config: {prompt: ' '}", "prompt: must not be empty"},
		{"type: uboot.Console\n  config: {boot_timeout: 0}", "boot_timeout: must be more than 0"},
		{"type: uboot.Console\n  config: {interrupt: ''}", "interrupt: want the keys"},
	} {
		var doc yaml.Node
		if err := yaml.Unmarshal([]byte("u:\n  "+tc.src), &doc); err != nil {
			t.Fatal(err)
		}
		_, err := driver.Build("exporter.yaml", doc.Content[0], driver.BuildOptions{})
		if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "exporter.yaml:") {
			t.Errorf("%s: got %v, want a positioned error containing %q", tc.src, err, tc.want)
		}
	}
}

func TestCommandOutput(t *testing.T) {
	tok := "0123456789ab"
	raw := "printenv x; echo jsn-rc-" + tok + "=$?\r\nx=1\r\njsn-rc-" + tok + "=0\r\n"
	if got := commandOutput([]byte(raw), tok); got != "x=1\n" {
		t.Fatalf("got %q", got)
	}
	v, err := parsePrintenv("x", Result{Output: "x=a=b\n"})
	if err != nil || v != "a=b" {
		t.Fatalf("printenv: %q %v", v, err)
	}
}

func FuzzConsoleOutput(f *testing.F) {
	f.Add([]byte("cmd; echo jsn-rc-0123456789ab=$?\r\nout\r\njsn-rc-0123456789ab=1\r\n=> "), "x")
	f.Add([]byte("## Error: \"x\" not defined\r\n"), "x")
	f.Fuzz(func(t *testing.T, b []byte, name string) {
		out := commandOutput(b, "0123456789ab")
		_, _ = parsePrintenv(name, Result{Output: out})
		_ = rcRE.FindAllSubmatchIndex(b, -1)
		_, _ = ParseResult(map[string]any{"output": out, "status": int64(len(b))})
	})
}

var _ serial.Device = (*board)(nil)
