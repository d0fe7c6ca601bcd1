package exporter

import (
	"context"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"jsn.dev/jsn/bus/wire"
	"jsn.dev/jsn/controller/api"
	"jsn.dev/jsn/drivers/driver"
)

// console is a test driver with a tap history, like serial.Port: it records what it says, then
// taps it, and forgets the record at a lease's end.
type console struct {
	tap   func([]byte)
	mu    sync.Mutex
	hist  []byte
	total int64
}

func (c *console) Open(context.Context) error  { return nil }
func (c *console) Close() error                { return nil }
func (c *console) Reset(context.Context) error { return nil }
func (c *console) Methods() []driver.Method {
	return []driver.Method{{Name: "say", Kind: driver.KindCall, Args: []driver.Arg{{Name: "s", Type: driver.TypeString}},
		Call: func(_ context.Context, a driver.Args) (any, error) {
			b := []byte(a.String(0))
			c.mu.Lock()
			c.hist = append(c.hist, b...)
			c.total += int64(len(b))
			c.mu.Unlock()
			c.tap(b)
			return nil, nil
		}}}
}
func (c *console) TapHistory(limit int) ([]byte, int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	h := c.hist
	if len(h) > limit {
		h = h[len(h)-limit:]
	}
	return append([]byte(nil), h...), c.total
}
func (c *console) Forget(context.Context) error {
	c.mu.Lock()
	c.hist = nil
	c.mu.Unlock()
	return nil
}

func init() {
	driver.MustRegister(driver.Info{Type: "extest.Console", Interface: "jsn.extest.v1", Doc: "exporter test console with history",
		New: func(env driver.Env) driver.Driver { return &console{tap: env.Tap} }})
}

// TestTapHistoryThroughExporter: the exporter tags tap messages with their offsets and answers a
// history request only on a reply subject of its own tap namespace (a lease holder naming its own
// inbox, another lease's inbox or the lease push subject gets nothing, and nothing arrives
// there); the history holds the lease's output with the end offset, and the next holder gets
// none of the previous lease's output.
func TestTapHistoryThroughExporter(t *testing.T) {
	l := startLab(t)
	cfg := l.exporterConfig("tx1", nil, "export:\n  console: {type: extest.Console}\n  probe: {type: extest.Probe}\n")
	runRemote(t, cfg)
	alice, bob := l.client("alice"), l.client("bob")
	l.online(alice, "tx1", true)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	ra, exa := leaseDial(ctx, t, alice, api.LeaseRequest{Exporter: "tx1", Duration: time.Minute})
	if err := exa.WaitReady(ctx, nil); err != nil {
		t.Fatal(err)
	}
	a := l.raw(ra.Credential.Creds())
	live := watch(t, a, "jsn.tap.tx1.console")
	if _, err := exa.Driver("console").Call(ctx, "say", "hello\n"); err != nil {
		t.Fatal(err)
	}
	m, err := live.NextMsg(10 * time.Second)
	if err != nil || string(m.Data) != "hello\n" || m.Header.Get(wire.HeaderTapOffset) != "0" {
		t.Fatalf("live tap: %v %v", err, m)
	}

	// Reply subjects outside the exporter's tap namespace: dropped.
	push := watch(t, l.raw([]byte(cfg.Credentials)), api.LeasePushSubject("tx1"))
	own := watch(t, a, inboxOf(t, ra.Credential.Creds())+".>")
	for _, reply := range []string{inboxOf(t, ra.Credential.Creds()) + ".h", api.LeasePushSubject("tx1"), "jsn.tap.tx1.console"} {
		if err := a.PublishRequest(wire.HistorySubject("tx1", "console"), reply, nil); err != nil {
			t.Fatal(err)
		}
	}
	// A proper one, after them: answered (so the others were handled by then).
	hist := func(c *nats.Conn, token string) *nats.Msg {
		t.Helper()
		reply := wire.HistoryReplySubject("tx1", token)
		sub := watch(t, c, reply)
		if err := c.PublishRequest(wire.HistorySubject("tx1", "console"), reply, nil); err != nil {
			t.Fatal(err)
		}
		m, err := sub.NextMsg(10 * time.Second)
		if err != nil {
			t.Fatalf("history: %v", err)
		}
		return m
	}
	h := hist(a, "t1")
	if string(h.Data) != "hello\n" || h.Header.Get(wire.HeaderTapOffset) != "6" {
		t.Fatalf("history: %q, offset %q; want hello and 6", h.Data, h.Header.Get(wire.HeaderTapOffset))
	}
	quiet(t, "the lease holder's inbox", a, own)
	quiet(t, "live tap (a history reply on the tap subject)", a, live)
	quiet(t, "the lease push subject", a, push)
	// A driver without history, an unknown driver.
	for path, code := range map[string]string{"probe": string(wire.Unimplemented), "nope": string(wire.NotFound)} {
		reply := wire.HistoryReplySubject("tx1", "e"+path)
		sub := watch(t, a, reply)
		if err := a.PublishRequest(wire.HistorySubject("tx1", path), reply, nil); err != nil {
			t.Fatal(err)
		}
		m, err := sub.NextMsg(10 * time.Second)
		if err != nil || m.Header.Get(wire.HeaderErrorCode) != code {
			t.Errorf("history of %s: %v %v, want %s", path, err, m, code)
		}
	}

	// The next holder: none of alice's output, and the offsets go on.
	if err := alice.Release(ctx, ra.Lease.ID); err != nil {
		t.Fatal(err)
	}
	rb, exb := leaseDial(ctx, t, bob, api.LeaseRequest{Exporter: "tx1", Duration: time.Minute})
	if err := exb.WaitReady(ctx, nil); err != nil {
		t.Fatal(err)
	}
	b := l.raw(rb.Credential.Creds())
	h = hist(b, "t3")
	if len(h.Data) != 0 || h.Header.Get(wire.HeaderTapOffset) != "6" {
		t.Fatalf("next holder's history: %q offset %q; want nothing at 6", h.Data, h.Header.Get(wire.HeaderTapOffset))
	}
	blive := watch(t, b, "jsn.tap.tx1.console")
	if _, err := exb.Driver("console").Call(ctx, "say", "bob\n"); err != nil {
		t.Fatal(err)
	}
	m, err = blive.NextMsg(10 * time.Second)
	if err != nil || string(m.Data) != "bob\n" || m.Header.Get(wire.HeaderTapOffset) != strconv.Itoa(6) {
		t.Fatalf("bob's live tap: %v %v", err, m)
	}
}
