package controller

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"jsn.dev/jsn/bus/wire"
	"jsn.dev/jsn/controller/api"
	"jsn.dev/jsn/internal/testkit"
)

// TestClientLimits is the red team's "no per-client limits": a client may keep only so many
// requests queued, and may not ask for a priority above what the admin granted it (2^62 jumped
// the queue).
func TestClientLimits(t *testing.T) {
	l := startLab(t)
	l.exporter("e1", nil)
	alice, _ := l.client("alice", api.CreateClientRequest{})
	callOK[api.LeaseReply](t, alice, api.ClientSubject("alice", api.VerbLeaseRequest), api.LeaseRequest{Exporter: "e1", Duration: time.Minute})

	_, bobCfg := l.client("bob", api.CreateClientRequest{})
	bob := l.attack(t, credsOf(t, bobCfg), inboxOf(t, credsOf(t, bobCfg)))
	request := func(prio int) (bool, string) {
		b, _ := wire.Marshal(api.LeaseRequest{Exporter: "e1", Duration: time.Minute, Priority: prio})
		m, err := bob.nc.Request(api.ClientSubject("bob", api.VerbLeaseRequest), b, 10*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		return m.Header.Get(wire.HeaderErrorCode) == "", m.Header.Get(wire.HeaderError)
	}
	if ok, msg := request(1 << 62); ok {
		t.Error("priority 2^62 accepted from a client granted none")
	} else if !strings.Contains(msg, "maximum of 0") {
		t.Errorf("priority 2^62: got %q, want it to name the maximum", msg)
	}
	queued := 0
	for i := 0; i < 100; i++ {
		ok, msg := request(0)
		if !ok {
			if !strings.Contains(msg, "queued requests") {
				t.Errorf("request %d: got %q, want the queue cap", i, msg)
			}
			break
		}
		queued++
	}
	if queued != 16 {
		t.Errorf("bob queued %d requests, want the default cap of 16", queued)
	}

	// What the admin grants is allowed, no more.
	ci, _ := l.client("ci", api.CreateClientRequest{MaxPriority: 10})
	if _, err := call[api.LeaseReply](t, ci, api.ClientSubject("ci", api.VerbLeaseRequest), api.LeaseRequest{Exporter: "e1", Duration: time.Minute, Priority: 10}); err != nil {
		t.Errorf("priority 10 granted to ci: %v", err)
	}
	if _, err := call[api.LeaseReply](t, ci, api.ClientSubject("ci", api.VerbLeaseRequest), api.LeaseRequest{Exporter: "e1", Duration: time.Minute, Priority: 11}); err == nil {
		t.Error("priority 11 accepted from ci, granted 10")
	}
}

// TestListsArePaginated is the red team's "lease list --all fails for everyone: reply over
// 1 MiB": no list reply may exceed the server's maximum message size, however large the lab. A
// raw client pages through the exporters.
func TestListsArePaginated(t *testing.T) {
	l := startLab(t)
	labels := map[string]string{}
	for i := range 8 {
		labels[fmt.Sprintf("k%d", i)] = strings.Repeat(string(rune('a'+i)), 250)
	}
	const n = 600 // about 2 KiB of labels each: 1.2 MB in one reply
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := l.ctl.RegisterSimulated(ctx, "big", n, labels); err != nil {
		t.Fatal(err)
	}
	_, bobCfg := l.client("bob", api.CreateClientRequest{})
	bob := l.attack(t, credsOf(t, bobCfg), inboxOf(t, credsOf(t, bobCfg)))
	seen := map[string]bool{}
	after := ""
	for pages := 0; ; pages++ {
		if pages > n {
			t.Fatal("the pages do not end")
		}
		b, _ := wire.Marshal(map[string]any{"after": after})
		m, err := bob.nc.Request(api.ClientSubject("bob", api.VerbExportersList), b, 20*time.Second)
		if err != nil {
			t.Fatalf("exporters.list page %d: %v", pages, err)
		}
		if code := m.Header.Get(wire.HeaderErrorCode); code != "" {
			t.Fatalf("exporters.list page %d: %s %s", pages, code, m.Header.Get(wire.HeaderError))
		}
		if len(m.Data) > 512<<10 {
			t.Errorf("page %d is %d bytes", pages, len(m.Data))
		}
		var r struct {
			Exporters []struct {
				Name string `msgpack:"name"`
			} `msgpack:"exporters"`
			Next string `msgpack:"next"`
		}
		if err := wire.Unmarshal(m.Data, &r); err != nil {
			t.Fatal(err)
		}
		for _, e := range r.Exporters {
			if seen[e.Name] {
				t.Errorf("%s on two pages", e.Name)
			}
			seen[e.Name] = true
		}
		if r.Next == "" {
			break
		}
		after = r.Next
	}
	if len(seen) != n {
		t.Errorf("paged through %d exporters, want %d", len(seen), n)
	}
}

// TestNATSLimits checks the NATS limits of issued users at the wire: a client may hold only so
// many subscriptions (the red team held 50,000).
func TestNATSLimits(t *testing.T) {
	l := startLab(t)
	_, bobCfg := l.client("bob", api.CreateClientRequest{})
	in := inboxOf(t, credsOf(t, bobCfg))
	bob := l.attack(t, credsOf(t, bobCfg), in)
	for i := range 1100 {
		if _, err := bob.nc.SubscribeSync(fmt.Sprintf("%s.s%d", in, i)); err != nil {
			t.Fatal(err)
		}
	}
	_ = bob.nc.Flush()
	deadline := time.After(10 * time.Second)
	for {
		select {
		case err := <-bob.errs:
			if strings.Contains(strings.ToLower(err.Error()), "maximum subscriptions exceeded") {
				return
			}
			continue
		case <-deadline:
			if bob.nc.IsClosed() && strings.Contains(strings.ToLower(fmt.Sprint(bob.nc.LastError())), "maximum subscriptions") {
				return
			}
			t.Fatalf("1100 subscriptions accepted (last error %v)", bob.nc.LastError())
		}
	}
}

// TestConnectionLimit checks the account's connection limit with a small setting: connections
// beyond it are refused (the red team opened 300).
func TestConnectionLimit(t *testing.T) {
	dir := t.TempDir()
	adminCfg, err := Init(dir, InitOptions{})
	if err != nil {
		t.Fatal(err)
	}
	o := testOptions(dir)
	o.MaxConnections = 12
	l := &lab{t: t, dir: dir}
	l.start(o)
	l.admin = l.connectConfig(adminCfg)
	_, bobCfg := l.client("bob", api.CreateClientRequest{})

	// Connections: the admin's and bob's below, then bob's until refused.
	refused := false
	for i := 0; i < 30 && !refused; i++ {
		a := l.attack(t, credsOf(t, bobCfg), inboxOf(t, credsOf(t, bobCfg)))
		if a.nc == nil {
			err := <-a.errs
			if !strings.Contains(strings.ToLower(err.Error()), "maximum account active connections") {
				t.Fatalf("connection %d: got %v, want the account's connection limit", i, err)
			}
			refused = true
		}
	}
	if !refused {
		t.Fatal("30 connections accepted with a limit of 12")
	}
}

type dialerFunc func(network, addr string) (net.Conn, error)

func (f dialerFunc) Dial(network, addr string) (net.Conn, error) { return f(network, addr) }

func rootCAs(ca []byte) nats.Option {
	return nats.ClientTLSConfig(nil, func() (*x509.CertPool, error) {
		p := x509.NewCertPool()
		p.AppendCertsFromPEM(ca)
		return p, nil
	})
}

// pausable is a connection whose reads can be stopped, as a client that does not read.
type pausable struct {
	net.Conn
	mu     sync.Mutex
	paused bool
	resume chan struct{}
}

func (p *pausable) Read(b []byte) (int, error) {
	p.mu.Lock()
	ch := p.resume
	paused := p.paused
	p.mu.Unlock()
	if paused {
		<-ch
	}
	return p.Conn.Read(b)
}

// TestSlowConsumerDropped checks that a client that stops reading while it makes the controller
// answer it is dropped once the server holds MaxPending bytes for it, instead of growing the
// server (the red team grew it by 390 MiB).
func TestSlowConsumerDropped(t *testing.T) {
	dir := t.TempDir()
	if _, err := Init(dir, InitOptions{}); err != nil {
		t.Fatal(err)
	}
	o := testOptions(dir)
	o.MaxPending = 2 << 20
	l := &lab{t: t, dir: dir}
	l.start(o)
	labels := map[string]string{"k": strings.Repeat("x", 250)}
	if err := l.ctl.RegisterSimulated(context.Background(), "sim", 400, labels); err != nil {
		t.Fatal(err)
	}
	adminCfg, err := os.ReadFile(dir + "/admin.yaml")
	if err != nil {
		t.Fatal(err)
	}
	l.admin = l.connectConfig(adminCfg)
	_, bobCfg := l.client("bob", api.CreateClientRequest{})
	pc := &pausable{resume: make(chan struct{})}
	j, s := splitCreds(t, credsOf(t, bobCfg))
	in := inboxOf(t, credsOf(t, bobCfg))
	opts := []nats.Option{nats.UserJWTAndSeed(j, s), nats.CustomInboxPrefix(in), nats.MaxReconnects(0),
		nats.SetCustomDialer(dialerFunc(func(network, addr string) (net.Conn, error) {
			c, err := net.Dial(network, addr)
			pc.Conn = c
			return pc, err
		}))}
	if ca := l.ctl.CA(); ca != nil {
		opts = append(opts, rootCAs(ca))
	}
	nc, err := nats.Connect(l.ctl.URL(), opts...)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	if _, err := nc.SubscribeSync(in + ".flood"); err != nil {
		t.Fatal(err)
	}
	_ = nc.Flush()
	pc.mu.Lock()
	pc.paused = true
	pc.mu.Unlock()
	body, _ := wire.Marshal(api.ListExportersRequest{})
	for i := 0; i < 400 && l.ctl.Server().SlowConsumers() == 0; i++ {
		if err := nc.PublishRequest(api.ClientSubject("bob", api.VerbExportersList), in+".flood", body); err != nil {
			break
		}
		_ = nc.FlushTimeout(100 * time.Millisecond)
	}
	testkit.CheckFor(t, 30*time.Second, func() error {
		if l.ctl.Server().SlowConsumers() == 0 {
			return errors.New("the slow consumer was not dropped")
		}
		return nil
	})
	pc.mu.Lock()
	pc.paused = false
	close(pc.resume)
	pc.mu.Unlock()
}

// TestConnectionsPerCredential is the red team's "300 connections accepted" from one client: a
// credential's connections beyond the per-credential limit (256 by default) are closed.
func TestConnectionsPerCredential(t *testing.T) {
	l := startLab(t)
	_, bobCfg := l.client("bob", api.CreateClientRequest{})
	var conns []*attacker
	for range 300 {
		a := l.attack(t, credsOf(t, bobCfg), inboxOf(t, credsOf(t, bobCfg)))
		if a.nc == nil {
			break // refused outright: fine too
		}
		conns = append(conns, a)
	}
	open := func() int {
		n := 0
		for _, a := range conns {
			if !a.nc.IsClosed() {
				n++
			}
		}
		return n
	}
	testkit.CheckFor(t, 30*time.Second, func() error {
		if n := open(); n > 256 {
			return fmt.Errorf("bob has %d connections open, want at most 256", n)
		}
		return nil
	})
	if n := open(); n < 200 {
		t.Errorf("only %d of bob's connections are open, want the first 256", n)
	}
	// Alice is not affected.
	alice, _ := l.client("alice", api.CreateClientRequest{})
	callOK[api.ListLeasesReply](t, alice, api.ClientSubject("alice", api.VerbLeaseList), api.ListLeasesRequest{})
}
