package exporter

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nats.go"

	"jsn.dev/jsn/bus/wire"
	"jsn.dev/jsn/client"
	"jsn.dev/jsn/controller/api"
	"jsn.dev/jsn/drivers/driver"
	"jsn.dev/jsn/internal/testkit"
)

// switchDev is a test power driver (jsn.power.v1): on, off, status; Reset switches it off.
type switchDev struct {
	mu sync.Mutex
	on bool
}

func (s *switchDev) Open(context.Context) error { return nil }
func (s *switchDev) Close() error               { return nil }
func (s *switchDev) Reset(context.Context) error {
	s.set(false)
	return nil
}
func (s *switchDev) set(on bool) {
	s.mu.Lock()
	s.on = on
	s.mu.Unlock()
}
func (s *switchDev) Methods() []driver.Method {
	return []driver.Method{
		{Name: "on", Kind: driver.KindCall, Call: func(context.Context, driver.Args) (any, error) { s.set(true); return nil, nil }},
		{Name: "off", Kind: driver.KindCall, Call: func(context.Context, driver.Args) (any, error) { s.set(false); return nil, nil }},
		{Name: "status", Kind: driver.KindCall, Returns: driver.TypeString, Call: func(context.Context, driver.Args) (any, error) {
			s.mu.Lock()
			defer s.mu.Unlock()
			if s.on {
				return "on", nil
			}
			return "off", nil
		}},
	}
}

func init() {
	driver.MustRegister(driver.Info{Type: "extest.Switch", Interface: PowerInterface, Doc: "exporter test power switch",
		New: func(driver.Env) driver.Driver { return &switchDev{on: true} }})
}

// TestPowerStateThroughExporter: the exporter reads its power driver's state at start (the
// switch starts on), publishes each change (a reset at the lease's start, off and on calls) on
// jsn.tap.E.~state.<path>, answers a history request for the driver with the current state,
// and whoever may not watch the exporter can read none of it.
func TestPowerStateThroughExporter(t *testing.T) {
	l := startLab(t)
	cfg := l.exporterConfig("px1", nil, "export:\n  power: {type: extest.Switch}\n  alias: {ref: power}\n  console: {type: extest.Console}\n")
	runRemote(t, cfg)
	alice := l.client("alice")
	l.online(alice, "px1", true)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	ra, ex := leaseDial(ctx, t, alice, api.LeaseRequest{Exporter: "px1", Duration: time.Minute})
	if err := ex.WaitReady(ctx, nil); err != nil {
		t.Fatal(err)
	}
	a := l.raw(ra.Credential.Creds())
	state := func(c *nats.Conn, token string) string {
		t.Helper()
		reply := wire.HistoryReplySubject("px1", token)
		sub := watch(t, c, reply)
		defer sub.Unsubscribe()
		if err := c.PublishRequest(wire.HistorySubject("px1", "power"), reply, nil); err != nil {
			t.Fatal(err)
		}
		m, err := sub.NextMsg(10 * time.Second)
		if err != nil {
			t.Fatalf("power state: %v", err)
		}
		if m.Header.Get(wire.HeaderState) != "power" {
			t.Errorf("power state reply headers %v, want %s: power", m.Header, wire.HeaderState)
		}
		return string(m.Data)
	}
	// The lease's start reset the switch: off, read after the reset.
	testkit.CheckFor(t, 30*time.Second, func() error {
		if s := state(a, "s0"); s != "off" {
			return errors.New("not yet: state off after the lease's reset, have " + s)
		}
		return nil
	})
	live := watch(t, a, "jsn.tap.px1.~state.>")
	if _, err := ex.Driver("alias").Call(ctx, "on"); err != nil { // through the ref: the switch's state
		t.Fatal(err)
	}
	m, err := live.NextMsg(10 * time.Second)
	if err != nil || m.Subject != "jsn.tap.px1.~state.power" || string(m.Data) != "on" || m.Header.Get(wire.HeaderState) != "power" {
		t.Fatalf("live power state after on: %v %v", m, err)
	}
	if s := state(a, "s1"); s != "on" {
		t.Errorf("state after on: %q", s)
	}
	if _, err := ex.Driver("power").Call(ctx, "off"); err != nil {
		t.Fatal(err)
	}
	if m, err := live.NextMsg(10 * time.Second); err != nil || string(m.Data) != "off" {
		t.Fatalf("live power state after off: %v %v", m, err)
	}
	// Unchanged: nothing published.
	if _, err := ex.Driver("power").Call(ctx, "off"); err != nil {
		t.Fatal(err)
	}
	quiet(t, "a repeated off", a, live)
	// The console keeps its own history.
	if _, err := ex.Driver("console").Call(ctx, "say", "x"); err != nil {
		t.Fatal(err)
	}
	reply := wire.HistoryReplySubject("px1", "c")
	hsub := watch(t, a, reply)
	if err := a.PublishRequest(wire.HistorySubject("px1", "console"), reply, nil); err != nil {
		t.Fatal(err)
	}
	if m, err := hsub.NextMsg(10 * time.Second); err != nil || string(m.Data) != "x" || m.Header.Get(wire.HeaderState) != "" {
		t.Fatalf("console history: %v %v", m, err)
	}

	// A client's own credential (no --watch, no lease) may watch nothing: the state subject and history are refused.
	bc, errs := rawWithErrors(t, l, "bob")
	if _, err := bc.SubscribeSync("jsn.tap.px1.~state.power"); err != nil {
		t.Fatal(err)
	}
	_ = bc.Flush()
	deniedOn(t, errs, "jsn.tap.px1.~state.power")
	if err := bc.PublishRequest(wire.HistorySubject("px1", "power"), wire.HistoryReplySubject("px1", "b"), nil); err != nil {
		t.Fatal(err)
	}
	_ = bc.Flush()
	deniedOn(t, errs, wire.HistorySubject("px1", "power"))
}

// rawWithErrors connects with c's own credential and reports the connection's async errors.
func rawWithErrors(t *testing.T, l *lab, name string) (*nats.Conn, chan error) {
	t.Helper()
	data, err := l.admin.CreateClient(t.Context(), name, nil, 0, false)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := client.ParseConfig(name+".yaml", data)
	if err != nil {
		t.Fatal(err)
	}
	creds := []byte(cfg.Credentials)
	j, err := jwt.ParseDecoratedJWT(creds)
	if err != nil {
		t.Fatal(err)
	}
	kp, err := jwt.ParseDecoratedNKey(creds)
	if err != nil {
		t.Fatal(err)
	}
	seed, _ := kp.Seed()
	errs := make(chan error, 16)
	nc, err := nats.Connect(l.ctl.URL(), nats.UserJWTAndSeed(j, string(seed)), nats.MaxReconnects(0), l.tls(),
		nats.CustomInboxPrefix(inboxOf(t, creds)), nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
			select {
			case errs <- err:
			default:
			}
		}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return nc, errs
}

func deniedOn(t *testing.T, errs chan error, subject string) {
	t.Helper()
	select {
	case err := <-errs:
		if !strings.Contains(strings.ToLower(err.Error()), "permissions violation") || !strings.Contains(err.Error(), subject) {
			t.Errorf("%s: %v, want a permissions violation naming it", subject, err)
		}
	case <-time.After(5 * time.Second):
		t.Errorf("%s: allowed, want a permissions violation", subject)
	}
}
