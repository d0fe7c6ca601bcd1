package fault

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"jsn.dev/jsn/client"
	"jsn.dev/jsn/controller"
	"jsn.dev/jsn/controller/api"
)

// long reports whether the long suite runs (JSN_FAULT=long, set by .ci/run).
func long() bool { return os.Getenv("JSN_FAULT") == "long" }

// lab is a deployment under test: NATS servers, controller replicas and exporters, each a
// process, and an admin connection.
type lab struct {
	t        *testing.T
	dir      string
	data     string // the controller's data directory
	adminCfg []byte

	nodes   []*proc // nats-1…nats-3 (nil in a single-server lab)
	clients []int   // their client ports
	mons    []int   // their monitoring ports
	leafs   []int   // their leaf node ports

	ctls    []*proc  // controller replicas
	ctlHTTP []string // their /metrics addresses
	exps    []*proc  // exporters
	expName []string
	url     string // what exporters and clients connect to

	adm *client.Controller
}

// freePorts returns n distinct loopback TCP ports that were free a moment ago.
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

// rewrite returns file's content with each old string replaced by its new one, failing when one
// does not occur (the deployed file changed and the suite no longer runs it as deployed).
func rewrite(t *testing.T, file string, pairs ...string) string {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	for i := 0; i+1 < len(pairs); i += 2 {
		if !strings.Contains(s, pairs[i]) {
			t.Fatalf("%s: %q not found; update the fault suite", file, pairs[i])
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

func newLab(t *testing.T) *lab {
	t.Helper()
	l := &lab{t: t, dir: t.TempDir()}
	if keep := os.Getenv("JSN_FAULT_LOGS"); keep != "" {
		// Keep the processes' logs (and stores) for a look afterwards.
		dir, err := os.MkdirTemp(keep, strings.ReplaceAll(t.Name(), "/", "_")+"-")
		if err != nil {
			t.Fatal(err)
		}
		l.dir = dir
		t.Logf("logs in %s", dir)
	}
	l.data = filepath.Join(l.dir, "data")
	cfg, err := controller.Init(l.data, controller.InitOptions{NoTLS: true})
	if err != nil {
		t.Fatal(err)
	}
	l.adminCfg = cfg
	return l
}

// startCluster starts the three servers of deploy/nats/cluster, as deployed (rewritten to
// loopback ports and temporary stores), plus the nats-config output of the lab.
func (l *lab) startCluster() {
	t := l.t
	t.Helper()
	snippet, err := controller.NatsConfig(l.data)
	if err != nil {
		t.Fatal(err)
	}
	ports := freePorts(t, 12)
	l.clients, l.mons, l.leafs = ports[0:3], ports[6:9], ports[9:12]
	routes := ports[3:6]
	for i := range 3 {
		dir := filepath.Join(l.dir, "nats-"+strconv.Itoa(i+1))
		if err := os.Mkdir(dir, 0o700); err != nil {
			t.Fatal(err)
		}
		pairs := []string{
			"listen: 0.0.0.0:4222", fmt.Sprintf("listen: 127.0.0.1:%d", l.clients[i]),
			"listen: 0.0.0.0:6222", fmt.Sprintf("listen: 127.0.0.1:%d", routes[i]),
			"listen: 0.0.0.0:7422", fmt.Sprintf("listen: 127.0.0.1:%d", l.leafs[i]),
			"http: 127.0.0.1:8222", fmt.Sprintf("http: 127.0.0.1:%d", l.mons[i]),
			"store_dir: /var/lib/nats/jetstream", "store_dir: " + strconv.Quote(filepath.Join(dir, "js")),
		}
		for j := range 3 {
			pairs = append(pairs, fmt.Sprintf("nats-route://nats-%d:6222", j+1), fmt.Sprintf("nats-route://127.0.0.1:%d", routes[j]))
		}
		writeFile(t, filepath.Join(dir, "cluster.conf"), rewrite(t, "../nats/cluster/cluster.conf", pairs...))
		writeFile(t, filepath.Join(dir, "jsn.conf"), snippet)
		name := fmt.Sprintf("nats-%d.conf", i+1)
		writeFile(t, filepath.Join(dir, name), rewrite(t, filepath.Join("../nats/cluster", name)))
		p := newProc(t, l.dir, fmt.Sprintf("nats-%d", i+1), "nats", filepath.Join(dir, name))
		l.nodes = append(l.nodes, p)
	}
	for _, p := range l.nodes {
		p.start()
	}
	var u []string
	for _, port := range l.clients {
		u = append(u, fmt.Sprintf("nats://127.0.0.1:%d", port))
	}
	l.url = strings.Join(u, ",")
}

// startControllers starts n controller replicas with R3 buckets on the cluster.
func (l *lab) startControllers(n int) {
	l.t.Helper()
	ports := freePorts(l.t, n)
	for i := range n {
		addr := fmt.Sprintf("127.0.0.1:%d", ports[i])
		arg, _ := json.Marshal(controllerArgs{Data: l.data, NatsURL: l.url, HTTP: addr, Replicas: 3})
		p := newProc(l.t, l.dir, fmt.Sprintf("controller-%d", i+1), "controller", string(arg))
		l.ctls = append(l.ctls, p)
		l.ctlHTTP = append(l.ctlHTTP, addr)
	}
	for _, p := range l.ctls {
		p.start()
	}
	l.dialAdmin()
}

// startEmbedded starts one controller with its embedded server on a fixed port (so that a
// restart comes back on the same address).
func (l *lab) startEmbedded() {
	l.t.Helper()
	ports := freePorts(l.t, 2)
	l.url = fmt.Sprintf("nats://127.0.0.1:%d", ports[0])
	addr := fmt.Sprintf("127.0.0.1:%d", ports[1])
	arg, _ := json.Marshal(controllerArgs{Data: l.data, Listen: fmt.Sprintf("127.0.0.1:%d", ports[0]), HTTP: addr})
	p := newProc(l.t, l.dir, "controller", "controller", string(arg))
	l.ctls = append(l.ctls, p)
	l.ctlHTTP = append(l.ctlHTTP, addr)
	p.start()
	l.dialAdmin()
}

func (l *lab) dialAdmin() {
	cfg, err := client.ParseConfig("admin.yaml", l.adminCfg)
	if err != nil {
		l.t.Fatal(err)
	}
	cfg.Endpoint = l.url
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	adm, err := client.DialController(ctx, cfg)
	if err != nil {
		l.t.Fatal(err)
	}
	l.adm = adm
	l.t.Cleanup(func() { _ = adm.Close() })
}

// startExporters creates n exporter identities labelled fault=yes and runs each in a process,
// connected to endpoint ("" = the lab's URL).
func (l *lab) startExporters(prefix string, n int, labels map[string]string, endpoint string) []*proc {
	l.t.Helper()
	var ps []*proc
	for i := range n {
		name := fmt.Sprintf("%s-%d", prefix, i)
		var cfg []byte
		eventually(l.t, "create exporter "+name, 30*time.Second, func(ctx context.Context) error {
			var err error
			cfg, err = l.adm.CreateExporter(ctx, name, labels)
			if err != nil && strings.Contains(err.Error(), "already exists") {
				return fmt.Errorf("stop: %w", err)
			}
			return err
		})
		if endpoint != "" {
			cfg = []byte(strings.Replace(string(cfg), "endpoint: "+l.url, "endpoint: "+endpoint, 1))
		}
		file := filepath.Join(l.dir, name+".yaml")
		writeFile(l.t, file, string(cfg))
		p := newProc(l.t, l.dir, name, "exporter", file)
		p.start()
		ps = append(ps, p)
		l.exps = append(l.exps, p)
		l.expName = append(l.expName, name)
	}
	return ps
}

// client creates client identity name and connects to the controller API with it.
func (l *lab) client(name string) *client.Controller {
	l.t.Helper()
	var cfgYAML []byte
	eventually(l.t, "create client "+name, 30*time.Second, func(ctx context.Context) error {
		var err error
		cfgYAML, err = l.adm.CreateClient(ctx, name, nil, 0, false)
		return err
	})
	cfg, err := client.ParseConfig(name+".yaml", cfgYAML)
	if err != nil {
		l.t.Fatal(err)
	}
	cfg.Endpoint = l.url
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := client.DialController(ctx, cfg)
	if err != nil {
		l.t.Fatal(err)
	}
	l.t.Cleanup(func() { c.Close() })
	return c
}

// waitOnline waits until every exporter matching selector is online.
func (l *lab) waitOnline(c *client.Controller, selector string, n int) {
	l.t.Helper()
	eventually(l.t, "exporters online", 60*time.Second, func(ctx context.Context) error {
		ex, err := c.ListExporters(ctx, selector)
		if err != nil {
			return err
		}
		online := 0
		for _, e := range ex {
			if e.Online {
				online++
			}
		}
		if online != n {
			return fmt.Errorf("%d of %d exporters online", online, n)
		}
		return nil
	})
}

// metaLeader returns the index of the JetStream meta leader, asking the running servers'
// monitoring endpoints (/jsz).
func (l *lab) metaLeader(ctx context.Context) (int, error) {
	var last error
	for i, p := range l.nodes {
		if !p.running() {
			continue
		}
		var jsz struct {
			Meta *struct {
				Leader string `json:"leader"`
			} `json:"meta_cluster"`
		}
		if err := getJSON(ctx, fmt.Sprintf("http://127.0.0.1:%d/jsz", l.mons[i]), &jsz); err != nil {
			last = err
			continue
		}
		if jsz.Meta == nil || jsz.Meta.Leader == "" {
			last = fmt.Errorf("nats-%d knows no meta leader", i+1)
			continue
		}
		for j := range l.nodes {
			if jsz.Meta.Leader == fmt.Sprintf("nats-%d", j+1) && l.nodes[j].running() {
				return j, nil
			}
		}
		last = fmt.Errorf("meta leader %s is not running", jsz.Meta.Leader)
	}
	if last == nil {
		last = fmt.Errorf("no server running")
	}
	return -1, last
}

// schedulerLeader returns the index of the controller replica that schedules (its /metrics
// says jsn_controller_leader 1).
func (l *lab) schedulerLeader(ctx context.Context) (int, error) {
	var found []int
	for i, p := range l.ctls {
		if !p.running() {
			continue
		}
		b, err := get(ctx, "http://"+l.ctlHTTP[i]+"/metrics")
		if err != nil {
			continue
		}
		if strings.Contains(string(b), "\njsn_controller_leader 1\n") {
			found = append(found, i)
		}
	}
	if len(found) != 1 {
		return -1, fmt.Errorf("replicas leading: %v, want exactly one", found)
	}
	return found[0], nil
}

func get(ctx context.Context, url string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s: %s", url, resp.Status)
	}
	return b, nil
}

func getJSON(ctx context.Context, url string, v any) error {
	b, err := get(ctx, url)
	if err != nil {
		return err
	}
	return json.Unmarshal(b, v)
}

// eventually polls fn until it returns nil or total passes, then fails with its last error. An
// error starting with "stop:" fails at once.
func eventually(t *testing.T, what string, total time.Duration, fn func(ctx context.Context) error) {
	t.Helper()
	var err error
	for end := time.Now().Add(total); time.Now().Before(end); time.Sleep(100 * time.Millisecond) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		err = fn(ctx)
		cancel()
		if err == nil {
			return
		}
		if strings.HasPrefix(err.Error(), "stop:") {
			break
		}
	}
	t.Fatalf("%s: %v", what, err)
}

// leaseRequest is the request every worker makes.
func leaseRequest(selector string) api.LeaseRequest {
	return api.LeaseRequest{Selector: selector, Duration: 10 * time.Minute}
}
