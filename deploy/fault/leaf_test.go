package fault

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"jsn.dev/jsn/bus"
	"jsn.dev/jsn/client"
	"jsn.dev/jsn/controller"
	"jsn.dev/jsn/controller/api"
)

// link is a TCP proxy standing for the network between a leaf site and the hub: cut closes
// every connection through it and refuses new ones until heal.
type link struct {
	ln     net.Listener
	target string
	mu     sync.Mutex
	conns  map[net.Conn]bool
	cut    bool
	wg     sync.WaitGroup
}

func newLink(t *testing.T, target string) *link {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	k := &link{ln: ln, target: target, conns: map[net.Conn]bool{}}
	k.wg.Add(1)
	go k.accept()
	t.Cleanup(func() {
		ln.Close()
		k.setCut(true)
		k.wg.Wait()
	})
	return k
}

func (k *link) addr() string { return k.ln.Addr().String() }

func (k *link) accept() {
	defer k.wg.Done()
	for {
		c, err := k.ln.Accept()
		if err != nil {
			return
		}
		k.mu.Lock()
		if k.cut {
			k.mu.Unlock()
			c.Close()
			continue
		}
		up, err := net.DialTimeout("tcp", k.target, 5*time.Second)
		if err != nil {
			k.mu.Unlock()
			c.Close()
			continue
		}
		k.conns[c], k.conns[up] = true, true
		k.mu.Unlock()
		k.wg.Add(2)
		pump := func(dst, src net.Conn) {
			defer k.wg.Done()
			_, _ = io.Copy(dst, src)
			dst.Close()
			src.Close()
			k.mu.Lock()
			delete(k.conns, dst)
			delete(k.conns, src)
			k.mu.Unlock()
		}
		go pump(c, up)
		go pump(up, c)
	}
}

func (k *link) setCut(cut bool) {
	k.mu.Lock()
	k.cut = cut
	var open []net.Conn
	if cut {
		for c := range k.conns {
			open = append(open, c)
		}
	}
	k.mu.Unlock()
	for _, c := range open {
		c.Close()
	}
}

// startLeaf starts the leaf node of deploy/nats/leaf/leaf.conf as a process, linked to the
// cluster's leaf ports through links, and returns its client URL.
func (l *lab) startLeaf() (url string, links []*link) {
	t := l.t
	t.Helper()
	a, err := controller.LoadAuthority(l.data)
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(l.dir, "leaf")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	snippet, err := controller.NatsConfig(l.data)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(dir, "jsn.conf"), snippet)
	for name, src := range map[string]string{"lab-leaf.creds": "controller.creds", "sys-leaf.creds": "sys-user.creds"} {
		b, err := os.ReadFile(filepath.Join(l.data, src))
		if err != nil {
			t.Fatal(err)
		}
		writeFile(t, filepath.Join(dir, name), string(b))
	}
	port := freePorts(t, 1)[0]
	pairs := []string{
		"listen: 0.0.0.0:4222", fmt.Sprintf("listen: 127.0.0.1:%d", port),
		"http: 127.0.0.1:8222", "",
		"LAB_ACCOUNT_PUBLIC_KEY", a.LabPub,
		"SYS_ACCOUNT_PUBLIC_KEY", a.SysPub,
		"/etc/nats/", dir + "/",
	}
	for j := range 3 {
		k := newLink(t, fmt.Sprintf("127.0.0.1:%d", l.leafs[j]))
		links = append(links, k)
		pairs = append(pairs, fmt.Sprintf("nats-leaf://nats-%d:7422", j+1), "nats-leaf://"+k.addr())
	}
	conf := filepath.Join(dir, "leaf.conf")
	writeFile(t, conf, rewrite(t, "../nats/leaf/leaf.conf", pairs...))
	p := newProc(t, l.dir, "leaf", "nats", conf)
	p.start()
	return fmt.Sprintf("nats://127.0.0.1:%d", port), links
}

// TestFaultLeaf runs an exporter at a leaf site and measures how fast a released lease
// credential stops working there: with the link up, and when it was released while the link
// was cut (refused once the link heals, and it must not see the next holder's stream frames).
func TestFaultLeaf(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a three-node NATS cluster, a leaf node, a controller and an exporter as processes")
	}
	l := newLab(t)
	l.startCluster()
	l.startControllers(1)
	leafURL, links := l.startLeaf()
	l.startExporters("site", 1, map[string]string{"site": "one"}, leafURL)
	alice := l.client("alice")
	bob := l.client("bob")
	l.waitOnline(alice, "site=one", 1)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()

	// siteHolder connects at the leaf with a lease credential, as a user at the site does.
	siteHolder := func(rep *api.LeaseReply, name string) (*client.Exporter, *bus.Conn) {
		t.Helper()
		opts, err := alice.LeaseOptions(rep)
		if err != nil {
			t.Fatal(err)
		}
		opts.Host = leafURL
		var ex *client.Exporter
		eventually(t, "lease served at the site", time.Minute, func(ctx context.Context) error {
			var err error
			if ex == nil {
				if ex, err = client.Dial(ctx, opts); err != nil {
					return err
				}
			}
			_, err = ex.Driver("power").Call(ctx, "on")
			return err
		})
		t.Cleanup(func() { ex.Close() })
		raw, err := bus.ConnectWith(ctx, leafURL, bus.ConnectOptions{Name: name, Creds: rep.Credential.Creds()})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(raw.Close)
		return ex, raw
	}
	refused := func(rep *api.LeaseReply, name string) func(ctx context.Context) error {
		return func(ctx context.Context) error {
			c, err := bus.ConnectWith(ctx, leafURL, bus.ConnectOptions{Name: name, Creds: rep.Credential.Creds()})
			if err != nil {
				if strings.Contains(strings.ToLower(err.Error()), "authorization") || strings.Contains(err.Error(), "revoked") {
					return nil
				}
				return err
			}
			c.Close()
			return errors.New("the released credential is still accepted at the leaf")
		}
	}

	// 1. Link up: release, then the site's calls and connections with the credential stop.
	rep, err := alice.RequestLease(ctx, api.LeaseRequest{Selector: "site=one", Duration: 10 * time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	ex, _ := siteHolder(rep, "alice")
	released := time.Now()
	if err := alice.Release(ctx, rep.Lease.ID); err != nil {
		t.Fatal(err)
	}
	took := l.waitFor("calls of the released lease refused at the site", func(ctx context.Context) error {
		_, err := ex.Driver("power").Call(ctx, "on")
		if err == nil {
			return errors.New("power.on still works")
		}
		return nil
	})
	callsFor := took(released)
	connectFor := l.waitFor("the released credential refused at the leaf", refused(rep, "alice"))(released)

	// 2. The credential is released while the link is cut; bob gets the exporter.
	rep, err = alice.RequestLease(ctx, api.LeaseRequest{Selector: "site=one", Duration: 10 * time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	_, old := siteHolder(rep, "alice")
	var frames atomic.Int64
	var bobStream atomic.Bool
	sub, err := old.Subscribe("jsn.x."+rep.Lease.Exporter+".out.>", "", func(*bus.Msg) {
		if bobStream.Load() {
			frames.Add(1)
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = sub.Unsubscribe() }()
	for _, k := range links {
		k.setCut(true)
	}
	if err := alice.Release(ctx, rep.Lease.ID); err != nil {
		t.Fatal(err)
	}
	bobRep, err := bob.RequestLease(ctx, api.LeaseRequest{Selector: "site=one", Duration: 10 * time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	if bobRep.Lease.Status != api.StatusActive {
		if bobRep, err = bob.WaitLease(ctx, bobRep.Lease.ID, nil); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(2 * time.Second) // the cut lasts a moment (not synchronisation)
	healed := time.Now()
	for _, k := range links {
		k.setCut(false)
	}
	afterHeal := l.waitFor("the credential released during the cut refused at the leaf", refused(rep, "alice"))(healed)

	// bob, at the hub, streams from the exporter; the old credential's connection hears none of it.
	bobOpts, err := bob.LeaseOptions(bobRep)
	if err != nil {
		t.Fatal(err)
	}
	bex, err := client.Dial(ctx, bobOpts)
	if err != nil {
		t.Fatal(err)
	}
	defer bex.Close()
	if err := bex.WaitReady(ctx, nil); err != nil {
		t.Fatal(err)
	}
	bobStream.Store(true)
	items, err := bex.Driver("power").Stream(ctx, "read", 5)
	if err != nil {
		t.Fatal(err)
	}
	var r map[string]any
	n := 0
	for items.Next(&r) == nil {
		n++
	}
	items.Close()
	if n != 5 {
		t.Errorf("bob's stream: got %d readings, want 5", n)
	}
	if got := frames.Load(); got != 0 {
		t.Errorf("the released credential's connection at the leaf received %d frames of the next holder's stream", got)
	}
	t.Logf("leaf site: released credential's calls refused after %v, its connections after %v; "+
		"released during a cut: refused %v after the link healed", callsFor, connectFor, afterHeal)
}
