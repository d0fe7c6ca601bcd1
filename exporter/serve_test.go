package exporter

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"jsn.dev/jsn/bus"
	"jsn.dev/jsn/bus/wire"
	"jsn.dev/jsn/client"
	"jsn.dev/jsn/drivers/driver"
	"jsn.dev/jsn/internal/testkit"
)

// probe is a test driver with a slow method, a blocking stream, a panicking method and a reset
// counter, to exercise the exporter's serving rules.
type probe struct {
	Name    string `yaml:"name"`
	resets  atomic.Int32
	release chan struct{}
	entered chan struct{} // slow signals here when it starts
	absent  atomic.Value  // string: why the device is unavailable, "" when present
	tap     func([]byte)
}

func (p *probe) Unavailable() string { s, _ := p.absent.Load().(string); return s }

func (p *probe) Open(context.Context) error {
	p.release, p.entered = make(chan struct{}), make(chan struct{}, 16)
	return nil
}
func (p *probe) Reset(context.Context) error {
	p.resets.Add(1)
	return nil
}
func (p *probe) Close() error { return nil }
func (p *probe) Methods() []driver.Method {
	return []driver.Method{
		{Name: "echo", Kind: driver.KindCall, Args: []driver.Arg{{Name: "s", Type: driver.TypeString}, {Name: "n", Type: driver.TypeInt}}, Returns: driver.TypeString,
			Call: func(_ context.Context, a driver.Args) (any, error) {
				return strings.Repeat(a.String(0), int(a.Int(1))), nil
			}},
		{Name: "say", Kind: driver.KindCall, Args: []driver.Arg{{Name: "s", Type: driver.TypeString}},
			Call: func(_ context.Context, a driver.Args) (any, error) { p.tap([]byte(a.String(0))); return nil, nil }},
		{Name: "slow", Kind: driver.KindCall,
			Call: func(ctx context.Context, _ driver.Args) (any, error) {
				p.entered <- struct{}{}
				select {
				case <-p.release:
					return "released", nil
				case <-ctx.Done():
					return nil, wire.Errorf(wire.FailedPrecondition, "slow: %v", ctx.Err())
				}
			}},
		{Name: "boom", Kind: driver.KindCall,
			Call: func(context.Context, driver.Args) (any, error) { panic("kaboom") }},
		{Name: "resets", Kind: driver.KindCall, Returns: driver.TypeInt,
			Call: func(context.Context, driver.Args) (any, error) { return int64(p.resets.Load()), nil }},
		{Name: "ticks", Kind: driver.KindServerStream, Returns: driver.TypeInt,
			Stream: func(ctx context.Context, _ driver.Args, send func(any) error) error {
				for i := int64(0); ; i++ {
					if err := send(i); err != nil {
						return err
					}
					select {
					case <-ctx.Done():
						return ctx.Err()
					case <-time.After(time.Millisecond):
					}
				}
			}},
	}
}

func init() {
	driver.MustRegister(driver.Info{Type: "extest.Probe", Interface: "jsn.extest.v1", Doc: "exporter test probe",
		New: func(env driver.Env) driver.Driver { return &probe{tap: env.Tap} }})
}

const probeConfig = `apiVersion: jsn.dev/v1alpha1
kind: ExporterConfig
metadata: {name: lab1}
export:
  a: {type: extest.Probe}
  b: {type: extest.Probe}
`

func startLocal(t *testing.T) (*Local, *client.Client) {
	t.Helper()
	cfg, err := ParseConfig("lab1.yaml", []byte(probeConfig))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	l, err := StartLocal(ctx, cfg, LocalOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.Close() })
	c, err := client.Connect(ctx, l.URL, "tester")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return l, c
}

func TestCallErrors(t *testing.T) {
	l, c := startLocal(t)
	ctx := context.Background()
	good := c.Exporter(l.Exporter, l.Lease)
	tests := []struct {
		name    string
		ex      *client.Exporter
		path    string
		method  string
		args    []any
		wantErr error
		wantMsg string
	}{
		{"ok", good, "a", "echo", []any{"ab", 2}, nil, ""},
		{"no driver", good, "zz", "echo", nil, client.ErrNotFound, `no driver "zz" on exporter lab1; drivers: a, b`},
		{"no method", good, "a", "nope", nil, client.ErrNotFound, `driver a has no method "nope"; methods: `},
		{"too few args", good, "a", "echo", []any{"x"}, client.ErrInvalidArgument, "echo"},
		{"wrong type", good, "a", "echo", []any{"x", "y"}, client.ErrInvalidArgument, "argument 2 (n)"},
		{"wrong lease", c.Exporter(l.Exporter, "stolen"), "a", "echo", []any{"x", 1}, client.ErrPermissionDenied, `lease "stolen" is not the current lease`},
		{"no lease", c.Exporter(l.Exporter, ""), "a", "echo", []any{"x", 1}, client.ErrPermissionDenied, "no Jsn-Lease header"},
		{"panic", good, "a", "boom", nil, client.ErrInternal, "driver panicked: kaboom"},
		{"no such exporter", c.Exporter("ghost", l.Lease), "a", "echo", []any{"x", 1}, client.ErrUnavailable, "nobody is serving"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.ex.Driver(tt.path).Call(ctx, tt.method, tt.args...)
			if tt.wantErr == nil {
				if err != nil || got != "abab" {
					t.Fatalf("got %v, %v; want abab", got, err)
				}
				return
			}
			if !errors.Is(err, tt.wantErr) || !strings.Contains(err.Error(), tt.wantMsg) {
				t.Fatalf("got %v, want %v containing %q", err, tt.wantErr, tt.wantMsg)
			}
		})
	}
	// After all that, the exporter still serves.
	if got, err := good.Driver("b").Call(ctx, "echo", "z", 3); err != nil || got != "zzz" {
		t.Fatalf("after errors: got %v, %v; want zzz", got, err)
	}
}

// TestGarbageBodies sends raw bodies the Go client would never produce.
func TestGarbageBodies(t *testing.T) {
	l, _ := startLocal(t)
	raw, err := bus.Connect(context.Background(), l.URL, "raw")
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	hdr := wire.Header{wire.HeaderLease: {l.Lease}}
	for _, body := range [][]byte{
		{0xc1},                         // reserved code
		{0xdd, 0xff, 0xff, 0xff, 0xff}, // array claiming 4 billion items
		{0x81, 0xa1, 'a', 0x01},        // a map, not an array
		make([]byte, 2<<20),            // over the max payload
	} {
		_, err := raw.Request(context.Background(), wire.CallSubject(l.Exporter, "a", "echo"), hdr, body)
		if !errors.Is(err, wire.ErrInvalidArgument) {
			t.Errorf("body % x…: got %v, want INVALID_ARGUMENT", body[:min(len(body), 5)], err)
		}
	}
	// A call subject with no method.
	_, err = raw.Request(context.Background(), "jsn.x."+l.Exporter+".call.a", hdr, nil)
	if !errors.Is(err, wire.ErrNotFound) {
		t.Errorf("got %v, want NOT_FOUND for a subject without a method", err)
	}
	// A stream method called as a plain call, and a plain call opened as a stream.
	_, err = raw.Request(context.Background(), wire.CallSubject(l.Exporter, "a", "ticks"), hdr, nil)
	if !errors.Is(err, wire.ErrInvalidArgument) || !strings.Contains(err.Error(), "open a stream") {
		t.Errorf("got %v, want INVALID_ARGUMENT about streams", err)
	}
}

func TestSlowCallDoesNotBlockOthers(t *testing.T) {
	l, c := startLocal(t)
	ex := c.Exporter(l.Exporter, l.Lease)
	done := make(chan error, 1)
	go func() {
		_, err := ex.Driver("a").Call(context.Background(), "slow")
		done <- err
	}()
	// While a.slow is pending, many calls to b and to a itself complete.
	for i := 0; i < 50; i++ {
		if _, err := ex.Driver("b").Call(context.Background(), "echo", "x", 1); err != nil {
			t.Fatal(err)
		}
		if _, err := ex.Driver("a").Call(context.Background(), "echo", "x", 1); err != nil {
			t.Fatal(err)
		}
	}
	select {
	case err := <-done:
		t.Fatalf("slow call returned early: %v", err)
	default:
	}
	close(l.ex.tree.Find("a").Driver.(*probe).release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

func TestLeaseEndResetsDriversAndStreams(t *testing.T) {
	l, c := startLocal(t)
	ctx := context.Background()
	ex := c.Exporter(l.Exporter, l.Lease)
	var before int64
	if err := ex.Driver("a").CallInto(ctx, "resets", &before); err != nil {
		t.Fatal(err)
	}
	if before != 1 {
		t.Fatalf("got %d resets at lease start, want 1", before)
	}
	items, err := ex.Driver("a").Stream(ctx, "ticks")
	if err != nil {
		t.Fatal(err)
	}
	var n int64
	if err := items.Next(&n); err != nil {
		t.Fatal(err)
	}
	slow := make(chan error, 1)
	go func() { _, err := ex.Driver("b").Call(ctx, "slow"); slow <- err }()
	<-l.ex.tree.Find("b").Driver.(*probe).entered

	if err := l.ex.EndLease(ctx, l.Lease); err != nil {
		t.Fatal(err)
	}
	// The open stream ends with the lease.
	for {
		err = items.Next(&n)
		if err != nil {
			break
		}
	}
	if !errors.Is(err, client.ErrPermissionDenied) || !strings.Contains(err.Error(), "ended") {
		t.Fatalf("stream: got %v, want PERMISSION_DENIED lease ended", err)
	}
	// The call in flight is cancelled.
	if err := <-slow; !errors.Is(err, client.ErrFailedPrecondition) {
		t.Fatalf("slow call: got %v, want it cancelled", err)
	}
	// New calls with the old lease are refused.
	if _, err := ex.Driver("a").Call(ctx, "echo", "x", 1); !errors.Is(err, client.ErrPermissionDenied) {
		t.Fatalf("got %v, want PERMISSION_DENIED after the lease ended", err)
	}
	// A new lease starts from reset drivers: a was reset at the first start, the end, and now.
	if err := l.ex.BeginLease(ctx, "second"); err != nil {
		t.Fatal(err)
	}
	var after int64
	if err := c.Exporter(l.Exporter, "second").Driver("a").CallInto(ctx, "resets", &after); err != nil {
		t.Fatal(err)
	}
	if after != 3 {
		t.Fatalf("got %d resets, want 3 (start, end, start)", after)
	}
}

func TestClientClosingStreamStopsDriver(t *testing.T) {
	l, c := startLocal(t)
	items, err := c.Exporter(l.Exporter, l.Lease).Driver("a").Stream(context.Background(), "ticks")
	if err != nil {
		t.Fatal(err)
	}
	var n int64
	for i := 0; i < 5; i++ {
		if err := items.Next(&n); err != nil {
			t.Fatal(err)
		}
	}
	_ = items.Close()
	checkNoStreams(t, l)
}

func TestDescribeOverBus(t *testing.T) {
	l, c := startLocal(t)
	d, err := c.Exporter(l.Exporter, "").Describe(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	n := d.Find("b")
	if d.Exporter != "lab1" || n == nil || n.Method("echo") == nil || len(n.Method("echo").Args) != 2 {
		t.Fatalf("got %+v, want exporter lab1 with b.echo(s, n)", d)
	}
	if _, err := c.Exporter("ghost", "").Describe(context.Background()); !errors.Is(err, client.ErrUnavailable) {
		t.Fatalf("got %v, want UNAVAILABLE for a missing exporter", err)
	}
}

var _ = io.EOF

func TestUnavailableDriver(t *testing.T) {
	l, c := startLocal(t)
	ctx := context.Background()
	p := l.ex.tree.Find("a").Driver.(*probe)
	p.absent.Store("/dev/ttyUSB0 is not plugged in")
	ex := c.Exporter(l.Exporter, l.Lease)
	if _, err := ex.Driver("a").Call(ctx, "echo", "x", 1); !errors.Is(err, client.ErrUnavailable) || !strings.Contains(err.Error(), "ttyUSB0") {
		t.Fatalf("got %v, want UNAVAILABLE naming the device", err)
	}
	d, err := ex.Describe(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got := d.Find("a").Unavailable; got != "/dev/ttyUSB0 is not plugged in" {
		t.Fatalf("describe: got %q, want the reason", got)
	}
	p.absent.Store("")
	if _, err := ex.Driver("a").Call(ctx, "echo", "x", 1); err != nil {
		t.Fatalf("device back: got %v", err)
	}
}

func TestTapBroadcast(t *testing.T) {
	l, c := startLocal(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	obs, err := bus.Connect(ctx, l.URL, "observer")
	if err != nil {
		t.Fatal(err)
	}
	defer obs.Close()
	got := make(chan string, 1)
	sub, err := obs.Subscribe(wire.TapSubject(l.Exporter, "b"), "", func(m *bus.Msg) { got <- string(m.Data) })
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()
	_ = obs.Flush(ctx)
	if _, err := c.Exporter(l.Exporter, l.Lease).Driver("b").Call(ctx, "say", "login:"); err != nil {
		t.Fatal(err)
	}
	select {
	case s := <-got:
		if s != "login:" {
			t.Fatalf("got %q, want login:", s)
		}
	case <-ctx.Done():
		t.Fatal("no tap message")
	}
}

func TestStreamFollowsContext(t *testing.T) {
	l, c := startLocal(t)
	ctx, cancel := context.WithCancel(context.Background())
	items, err := c.Exporter(l.Exporter, l.Lease).Driver("a").Stream(ctx, "ticks")
	if err != nil {
		t.Fatal(err)
	}
	defer items.Close()
	var n int64
	if err := items.Next(&n); err != nil {
		t.Fatal(err)
	}
	cancel()
	for err == nil {
		err = items.Next(&n)
	}
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v, want context.Canceled", err)
	}
	checkNoStreams(t, l)
}

// TestLocalStreamsGoDirect checks that local-mode byte streams bypass the broker through the
// session's Unix socket, and stay on the bus when the config switches that off.
func TestLocalStreamsGoDirect(t *testing.T) {
	for _, tc := range []struct {
		extra string
		want  int64
	}{{"", 1}, {"directStreams: {listen: \"off\"}\n", 0}} {
		cfg, err := ParseConfig("lab1.yaml", []byte(probeConfig+tc.extra))
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		l, err := StartLocal(ctx, cfg, LocalOptions{})
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		c, err := client.Connect(ctx, l.URL, "tester")
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		items, err := c.Exporter(l.Exporter, l.Lease).Driver("a").Stream(ctx, "ticks")
		if err != nil {
			t.Fatal(err)
		}
		for i := int64(0); i < 3; i++ {
			var v int64
			if err := items.Next(&v); err != nil || v != i {
				t.Fatalf("item %d: got %d, %v", i, v, err)
			}
		}
		items.Close()
		var got int64
		if l.direct != nil {
			got = l.direct.Accepted()
		}
		if got != tc.want {
			t.Errorf("config %q: %d streams went direct, want %d", tc.extra, got, tc.want)
		}
	}
}

// checkNoStreams waits until the exporter of l has no stream left.
func checkNoStreams(t *testing.T, l *Local) {
	t.Helper()
	testkit.CheckFor(t, 30*time.Second, func() error {
		if n := l.ex.streams.Count(); n != 0 {
			return fmt.Errorf("the exporter still has %d streams", n)
		}
		return nil
	})
}
