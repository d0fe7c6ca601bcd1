package exporter

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"jsn.dev/jsn/bus"
	"jsn.dev/jsn/bus/wire"
	"jsn.dev/jsn/client"
	"jsn.dev/jsn/controller"
	"jsn.dev/jsn/controller/api"
	"jsn.dev/jsn/internal/testkit"
)

// lab is a real controller (embedded NATS in operator mode, JetStream) with an admin.
type lab struct {
	t     *testing.T
	dir   string // the controller's data directory
	ctl   *controller.Controller
	admin *client.Controller
}

func startLab(t *testing.T) *lab {
	t.Helper()
	dir := t.TempDir()
	adminCfg, err := controller.Init(dir, controller.InitOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ctl, err := controller.Start(ctx, controller.Options{Data: dir, Listen: "127.0.0.1:0", Reconcile: 100 * time.Millisecond,
		Heartbeat: 200 * time.Millisecond, OfflineAfter: 2 * time.Second, MaxDuration: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(ctl.Close)
	cfg, err := client.ParseConfig("", adminCfg)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Endpoint = ctl.URL()
	admin, err := client.DialController(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { admin.Close() })
	return &lab{t: t, dir: dir, ctl: ctl, admin: admin}
}

// exporterConfig issues exporter name and returns its config with export and hooks replaced.
func (l *lab) exporterConfig(name string, labels map[string]string, rest string) *Config {
	l.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	data, err := l.admin.CreateExporter(ctx, name, labels)
	if err != nil {
		l.t.Fatal(err)
	}
	s := string(data)
	if i := strings.Index(s, "# The drivers"); i >= 0 {
		s = s[:i]
	}
	s += rest
	file := filepath.Join(l.t.TempDir(), name+".yaml")
	if err := os.WriteFile(file, []byte(s), 0o600); err != nil {
		l.t.Fatal(err)
	}
	cfg, err := LoadConfig(file)
	if err != nil {
		l.t.Fatalf("%v\n%s", err, s)
	}
	return cfg
}

func (l *lab) client(name string, allow ...string) *client.Controller {
	l.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	data, err := l.admin.CreateClient(ctx, name, allow, 0, false)
	if err != nil {
		l.t.Fatal(err)
	}
	cfg, err := client.ParseConfig(name+".yaml", data)
	if err != nil {
		l.t.Fatal(err)
	}
	c, err := client.DialController(ctx, cfg)
	if err != nil {
		l.t.Fatal(err)
	}
	l.t.Cleanup(func() { _ = c.Close() })
	return c
}

// runRemote runs RunRemote in the background until the test ends or stop is called.
func runRemote(t *testing.T, cfg *Config) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	var err error
	log := slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	go func() {
		defer wg.Done()
		err = RunRemote(ctx, cfg, log)
	}()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			wg.Wait()
			if err != nil {
				t.Errorf("RunRemote: %v", err)
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

func (l *lab) online(c *client.Controller, name string, want bool) {
	l.t.Helper()
	testkit.CheckFor(l.t, 30*time.Second, func() error {
		exs, err := c.ListExporters(context.Background(), "")
		if err != nil {
			return err
		}
		for _, e := range exs {
			if e.Name == name {
				if e.Online != want {
					return fmt.Errorf("exporter %s: online %v, want %v", name, e.Online, want)
				}
				return nil
			}
		}
		if want {
			return fmt.Errorf("exporter %s is not registered", name)
		}
		return nil
	})
}

func TestRemoteLeaseWithHooks(t *testing.T) {
	l := startLab(t)
	dir := t.TempDir()
	cfg := l.exporterConfig("bench1", map[string]string{"board": "x"}, fmt.Sprintf(`export:
  probe:
    type: extest.Probe
hooks:
  beforeLease:
    script: |
      echo "before $JSN_LEASE $JSN_CLIENT $JSN_EXPORTER"
      echo "$JSN_HOST" > %[1]s/host
      echo "$JSN_LEASE" > %[1]s/lease
      while [ ! -f %[1]s/go ]; do sleep 0.05; done
      echo oops >&2
    timeout: 30s
  afterLease:
    script: echo "after $JSN_LEASE" > %[1]s/after
`, dir))
	runRemote(t, cfg)
	alice := l.client("alice")
	l.online(alice, "bench1", true)

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	rep, ex := leaseDial(ctx, t, alice, api.LeaseRequest{Selector: "board=x", Duration: time.Minute})
	if rep.Lease.Status != api.StatusActive || rep.Lease.Exporter != "bench1" {
		t.Fatalf("got lease %+v, want active on bench1", rep.Lease)
	}

	// While beforeLease runs, the lease is refused on the controller's bus and accepted on the
	// hook bus.
	testkit.CheckFor(t, 30*time.Second, func() error {
		_, err := os.Stat(filepath.Join(dir, "lease"))
		if err != nil {
			return errors.New("not yet: the hook's lease file")
		}
		return nil
	})
	if _, err := ex.Driver("probe").Call(ctx, "resets"); !errors.Is(err, client.ErrPermissionDenied) {
		t.Errorf("call during beforeLease: got %v, want PermissionDenied", err)
	}
	host, _ := os.ReadFile(filepath.Join(dir, "host"))
	hookEx, err := client.Dial(ctx, client.Options{Host: strings.TrimSpace(string(host)), Exporter: "bench1", Lease: rep.Lease.ID})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := hookEx.Driver("probe").Call(ctx, "echo", "a", 2); err != nil {
		t.Errorf("call on the hook bus: %v", err)
	}
	wrong := client.Options{Host: strings.TrimSpace(string(host)), Exporter: "bench1", Lease: "other"}
	if wex, err := client.Dial(ctx, wrong); err == nil {
		if _, err := wex.Driver("probe").Call(ctx, "resets"); !errors.Is(err, client.ErrPermissionDenied) {
			t.Errorf("call on the hook bus with another lease: got %v, want PermissionDenied", err)
		}
		wex.Close()
	}

	var mu sync.Mutex
	var out []string
	ready := make(chan error, 1)
	go func() {
		ready <- ex.WaitReady(ctx, func(h api.HookOutput) {
			mu.Lock()
			defer mu.Unlock()
			if h.Done {
				out = append(out, fmt.Sprintf("%s done %d", h.Hook, *h.ExitCode))
				return
			}
			out = append(out, h.Hook+" "+h.Stream+": "+string(h.Data))
		})
	}()
	if err := os.WriteFile(filepath.Join(dir, "go"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := <-ready; err != nil {
		t.Fatal(err)
	}
	if _, err := hookEx.Driver("probe").Call(ctx, "resets"); !errors.Is(err, client.ErrPermissionDenied) {
		t.Errorf("hook bus after the hook: got %v, want PermissionDenied", err)
	}
	hookEx.Close()
	mu.Lock()
	got := strings.Join(out, "|")
	mu.Unlock()
	want := fmt.Sprintf("beforeLease stdout: before %s alice bench1\n|beforeLease stderr: oops\n|beforeLease done 0", rep.Lease.ID)
	if got != want {
		t.Errorf("got hook output %q, want %q", got, want)
	}
	if s, err := ex.Driver("probe").Call(ctx, "echo", "ab", 2); err != nil || s != "abab" {
		t.Errorf("call: got %v, %v, want abab", s, err)
	}

	if err := alice.Release(ctx, rep.Lease.ID); err != nil {
		t.Fatal(err)
	}
	testkit.CheckFor(t, 30*time.Second, func() error {
		b, _ := os.ReadFile(filepath.Join(dir, "after"))
		if string(b) != "after "+rep.Lease.ID+"\n" {
			return errors.New("not yet: afterLease")
		}
		return nil
	})
}

func TestRemoteBeforeLeaseFailureEndsLease(t *testing.T) {
	l := startLab(t)
	dir := t.TempDir()
	cfg := l.exporterConfig("bench2", map[string]string{"board": "y"}, fmt.Sprintf(`export:
  probe:
    type: extest.Probe
hooks:
  beforeLease:
    script: while [ ! -f %s/go ]; do sleep 0.05; done; echo cannot flash; exit 3
    onFailure: endLease
`, dir))
	runRemote(t, cfg)
	alice := l.client("alice")
	l.online(alice, "bench2", true)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	rep, ex := leaseDial(ctx, t, alice, api.LeaseRequest{Exporter: "bench2", Duration: time.Minute})
	// The hook fails once the client is connected (else its credential may be revoked first).
	if err := os.WriteFile(filepath.Join(dir, "go"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	var out []string
	err := ex.WaitReady(ctx, func(h api.HookOutput) { out = append(out, string(h.Data)) })
	if !errors.Is(err, client.ErrPermissionDenied) {
		t.Fatalf("got %v, want PermissionDenied", err)
	}
	if len(out) != 0 {
		t.Errorf("got replay %q of an ended lease, want none (the reason carries the output)", out)
	}
	var reason string
	testkit.CheckFor(t, 30*time.Second, func() error {
		r, err := alice.GetLease(ctx, rep.Lease.ID)
		if err == nil {
			reason = r.Lease.Reason
		}
		if !(err == nil && r.Lease.Status == api.StatusEnded) {
			return errors.New("not yet: the lease to end")
		}
		return nil
	})
	// A holder that could not connect in time learns why from the controller.
	if want := "beforeLease hook: exit status 3 (output: cannot flash)"; !strings.Contains(reason, want) {
		t.Errorf("got reason %q, want it to contain %q", reason, want)
	}
}

func TestRemoteRestartResumesLease(t *testing.T) {
	l := startLab(t)
	dir := t.TempDir()
	cfg := l.exporterConfig("bench3", nil, fmt.Sprintf(`export:
  probe:
    type: extest.Probe
hooks:
  beforeLease:
    script: echo x >> %s/before
`, dir))
	stop := runRemote(t, cfg)
	alice := l.client("alice")
	l.online(alice, "bench3", true)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	_, ex := leaseDial(ctx, t, alice, api.LeaseRequest{Exporter: "bench3", Duration: time.Minute})
	if err := ex.WaitReady(ctx, nil); err != nil {
		t.Fatal(err)
	}
	stop()
	if _, err := ex.Driver("probe").Call(ctx, "resets"); !errors.Is(err, client.ErrUnavailable) {
		t.Errorf("call while stopped: got %v, want Unavailable", err)
	}
	runRemote(t, cfg)
	testkit.CheckFor(t, 30*time.Second, func() error {
		if ex.WaitReady(ctx, nil) != nil {
			return errors.New("not yet: the restarted exporter to serve the lease")
		}
		return nil
	})
	if _, err := ex.Driver("probe").Call(ctx, "resets"); err != nil {
		t.Errorf("call after restart: %v", err)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "before")); string(b) != "x\n" {
		t.Errorf("beforeLease ran %q, want once", b)
	}
}

// TestRemoteAllowChecked gives a client whose lease allows only probe.* a credential that
// (artificially, as a misconfigured NATS permission would) allows every call: the exporter
// itself still refuses calls outside the allow list.
func TestRemoteAllowChecked(t *testing.T) {
	l := startLab(t)
	cfg := l.exporterConfig("bench4", map[string]string{"board": "x"}, `export:
  probe: {type: extest.Probe}
  other: {type: extest.Probe}
`)
	runRemote(t, cfg)
	bob := l.client("bob", "probe.*")
	l.online(bob, "bench4", true)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	rep, err := bob.RequestLease(ctx, api.LeaseRequest{Exporter: "bench4", Duration: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(rep.Lease.Allow, ","); got != "probe.*" {
		t.Fatalf("got lease allow %q, want probe.*", got)
	}
	auth, err := controller.LoadAuthority(l.dir)
	if err != nil {
		t.Fatal(err)
	}
	broad, _, err := auth.MintLease("bob", "bench4", rep.Lease.ID, nil, rep.Lease.End)
	if err != nil {
		t.Fatal(err)
	}
	o, err := bob.LeaseOptions(rep)
	if err != nil {
		t.Fatal(err)
	}
	o.CredsData = broad.Creds()
	ex, err := client.Dial(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	defer ex.Close()
	if err := ex.WaitReady(ctx, nil); err != nil {
		t.Fatal(err)
	}
	if s, err := ex.Driver("probe").Call(ctx, "echo", "ab", 2); err != nil || s != "abab" {
		t.Errorf("allowed call: got %v, %v, want abab", s, err)
	}
	_, err = ex.Driver("other").Call(ctx, "echo", "ab", 2)
	if !errors.Is(err, client.ErrPermissionDenied) || !strings.Contains(err.Error(), "allows only probe.*") {
		t.Errorf("call outside the allow list: got %v, want PermissionDenied naming probe.*", err)
	}
	if err := bob.Release(ctx, rep.Lease.ID); err != nil {
		t.Fatal(err)
	}
}

func TestAllowed(t *testing.T) {
	tests := []struct {
		allow        []string
		path, method string
		want         bool
	}{
		{nil, "power", "on", true},
		{[]string{"*"}, "a.b", "c", true},
		{[]string{"power.*"}, "power", "on", true},
		{[]string{"power.*"}, "power.sub", "on", true},
		{[]string{"power.*"}, "powerx", "on", false},
		{[]string{"power.*"}, "serial", "write", false},
		{[]string{"serial.write"}, "serial", "write", true},
		{[]string{"serial.write"}, "serial", "read", false},
		{[]string{"serial.write"}, "serial.write", "x", false},
		{[]string{"serial.write", "power.*"}, "power", "off", true},
		{[]string{"dut.power.*"}, "dut", "on", false},
	}
	for _, tt := range tests {
		if got := Allowed(tt.allow, tt.path, tt.method); got != tt.want {
			t.Errorf("Allowed(%q, %q, %q): got %v, want %v", tt.allow, tt.path, tt.method, got, tt.want)
		}
	}
}

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// leaseDial requests a lease for c and connects to its exporter with the lease credential; the
// connection is closed when the test ends.
func leaseDial(ctx context.Context, t *testing.T, c *client.Controller, req api.LeaseRequest) (*api.LeaseReply, *client.Exporter) {
	t.Helper()
	rep, err := c.RequestLease(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	o, err := c.LeaseOptions(rep)
	if err != nil {
		t.Fatal(err)
	}
	ex, err := client.Dial(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ex.Close() })
	return rep, ex
}

// TestRemoteDirectStreams configures a distributed-mode exporter to offer direct stream
// connections at an advertised address (a counting TCP relay stands in for a NAT or a load
// balancer): a lease holder's stream goes through it, and the lease's end still resets it.
func TestRemoteDirectStreams(t *testing.T) {
	l := startLab(t)
	free, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	target := free.Addr().String()
	free.Close()
	relay, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer relay.Close()
	var relayed atomic.Int64
	go func() {
		for {
			c, err := relay.Accept()
			if err != nil {
				return
			}
			relayed.Add(1)
			go func() {
				defer c.Close()
				u, err := net.Dial("tcp", target)
				if err != nil {
					return
				}
				defer u.Close()
				go func() { _, _ = io.Copy(u, c); u.(*net.TCPConn).CloseWrite() }()
				_, _ = io.Copy(c, u)
			}()
		}
	}()
	cfg := l.exporterConfig("bench5", nil, fmt.Sprintf(`directStreams:
  listen: tcp:%s
  advertise: tcp:%s
export:
  probe: {type: extest.Probe}
`, target, relay.Addr()))
	runRemote(t, cfg)
	alice := l.client("alice")
	l.online(alice, "bench5", true)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	rep, ex := leaseDial(ctx, t, alice, api.LeaseRequest{Exporter: "bench5", Duration: time.Minute})
	if err := ex.WaitReady(ctx, nil); err != nil {
		t.Fatal(err)
	}
	items, err := ex.Driver("probe").Stream(ctx, "ticks")
	if err != nil {
		t.Fatal(err)
	}
	var v int64
	if err := items.Next(&v); err != nil {
		t.Fatal(err)
	}
	if n := relayed.Load(); n != 1 {
		t.Fatalf("%d connections through the advertised address, want 1", n)
	}
	if err := alice.Release(ctx, rep.Lease.ID); err != nil {
		t.Fatal(err)
	}
	for {
		if err := items.Next(&v); err != nil {
			if !errors.Is(err, client.ErrPermissionDenied) && !errors.Is(err, client.ErrUnavailable) {
				t.Fatalf("after release: got %v, want the stream ended by the lease", err)
			}
			break
		}
	}
}

// TestSetTargetOrder: what the controller says about the lease is applied only when it is at
// least as new (by lease bucket revision) as what the exporter has; replies without a revision
// (older controllers) are stale once a push arrived after their request.
func TestSetTargetOrder(t *testing.T) {
	l1 := &api.Lease{ID: "l1", Status: api.StatusActive}
	l2 := &api.Lease{ID: "l2", Status: api.StatusActive}
	type set struct {
		l        *api.Lease
		rev, seq uint64
		ifSeq    bool
	}
	for _, tc := range []struct {
		name string
		sets []set
		want string // target lease id, "" for none
	}{
		{"newer push replaces", []set{{l1, 10, 0, false}, {nil, 12, 0, false}}, ""},
		{"stale no-lease push ignored", []set{{l2, 12, 0, false}, {nil, 11, 0, false}}, "l2"},
		{"stale heartbeat reply ignored", []set{{l2, 12, 0, false}, {nil, 9, 0, true}}, "l2"},
		{"same revision applies", []set{{l1, 10, 0, false}, {l1, 10, 0, true}}, "l1"},
		{"reply after a later push, no revision", []set{{l1, 0, 0, false}, {nil, 0, 0, true}}, "l1"},
		{"reply without revision, no push since", []set{{l1, 0, 0, false}, {nil, 0, 1, true}}, ""},
		{"ended lease is none", []set{{l1, 5, 0, false}, {&api.Lease{ID: "l1", Status: api.StatusEnded}, 6, 0, false}}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := &remote{changed: make(chan struct{}), kick: make(chan struct{}, 1), log: slog.New(slog.DiscardHandler)}
			for _, s := range tc.sets {
				if !s.ifSeq {
					r.pushSeq++
				}
				r.setTarget(s.l, s.rev, s.seq, s.ifSeq)
			}
			got := ""
			if r.target != nil {
				got = r.target.ID
			}
			if got != tc.want {
				t.Errorf("target: got %q, want %q", got, tc.want)
			}
		})
	}
}

// TestWaitUnknownLeaseKeepsExporter: a holder waiting for a lease the exporter has not heard of
// makes it ask the controller (heartbeatNow) without holding up anything else of the exporter.
func TestWaitUnknownLeaseKeepsExporter(t *testing.T) {
	r := &remote{name: "e1", changed: make(chan struct{}), kick: make(chan struct{}, 1), poke: make(chan struct{}, 1),
		ended: map[string]string{}, pending: map[string]time.Time{}, log: slog.New(slog.DiscardHandler)}
	done := make(chan error, 1)
	go func() {
		done <- r.waitLease(&bus.Msg{Header: wire.Header{wire.HeaderLease: {"l9"}}})
	}()
	select {
	case <-r.poke:
	case <-time.After(20 * time.Second):
		t.Fatal("waiting for an unknown lease did not make the exporter ask the controller")
	}
	applied := make(chan struct{})
	go func() {
		r.setTarget(&api.Lease{ID: "l9", Status: api.StatusActive}, 7, 0, false)
		close(applied)
	}()
	select {
	case <-applied:
	case <-time.After(20 * time.Second):
		t.Fatal("the exporter is stuck while a holder waits for an unknown lease")
	}
	r.mu.Lock()
	r.markEndedLocked("l9", "test over")
	r.changedLocked()
	r.mu.Unlock()
	if err := <-done; !errors.Is(err, client.ErrPermissionDenied) {
		t.Fatalf("wait for an ended lease: got %v, want PERMISSION_DENIED", err)
	}
}
