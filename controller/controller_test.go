package controller

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
	"go.yaml.in/yaml/v3"

	"jsn.dev/jsn/bus"
	"jsn.dev/jsn/bus/wire"
	"jsn.dev/jsn/controller/api"
	"jsn.dev/jsn/internal/testkit"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

type lab struct {
	t     *testing.T
	dir   string
	ctl   *Controller
	admin *bus.Conn
}

func testOptions(dir string) Options {
	return Options{Data: dir, Listen: "127.0.0.1:0", Reconcile: 100 * time.Millisecond,
		Heartbeat: 200 * time.Millisecond, OfflineAfter: time.Second, MaxDuration: time.Hour}
}

func startLab(t *testing.T) *lab {
	t.Helper()
	dir := t.TempDir()
	adminCfg, err := Init(dir, InitOptions{})
	if err != nil {
		t.Fatal(err)
	}
	l := &lab{t: t, dir: dir}
	l.start(testOptions(dir))
	l.admin = l.connectConfig(adminCfg)
	return l
}

func (l *lab) start(o Options) {
	l.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := Start(ctx, o)
	if err != nil {
		l.t.Fatal(err)
	}
	l.ctl = c
	l.t.Cleanup(func() { l.ctl.Close() })
}

func (l *lab) connectConfig(cfg []byte) *bus.Conn {
	l.t.Helper()
	var c struct {
		Metadata struct {
			Name string `yaml:"name"`
		} `yaml:"metadata"`
		Credentials string `yaml:"credentials"`
	}
	if err := yaml.Unmarshal(cfg, &c); err != nil {
		l.t.Fatal(err)
	}
	return l.connect(c.Metadata.Name, []byte(c.Credentials))
}

func (l *lab) connect(name string, creds []byte) *bus.Conn {
	l.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := bus.ConnectWith(ctx, l.ctl.URL(), bus.ConnectOptions{Name: name, Creds: creds, CA: l.ctl.CA()})
	if err != nil {
		l.t.Fatal(err)
	}
	l.t.Cleanup(c.Close)
	return c
}

func call[T any](t *testing.T, c *bus.Conn, subject string, req any) (T, error) {
	t.Helper()
	var out T
	b, err := wire.Marshal(req)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	m, err := c.Request(ctx, subject, nil, b)
	if err != nil {
		return out, err
	}
	if err := wire.Unmarshal(m.Data, &out); err != nil {
		t.Fatalf("%s: decode reply: %v", subject, err)
	}
	return out, nil
}

func callOK[T any](t *testing.T, c *bus.Conn, subject string, req any) T {
	t.Helper()
	v, err := call[T](t, c, subject, req)
	if err != nil {
		t.Fatalf("%s: %v", subject, err)
	}
	return v
}

// exporter creates exporter identity name and registers it; it heartbeats until the test ends.
func (l *lab) exporter(name string, labels map[string]string) *bus.Conn {
	l.t.Helper()
	rep := callOK[api.ConfigReply](l.t, l.admin, api.AdminSubject(AdminName, api.VerbCreateExporter),
		api.CreateExporterRequest{Name: name, Labels: labels})
	c := l.connectConfig(rep.Config)
	callOK[api.RegisterReply](l.t, c, api.ExporterSubject(name, api.VerbRegister), api.RegisterRequest{Labels: labels})
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-ctx.Done():
				return
			case <-time.After(200 * time.Millisecond):
			}
			b, _ := wire.Marshal(api.HeartbeatRequest{})
			hctx, hcancel := context.WithTimeout(ctx, 2*time.Second)
			_, _ = c.Request(hctx, api.ExporterSubject(name, api.VerbHeartbeat), nil, b)
			hcancel()
		}
	}()
	l.t.Cleanup(func() { cancel(); wg.Wait() })
	return c
}

func (l *lab) client(name string, req api.CreateClientRequest) (*bus.Conn, []byte) {
	l.t.Helper()
	req.Name = name
	rep := callOK[api.ConfigReply](l.t, l.admin, api.AdminSubject(AdminName, api.VerbCreateClient), req)
	return l.connectConfig(rep.Config), rep.Config
}

func TestInitRefusesExistingDir(t *testing.T) {
	dir := t.TempDir()
	if _, err := Init(dir, InitOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := Init(dir, InitOptions{}); !errors.Is(err, ErrAlreadyInitialised) {
		t.Fatalf("second init: got %v, want already initialised", err)
	}
}

func TestLeaseGrantRace(t *testing.T) {
	l := startLab(t)
	l.exporter("e1", map[string]string{"board": "rpi4"})
	a, _ := l.client("alice", api.CreateClientRequest{})
	b, _ := l.client("bob", api.CreateClientRequest{})
	var wg sync.WaitGroup
	replies := make([]api.LeaseReply, 2)
	for i, c := range []*bus.Conn{a, b} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			name := []string{"alice", "bob"}[i]
			r, err := call[api.LeaseReply](t, c, api.ClientSubject(name, api.VerbLeaseRequest), api.LeaseRequest{Selector: "board=rpi4", Duration: time.Minute})
			if err != nil {
				t.Error(err)
			}
			replies[i] = r
		}()
	}
	wg.Wait()
	active := 0
	for _, r := range replies {
		if r.Lease != nil && r.Lease.Status == api.StatusActive {
			active++
			if r.Credential == nil {
				t.Error("active lease without credential")
			}
		} else if r.Lease == nil || r.Lease.Reason == "" {
			t.Errorf("queued lease without reason: %+v", r.Lease)
		}
	}
	if active != 1 {
		t.Fatalf("got %d active leases, want 1", active)
	}
}

func TestQueueOrderAndExpiry(t *testing.T) {
	l := startLab(t)
	l.exporter("e1", map[string]string{"board": "rpi4"})
	a, _ := l.client("alice", api.CreateClientRequest{MaxPriority: 5})
	req := func(prio int, d time.Duration) api.LeaseReply {
		return callOK[api.LeaseReply](t, a, api.ClientSubject("alice", api.VerbLeaseRequest),
			api.LeaseRequest{Exporter: "e1", Duration: d, Priority: prio})
	}
	first := req(0, 2*time.Second)
	if first.Lease.Status != api.StatusActive {
		t.Fatalf("first: got %s, want active", first.Lease.Status)
	}
	// The KV entry carries a per-key TTL; extend renews it.
	ttl, err := l.ctl.leases.TTL(context.Background(), "e1")
	if err != nil {
		t.Fatal(err)
	}
	if ttl <= 0 || ttl > 2*time.Second {
		t.Fatalf("ttl: got %v, want (0,2s]", ttl)
	}
	ext := callOK[api.LeaseReply](t, a, api.ClientSubject("alice", api.VerbLeaseExtend), api.ExtendRequest{ID: first.Lease.ID, Duration: 3 * time.Second})
	if ext.Credential == nil || !ext.Lease.End.After(first.Lease.End) {
		t.Fatalf("extend: got %+v", ext)
	}
	if ttl, err := l.ctl.leases.TTL(context.Background(), "e1"); err != nil || ttl != 3*time.Second {
		t.Fatalf("ttl after extend: got %v, want 3s", ttl)
	}
	low := req(0, time.Minute)
	high := req(5, time.Minute)
	if low.Lease.Status != api.StatusQueued || high.Lease.Status != api.StatusQueued {
		t.Fatalf("got %s and %s, want queued", low.Lease.Status, high.Lease.Status)
	}
	if !strings.Contains(low.Lease.Reason, "e1 by alice") {
		t.Fatalf("reason: got %q", low.Lease.Reason)
	}
	list := callOK[api.ListLeasesReply](t, a, api.ClientSubject("alice", api.VerbLeaseList), api.ListLeasesRequest{})
	if len(list.Leases) != 3 {
		t.Fatalf("list: got %d leases, want 3", len(list.Leases))
	}
	// The first lease expires; the higher priority request gets the exporter.
	testkit.CheckFor(t, 30*time.Second, func() error {
		r := callOK[api.LeaseReply](t, a, api.ClientSubject("alice", api.VerbLeaseGet), api.LeaseID{ID: high.Lease.ID})
		if !(r.Lease.Status == api.StatusActive && r.Credential != nil) {
			return fmt.Errorf("not yet: high priority grant (lease %s: %s)", r.Lease.Status, r.Lease.Reason)
		}
		return nil
	})
	r := callOK[api.LeaseReply](t, a, api.ClientSubject("alice", api.VerbLeaseGet), api.LeaseID{ID: first.Lease.ID})
	if r.Lease.Status != api.StatusEnded {
		t.Fatalf("first after expiry: got %s, want ended", r.Lease.Status)
	}
	r = callOK[api.LeaseReply](t, a, api.ClientSubject("alice", api.VerbLeaseGet), api.LeaseID{ID: low.Lease.ID})
	if r.Lease.Status != api.StatusQueued {
		t.Fatalf("low: got %s, want queued", r.Lease.Status)
	}
	callOK[api.Empty](t, a, api.ClientSubject("alice", api.VerbLeaseRelease), api.LeaseID{ID: high.Lease.ID})
	testkit.CheckFor(t, 30*time.Second, func() error {
		r := callOK[api.LeaseReply](t, a, api.ClientSubject("alice", api.VerbLeaseGet), api.LeaseID{ID: low.Lease.ID})
		if r.Lease.Status != api.StatusActive {
			return fmt.Errorf("not yet: low priority grant (lease %s: %s)", r.Lease.Status, r.Lease.Reason)
		}
		return nil
	})

	// A restart keeps the lease.
	l.ctl.Close()
	l.start(testOptions(l.dir))
	admCfg, err := os.ReadFile(filepath.Join(l.dir, "admin.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	adm := l.connectConfig(admCfg)
	all := callOK[api.ListLeasesReply](t, adm, api.ClientSubject(AdminName, api.VerbLeaseList), api.ListLeasesRequest{All: true})
	if len(all.Leases) != 1 || all.Leases[0].ID != low.Lease.ID || all.Leases[0].Status != api.StatusActive {
		t.Fatalf("after restart: got %+v, want lease %s active", all.Leases, low.Lease.ID)
	}
}

func TestRequestValidation(t *testing.T) {
	l := startLab(t)
	l.exporter("e1", map[string]string{"board": "rpi4"})
	a, _ := l.client("alice", api.CreateClientRequest{MaxDuration: 10 * time.Minute})
	tests := []struct {
		req  api.LeaseRequest
		code wire.Code
		msg  string
	}{
		{api.LeaseRequest{Selector: "board=rpi5", Duration: time.Minute}, wire.NotFound, "no registered exporter"},
		{api.LeaseRequest{Exporter: "nope", Duration: time.Minute}, wire.NotFound, "no registered exporter"},
		{api.LeaseRequest{Selector: "board=", Duration: time.Minute}, wire.InvalidArgument, "position"},
		{api.LeaseRequest{Selector: "board=rpi4", Duration: 2 * time.Hour}, wire.InvalidArgument, "maximum of 1h0m0s"},
		{api.LeaseRequest{Selector: "board=rpi4", Duration: 20 * time.Minute}, wire.InvalidArgument, "cap of 10m0s"},
		{api.LeaseRequest{Selector: "board=rpi4"}, wire.InvalidArgument, "positive"},
	}
	for _, tt := range tests {
		_, err := call[api.LeaseReply](t, a, api.ClientSubject("alice", api.VerbLeaseRequest), tt.req)
		var be *wire.Error
		if !errors.As(err, &be) || be.Code != tt.code || !strings.Contains(be.Message, tt.msg) {
			t.Errorf("%+v: got %v, want %s containing %q", tt.req, err, tt.code, tt.msg)
		}
	}
}

func TestGarbageBodies(t *testing.T) {
	l := startLab(t)
	e := l.exporter("e1", nil)
	a, _ := l.client("alice", api.CreateClientRequest{})
	garbage := [][]byte{{0xc1}, []byte("not msgpack at all"), {0x81, 0xa2, 'i', 'd', 0xcc}, {0x92, 0x01}}
	subjects := map[*bus.Conn][]string{
		e:       {api.ExporterSubject("e1", api.VerbRegister), api.ExporterSubject("e1", api.VerbHeartbeat), api.ExporterSubject("e1", api.VerbLeaseEnded)},
		a:       {},
		l.admin: {},
	}
	for _, v := range []string{api.VerbLeaseRequest, api.VerbLeaseGet, api.VerbLeaseExtend, api.VerbLeaseRelease, api.VerbLeaseList, api.VerbExportersList, api.VerbExportersDesc, api.VerbLeaseKeepalive} {
		subjects[a] = append(subjects[a], api.ClientSubject("alice", v))
	}
	for _, v := range []string{api.VerbCreateExporter, api.VerbCreateClient, api.VerbDeleteExporter, api.VerbDeleteClient,
		api.VerbExporterOff, api.VerbExporterOn, api.VerbPolicySet, api.VerbPolicyGet, api.VerbPolicyDelete} {
		subjects[l.admin] = append(subjects[l.admin], api.AdminSubject(AdminName, v))
	}
	for c, subs := range subjects {
		for _, s := range subs {
			for _, g := range garbage {
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				_, err := c.Request(ctx, s, nil, g)
				cancel()
				if !errors.Is(err, wire.ErrInvalidArgument) {
					t.Errorf("%s %q: got %v, want INVALID_ARGUMENT", s, g, err)
				}
			}
		}
	}
	// Still serving.
	callOK[api.ListExportersReply](t, a, api.ClientSubject("alice", api.VerbExportersList), api.ListExportersRequest{})
}

func TestOfflineDetection(t *testing.T) {
	l := startLab(t)
	rep := callOK[api.ConfigReply](t, l.admin, api.AdminSubject(AdminName, api.VerbCreateExporter), api.CreateExporterRequest{Name: "e1"})
	e := l.connectConfig(rep.Config)
	callOK[api.RegisterReply](t, e, api.ExporterSubject("e1", api.VerbRegister), api.RegisterRequest{})
	a, _ := l.client("alice", api.CreateClientRequest{})
	online := func() bool {
		r := callOK[api.ListExportersReply](t, a, api.ClientSubject("alice", api.VerbExportersList), api.ListExportersRequest{})
		return len(r.Exporters) == 1 && r.Exporters[0].Online
	}
	if !online() {
		t.Fatal("registered exporter not online")
	}
	testkit.CheckFor(t, 30*time.Second, func() error {
		if online() {
			return errors.New("not yet: offline")
		}
		return nil
	})
	callOK[api.HeartbeatReply](t, e, api.ExporterSubject("e1", api.VerbHeartbeat), api.HeartbeatRequest{})
	if !online() {
		t.Fatal("not back online after a heartbeat")
	}
}
