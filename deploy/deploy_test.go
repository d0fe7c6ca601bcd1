package deploy

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"jsn.dev/jsn/bus"
	"jsn.dev/jsn/client"
	"jsn.dev/jsn/controller"
	"jsn.dev/jsn/controller/api"
	_ "jsn.dev/jsn/drivers/power" // power.Mock for the exporter at the leaf site
	"jsn.dev/jsn/exporter"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// freePorts returns n distinct loopback TCP ports that were free a moment ago (cluster routes
// need each other's ports before any server starts, so -1 cannot be used for them).
func freePorts(t *testing.T, n int) []int {
	t.Helper()
	var ports []int
	var lns []net.Listener
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		lns = append(lns, ln)
		ports = append(ports, ln.Addr().(*net.TCPAddr).Port)
	}
	for _, ln := range lns {
		ln.Close()
	}
	return ports
}

// rewrite returns the content of file with each old string replaced by its new one, failing the
// test when one does not occur (the deployed file changed and the test no longer checks it).
func rewrite(t *testing.T, file string, pairs ...string) string {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	for i := 0; i+1 < len(pairs); i += 2 {
		if !strings.Contains(s, pairs[i]) {
			t.Fatalf("%s: %q not found; update the test", file, pairs[i])
		}
		s = strings.ReplaceAll(s, pairs[i], pairs[i+1])
	}
	return s
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

// cluster is the three-node cluster of nats/cluster started on loopback.
type cluster struct {
	t       *testing.T
	conf    string   // directory holding the rewritten configs and jsn.conf
	files   []string // nats-N.conf
	clients []int    // client ports
	leafs   []int    // leaf node ports
	mu      sync.Mutex
	srv     []*bus.Server // nil once killed
}

// startCluster writes the deployed cluster configs, rewritten to loopback ports and temporary
// store directories, next to the nats-config output for data, and starts the three servers.
func startCluster(t *testing.T, data string) *cluster {
	t.Helper()
	snippet, err := controller.NatsConfig(data)
	if err != nil {
		t.Fatal(err)
	}
	ports := freePorts(t, 9)
	c := &cluster{t: t, conf: t.TempDir(), clients: ports[0:3], leafs: ports[6:9], srv: make([]*bus.Server, 3)}
	routes := ports[3:6]
	writeFile(t, filepath.Join(c.conf, "jsn.conf"), snippet)
	for i := range 3 {
		dir := filepath.Join(c.conf, "n"+strconv.Itoa(i+1))
		if err := os.Mkdir(dir, 0o700); err != nil {
			t.Fatal(err)
		}
		pairs := []string{
			"listen: 0.0.0.0:4222", fmt.Sprintf("listen: 127.0.0.1:%d", c.clients[i]),
			"listen: 0.0.0.0:6222", fmt.Sprintf("listen: 127.0.0.1:%d", routes[i]),
			"listen: 0.0.0.0:7422", fmt.Sprintf("listen: 127.0.0.1:%d", c.leafs[i]),
			"http: 127.0.0.1:8222", "", // no monitoring port in the test
			"store_dir: /var/lib/nats/jetstream", "store_dir: " + strconv.Quote(filepath.Join(t.TempDir(), "js")),
		}
		for j := range 3 {
			pairs = append(pairs, fmt.Sprintf("nats-route://nats-%d:6222", j+1), fmt.Sprintf("nats-route://127.0.0.1:%d", routes[j]))
		}
		writeFile(t, filepath.Join(dir, "cluster.conf"), rewrite(t, "nats/cluster/cluster.conf", pairs...))
		writeFile(t, filepath.Join(dir, "jsn.conf"), snippet)
		name := fmt.Sprintf("nats-%d.conf", i+1)
		writeFile(t, filepath.Join(dir, name), rewrite(t, filepath.Join("nats/cluster", name)))
		c.files = append(c.files, filepath.Join(dir, name))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	errs := make([]error, 3)
	for i := range 3 {
		wg.Go(func() {
			s, err := bus.StartServerFromConfig(ctx, c.files[i], nil)
			c.mu.Lock()
			c.srv[i], errs[i] = s, err
			c.mu.Unlock()
		})
	}
	wg.Wait()
	t.Cleanup(func() {
		for i := range 3 {
			c.kill(i)
		}
	})
	for i, err := range errs {
		if err != nil {
			t.Fatalf("start nats-%d: %v", i+1, err)
		}
	}
	return c
}

// kill shuts server i down (as losing its host would).
func (c *cluster) kill(i int) {
	c.mu.Lock()
	s := c.srv[i]
	c.srv[i] = nil
	c.mu.Unlock()
	if s != nil {
		s.Shutdown()
	}
}

// url is the --nats-url of the servers in idx (all when empty).
func (c *cluster) url(idx ...int) string {
	if len(idx) == 0 {
		idx = []int{0, 1, 2}
	}
	var u []string
	for _, i := range idx {
		u = append(u, fmt.Sprintf("nats://127.0.0.1:%d", c.clients[i]))
	}
	return strings.Join(u, ",")
}

// startController starts a controller replica with R3 buckets against url. A fresh cluster
// elects its JetStream meta leader a moment after the servers accept connections, so
// creating the R3 buckets is retried until the deadline.
func startController(t *testing.T, data, url string) *controller.Controller {
	t.Helper()
	o := controller.Options{Data: data, NatsURL: url, Replicas: 3,
		Reconcile: 200 * time.Millisecond, OfflineAfter: time.Hour, MaxDuration: time.Hour}
	deadline := time.Now().Add(20 * time.Second)
	for try := 1; ; try++ {
		ctx, cancel := context.WithTimeout(context.Background(), time.Duration(try)*2*time.Second)
		c, err := controller.Start(ctx, o)
		cancel()
		if err == nil {
			t.Cleanup(c.Close)
			return c
		}
		if time.Now().After(deadline) {
			t.Fatalf("start controller on the cluster: %v", err)
		}
		t.Logf("controller not started yet: %v", err)
		time.Sleep(250 * time.Millisecond)
	}
}

func dialAdmin(t *testing.T, adminCfg []byte, endpoint string) *client.Controller {
	t.Helper()
	cfg, err := client.ParseConfig("admin.yaml", adminCfg)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Endpoint = endpoint
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ctl, err := client.DialController(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ctl.Close() })
	return ctl
}

// eventually polls fn until it returns nil or the deadline passes, then fails with its last error.
func eventually(t *testing.T, what string, total time.Duration, fn func(ctx context.Context) error) {
	t.Helper()
	var err error
	for end := time.Now().Add(total); time.Now().Before(end); time.Sleep(100 * time.Millisecond) {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		err = fn(ctx)
		cancel()
		if err == nil {
			return
		}
	}
	t.Fatalf("%s: %v", what, err)
}

// TestCluster starts the three servers of nats/cluster from their configs (plus the
// nats-config output), runs a controller with R3 buckets against them, grants a lease, kills
// one server and checks the lease survives: still active and held, seen by a fresh replica
// that reads the buckets from the two remaining servers, and the cluster still grants.
func TestCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a three-node NATS cluster")
	}
	data := filepath.Join(t.TempDir(), "data")
	adminCfg, err := controller.Init(data, controller.InitOptions{NoTLS: true}) // the test cluster serves plain NATS
	if err != nil {
		t.Fatal(err)
	}
	cl := startCluster(t, data)
	ctl := startController(t, data, cl.url())
	ctx, cancel := context.WithTimeout(context.Background(), 25*time.Second)
	defer cancel()
	if err := ctl.RegisterSimulated(ctx, "sim", 2, map[string]string{"board": "rpi4"}); err != nil {
		t.Fatal(err)
	}
	admin := dialAdmin(t, adminCfg, cl.url())
	var lease *api.LeaseReply
	eventually(t, "grant a lease", 10*time.Second, func(ctx context.Context) error {
		r, err := admin.RequestLease(ctx, api.LeaseRequest{Exporter: "sim-0", Duration: 10 * time.Minute})
		if err != nil {
			return err
		}
		if r.Lease.Status != api.StatusActive || r.Credential == nil {
			return fmt.Errorf("got lease %+v, want active with a credential", r.Lease)
		}
		lease = r
		return nil
	})

	// Lose nats-1 (the first URL every connection tries).
	cl.kill(0)

	// The lease is still active through the running replica.
	eventually(t, "lease after losing nats-1", 15*time.Second, func(ctx context.Context) error {
		r, err := admin.GetLease(ctx, lease.Lease.ID)
		if err != nil {
			return err
		}
		if r.Lease.Status != api.StatusActive {
			return fmt.Errorf("got status %q, want %q", r.Lease.Status, api.StatusActive)
		}
		return nil
	})
	// A new replica on the surviving servers reads the lease from the R3 buckets.
	ctl2 := startController(t, data, cl.url(1, 2))
	admin2 := dialAdmin(t, adminCfg, cl.url(1, 2))
	eventually(t, "lease seen by a new replica", 15*time.Second, func(ctx context.Context) error {
		if m := ctl2.Metrics(); m.Active != 1 || m.Registered != 2 {
			return fmt.Errorf("new replica: got %d active leases and %d exporters, want 1 and 2", m.Active, m.Registered)
		}
		ls, err := admin2.ListLeases(ctx, true)
		if err != nil {
			return err
		}
		for _, l := range ls {
			if l.ID == lease.Lease.ID && l.Status == api.StatusActive {
				return nil
			}
		}
		return fmt.Errorf("lease %s not active in %+v", lease.Lease.ID, ls)
	})
	// The held exporter stays held (the request queues), the free one is still granted: the
	// buckets take writes with two of three servers.
	eventually(t, "requests after losing nats-1", 15*time.Second, func(ctx context.Context) error {
		r, err := admin2.RequestLease(ctx, api.LeaseRequest{Exporter: "sim-1", Duration: time.Minute})
		if err != nil {
			return err
		}
		if r.Lease.Status != api.StatusActive {
			return fmt.Errorf("sim-1: got status %q, want %q", r.Lease.Status, api.StatusActive)
		}
		return nil
	})
	r, err := admin2.RequestLease(ctx, api.LeaseRequest{Exporter: "sim-0", Duration: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	if r.Lease.Status != api.StatusQueued {
		t.Errorf("sim-0 while leased: got status %q, want %q", r.Lease.Status, api.StatusQueued)
	}
}

// startLeaf starts the server of nats/leaf/leaf.conf on loopback, linked to the cluster's leaf
// ports with the credentials and account keys the file tells an operator to put in place.
func startLeaf(t *testing.T, data string, cl *cluster) *bus.Server {
	t.Helper()
	a, err := controller.LoadAuthority(data)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	snippet, err := controller.NatsConfig(data)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(dir, "jsn.conf"), snippet)
	for name, src := range map[string]string{"lab-leaf.creds": "controller.creds", "sys-leaf.creds": "sys-user.creds"} {
		b, err := os.ReadFile(filepath.Join(data, src))
		if err != nil {
			t.Fatal(err)
		}
		writeFile(t, filepath.Join(dir, name), string(b))
	}
	pairs := []string{
		"listen: 0.0.0.0:4222", "listen: 127.0.0.1:-1",
		"http: 127.0.0.1:8222", "",
		"LAB_ACCOUNT_PUBLIC_KEY", a.LabPub,
		"SYS_ACCOUNT_PUBLIC_KEY", a.SysPub,
		"/etc/nats/", dir + "/",
	}
	for j := range 3 {
		pairs = append(pairs, fmt.Sprintf("nats-leaf://nats-%d:7422", j+1), fmt.Sprintf("nats-leaf://127.0.0.1:%d", cl.leafs[j]))
	}
	conf := filepath.Join(dir, "leaf.conf")
	writeFile(t, conf, rewrite(t, "nats/leaf/leaf.conf", pairs...))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := bus.StartServerFromConfig(ctx, conf, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Shutdown)
	return s
}

// TestLeafNode runs an exporter at a remote site, connected only to the leaf node of
// nats/leaf/leaf.conf, and a client at the hub: the exporter registers through the leaf link, the
// client leases it and calls its driver across the link, and releasing the lease revokes the
// lease credential on the leaf too (the system account link carries the account update).
func TestLeafNode(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a three-node NATS cluster and a leaf node")
	}
	data := filepath.Join(t.TempDir(), "data")
	adminCfg, err := controller.Init(data, controller.InitOptions{NoTLS: true}) // the test cluster serves plain NATS
	if err != nil {
		t.Fatal(err)
	}
	cl := startCluster(t, data)
	startController(t, data, cl.url())
	leaf := startLeaf(t, data, cl)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	acfg, err := client.ParseConfig("", adminCfg)
	if err != nil {
		t.Fatal(err)
	}
	acfg.Endpoint = cl.url()
	adm, err := client.DialController(ctx, acfg)
	if err != nil {
		t.Fatal(err)
	}
	defer adm.Close()
	excfgYAML, err := adm.CreateExporter(ctx, "site1-board", map[string]string{"site": "site1"})
	if err != nil {
		t.Fatal(err)
	}
	excfg, err := exporter.ParseConfig("site1-board.yaml", excfgYAML)
	if err != nil {
		t.Fatal(err)
	}
	excfg.Endpoint = leaf.TCPURL() // the site's exporters connect locally
	ectx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- exporter.RunRemote(ectx, excfg, nil) }()
	defer func() {
		stop()
		if err := <-done; err != nil {
			t.Errorf("exporter: %v", err)
		}
	}()

	admin := dialAdmin(t, adminCfg, cl.url())
	eventually(t, "exporter at the leaf site online", 15*time.Second, func(ctx context.Context) error {
		ex, err := admin.ListExporters(ctx, "site=site1")
		if err != nil {
			return err
		}
		if len(ex) != 1 || !ex[0].Online {
			return fmt.Errorf("got %+v, want site1-board online", ex)
		}
		return nil
	})
	r, err := admin.RequestLease(ctx, api.LeaseRequest{Selector: "site=site1", Duration: 10 * time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	opts, err := admin.LeaseOptions(r)
	if err != nil {
		t.Fatal(err)
	}
	e, err := client.Dial(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	eventually(t, "power.on across the leaf link", 10*time.Second, func(ctx context.Context) error {
		_, err := e.Driver("power").Call(ctx, "on")
		return err
	})
	var status string
	if err := e.Driver("power").CallInto(ctx, "status", &status); err != nil {
		t.Fatal(err)
	}
	if status != "on" {
		t.Errorf("power.status: got %q, want %q", status, "on")
	}

	// The lease credential works at the leaf until released, then the leaf refuses it.
	lc, err := bus.ConnectWith(ctx, leaf.TCPURL(), bus.ConnectOptions{Name: acfg.Metadata.Name, Creds: r.Credential.Creds()})
	if err != nil {
		t.Fatalf("lease credential at the leaf: %v", err)
	}
	lc.Close()
	if err := admin.Release(ctx, r.Lease.ID); err != nil {
		t.Fatal(err)
	}
	eventually(t, "released credential refused at the leaf", 10*time.Second, func(ctx context.Context) error {
		c, err := bus.ConnectWith(ctx, leaf.TCPURL(), bus.ConnectOptions{Name: acfg.Metadata.Name, Creds: r.Credential.Creds()})
		if err != nil {
			return nil
		}
		c.Close()
		return fmt.Errorf("still accepted")
	})
}
