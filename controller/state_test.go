package controller

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.yaml.in/yaml/v3"

	"jsn.dev/jsn/bus"
	"jsn.dev/jsn/controller/api"
	"jsn.dev/jsn/internal/testkit"
)

// TestRestartKeepsQueuedRequest restarts the controller with a request queued behind an active
// lease: both survive, and the queued one is granted when the exporter frees.
func TestRestartKeepsQueuedRequest(t *testing.T) {
	dir := t.TempDir()
	adminCfg, err := Init(dir, InitOptions{})
	if err != nil {
		t.Fatal(err)
	}
	o := testOptions(dir)
	o.OfflineAfter = time.Hour // the simulated exporter does not heartbeat
	l := &lab{t: t, dir: dir}
	l.start(o)
	l.admin = l.connectConfig(adminCfg)
	if _, err := os.Stat(filepath.Join(dir, fileAdminIdentity)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("admin.identity after the first start: got %v, want it removed", err)
	}
	if err := l.ctl.RegisterSimulated(context.Background(), "sim", 1, map[string]string{"board": "rpi4"}); err != nil {
		t.Fatal(err)
	}
	alice, aliceCfg := l.client("alice", api.CreateClientRequest{})
	bob, bobCfg := l.client("bob", api.CreateClientRequest{MaxPriority: 3})
	held := callOK[api.LeaseReply](t, alice, api.ClientSubject("alice", api.VerbLeaseRequest), api.LeaseRequest{Selector: "board=rpi4", Duration: time.Minute})
	queued := callOK[api.LeaseReply](t, bob, api.ClientSubject("bob", api.VerbLeaseRequest), api.LeaseRequest{Selector: "board=rpi4", Duration: time.Minute, Priority: 3})
	if held.Lease.Status != api.StatusActive || queued.Lease.Status != api.StatusQueued {
		t.Fatalf("got %s and %s, want active and queued", held.Lease.Status, queued.Lease.Status)
	}

	l.ctl.Close()
	l.start(o)
	alice, bob = l.connectConfig(aliceCfg), l.connectConfig(bobCfg)
	l.admin = l.connectConfig(adminCfg)
	got := callOK[api.LeaseReply](t, bob, api.ClientSubject("bob", api.VerbLeaseGet), api.LeaseID{ID: queued.Lease.ID})
	if got.Lease.Status != api.StatusQueued || got.Lease.Priority != 3 || got.Lease.Reason == "" {
		t.Fatalf("queued request after restart: got %+v, want queued, priority 3, with a reason", got.Lease)
	}
	list := callOK[api.ListLeasesReply](t, l.admin, api.ClientSubject(AdminName, api.VerbLeaseList), api.ListLeasesRequest{All: true})
	if len(list.Leases) != 2 {
		t.Fatalf("leases after restart: got %d, want 2 (active and queued)", len(list.Leases))
	}
	callOK[api.Empty](t, alice, api.ClientSubject("alice", api.VerbLeaseRelease), api.LeaseID{ID: held.Lease.ID})
	testkit.CheckFor(t, 30*time.Second, func() error {
		r := callOK[api.LeaseReply](t, bob, api.ClientSubject("bob", api.VerbLeaseGet), api.LeaseID{ID: queued.Lease.ID})
		if !(r.Lease.Status == api.StatusActive && r.Credential != nil && r.Lease.Exporter == "sim-0") {
			return errors.New("not yet: queued request granted after the restart")
		}
		return nil
	})
}

// TestLeaseBucketUnreadable: no client, exporter or lease credential can read the lease bucket
// (it holds every lease credential) through $JS.API or $KV.
func TestLeaseBucketUnreadable(t *testing.T) {
	l := startLab(t)
	l.exporter("e1", nil)
	e2 := callOK[api.ConfigReply](t, l.admin, api.AdminSubject(AdminName, api.VerbCreateExporter), api.CreateExporterRequest{Name: "e2"})
	alice, aliceCfg := l.client("alice", api.CreateClientRequest{})
	lease := callOK[api.LeaseReply](t, alice, api.ClientSubject("alice", api.VerbLeaseRequest), api.LeaseRequest{Exporter: "e1", Duration: time.Minute})
	who := []struct {
		name, inbox string
		creds       []byte
	}{
		{"client", "_INBOX_alice", credsOf(t, aliceCfg)},
		{"exporter", "_INBOX_e2", credsOf(t, e2.Config)},
		{"lease", "_INBOX_alice", lease.Credential.Creds()},
	}
	for _, w := range who {
		a := l.attack(t, w.creds, w.inbox)
		if a.nc == nil {
			t.Fatalf("%s: connection refused", w.name)
		}
		for _, s := range []string{"$KV.jsn-leases.>", "$JS.>", "$JS.API.>"} {
			if _, err := a.nc.SubscribeSync(s); err != nil {
				t.Fatal(err)
			}
			a.denied(t, w.name+" subscribe", s)
		}
		for _, s := range []string{
			"$JS.API.STREAM.INFO.KV_jsn-leases",
			"$JS.API.DIRECT.GET.KV_jsn-leases.$KV.jsn-leases.e1",
			"$JS.API.STREAM.MSG.GET.KV_jsn-leases",
			"$JS.API.CONSUMER.CREATE.KV_jsn-leases",
			"$JS.API.STREAM.LIST",
			"$KV.jsn-leases.e1",
		} {
			_ = a.nc.Publish(s, nil)
			a.denied(t, w.name+" publish", s)
		}
		// And through the JetStream client itself.
		js, err := jetstream.New(a.nc)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		kv, err := js.KeyValue(ctx, BucketLeases)
		if err == nil {
			if _, err = kv.Get(ctx, "e1"); err == nil {
				t.Errorf("%s: read the lease bucket", w.name)
			}
		}
		cancel()
	}
}

// TestReleasedCredentialRefused: a released lease credential is refused once the revocation
// batch window has passed.
func TestReleasedCredentialRefused(t *testing.T) {
	l := startLab(t)
	l.exporter("e1", nil)
	alice, _ := l.client("alice", api.CreateClientRequest{})
	// Several releases in a row land in few batches; every credential ends up refused.
	var creds [][]byte
	for range 5 {
		r := callOK[api.LeaseReply](t, alice, api.ClientSubject("alice", api.VerbLeaseRequest), api.LeaseRequest{Exporter: "e1", Duration: time.Minute})
		if r.Credential == nil {
			t.Fatalf("got %+v, want active", r.Lease)
		}
		callOK[api.Empty](t, alice, api.ClientSubject("alice", api.VerbLeaseRelease), api.LeaseID{ID: r.Lease.ID})
		creds = append(creds, r.Credential.Creds())
	}
	for i, c := range creds {
		testkit.CheckFor(t, 30*time.Second, func() error {
			a := l.attack(t, c, "_INBOX_alice")
			if a.nc != nil {
				a.nc.Close()
				return errors.New("not yet: released credential refused")
			}
			return nil
		})
		t.Logf("credential %d refused", i)
	}
	if n := l.ctl.revokes.Load(); n > 5 {
		t.Errorf("got %d account pushes for 5 releases, want at most 5", n)
	}
}

func TestDataDirLockAndReplicas(t *testing.T) {
	l := startLab(t)
	o := testOptions(l.dir)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if c, err := Start(ctx, o); !errors.Is(err, ErrDataInUse) {
		if c != nil {
			c.Close()
		}
		t.Fatalf("second embedded controller on one directory: got %v, want %v", err, ErrDataInUse)
	}
	o.Replicas = 3
	if c, err := Start(ctx, o); err == nil {
		c.Close()
		t.Fatal("3 bucket replicas on the embedded server: got no error")
	}
}

// TestResetAdmin issues a new admin config with the controller stopped: at the next start the
// new key administers the lab and the old one is revoked, whether the store survived or not.
func TestResetAdmin(t *testing.T) {
	for _, lost := range []bool{false, true} {
		name := "store kept"
		if lost {
			name = "store lost"
		}
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			oldCfg, err := Init(dir, InitOptions{Endpoint: "nats://lab.example:4222"})
			if err != nil {
				t.Fatal(err)
			}
			l := &lab{t: t, dir: dir}
			l.start(testOptions(dir))
			l.admin = l.connectConfig(oldCfg)
			l.client("alice", api.CreateClientRequest{})
			l.ctl.Close()
			if lost {
				if err := os.RemoveAll(filepath.Join(dir, dirJetStream)); err != nil {
					t.Fatal(err)
				}
			}

			newCfg, err := ResetAdmin(dir, "")
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(string(newCfg), "nats://lab.example:4222") {
				t.Errorf("new admin config does not keep the endpoint:\n%s", newCfg)
			}
			if b, _ := os.ReadFile(filepath.Join(dir, fileAdminConfig)); string(b) != string(newCfg) {
				t.Error("admin.yaml was not replaced by the new config")
			}
			l.start(testOptions(dir))
			if _, err := os.Stat(filepath.Join(dir, fileAdminReset)); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("admin.reset after the start: got %v, want it applied and removed", err)
			}
			admin := l.connectConfig(newCfg)
			callOK[api.ConfigReply](t, admin, api.AdminSubject(AdminName, api.VerbCreateClient), api.CreateClientRequest{Name: "bob"})

			// The old admin key is revoked: it can no longer connect.
			var c struct {
				Credentials string `yaml:"credentials"`
			}
			if err := yaml.Unmarshal(oldCfg, &c); err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			if old, err := bus.ConnectWith(ctx, l.ctl.URL(), bus.ConnectOptions{Name: AdminName, Creds: []byte(c.Credentials), CA: l.ctl.CA()}); err == nil {
				old.Close()
				t.Fatal("the previous admin credential still connects")
			}
		})
	}
}

func TestResetAdminNeedsKeys(t *testing.T) {
	if _, err := ResetAdmin(t.TempDir(), ""); err == nil || !strings.Contains(err.Error(), "controller init") {
		t.Fatalf("got %v, want an error pointing to jsn controller init", err)
	}
}
