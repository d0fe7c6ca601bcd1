package controller

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"jsn.dev/jsn/bus"
	"jsn.dev/jsn/bus/wire"
	"jsn.dev/jsn/controller/api"
	"jsn.dev/jsn/internal/testkit"
)

// consoleExporter is l.exporter with a describe that has a serial console and a power switch.
func (l *lab) consoleExporter(name string) *bus.Conn {
	l.t.Helper()
	c := l.exporter(name, nil)
	d := &wire.Description{Exporter: name, Drivers: []*wire.NodeDesc{
		{Name: "console", Path: "console", Type: "serial.Port", Interface: consoleInterface, Methods: []*wire.MethodDesc{
			{Name: "connect", Kind: wire.KindByteStream}, {Name: "set_baudrate", Kind: wire.KindCall}}},
		{Name: "power", Path: "power", Type: "power.Mock", Interface: "jsn.power.v1", Methods: []*wire.MethodDesc{
			{Name: "on", Kind: wire.KindCall}}},
	}}
	callOK[api.RegisterReply](l.t, c, api.ExporterSubject(name, api.VerbRegister), api.RegisterRequest{Describe: d})
	return c
}

// sees subscribes c to subject and returns a function that expects one message there.
func sees(t *testing.T, c *bus.Conn, subject string) func(what string) {
	t.Helper()
	got := make(chan string, 16)
	if _, err := c.Subscribe(subject, "", func(m *bus.Msg) { got <- m.Subject }); err != nil {
		t.Fatal(err)
	}
	if err := c.Flush(t.Context()); err != nil {
		t.Fatal(err)
	}
	return func(what string) {
		t.Helper()
		select {
		case <-got:
		case <-time.After(5 * time.Second):
			t.Errorf("%s: did not reach %s", what, subject)
		}
	}
}

// TestBrowserWriteCredential shows with raw NATS connections who may type into a console from
// the page: the holder's login with its lease may open the console streams of its lease's
// exporter and send their frames, and nothing of other exporters, leases or drivers; a watch-only
// client's, a viewer's or a lease-less login may not open or write a stream; a login for a lease
// that is not yours is refused; the lease's release closes the credential, and unsharing closes
// the sharee's.
func TestBrowserWriteCredential(t *testing.T) {
	l := startWebLab(t)
	e1 := l.consoleExporter("e1")
	l.consoleExporter("e2")
	alice, _ := l.client("alice", api.CreateClientRequest{})
	bob, _ := l.client("bob", api.CreateClientRequest{})
	carol, _ := l.client("carol", api.CreateClientRequest{})
	watcher, _ := l.client("watcher", api.CreateClientRequest{Watch: []string{"e1"}})
	wallRep := callOK[api.ConfigReply](t, l.admin, api.AdminSubject(AdminName, api.VerbCreateViewer), api.CreateViewerRequest{Name: "wall"})
	wall := l.connectConfig(wallRep.Config)

	la := callOK[api.LeaseReply](t, alice, api.ClientSubject("alice", api.VerbLeaseRequest), api.LeaseRequest{Exporter: "e1", Duration: 10 * time.Minute})
	lb := callOK[api.LeaseReply](t, bob, api.ClientSubject("bob", api.VerbLeaseRequest), api.LeaseRequest{Exporter: "e2", Duration: time.Minute})
	a, b := la.Lease.ID, lb.Lease.ID
	login := func(c *bus.Conn, subject string, lease string) (*api.BrowserSession, error) {
		t.Helper()
		tok, err := call[api.DashboardToken](t, c, subject, api.DashboardRequest{Lease: lease})
		if err != nil {
			return nil, err
		}
		s, code, err := l.exchange(tok.Token)
		if err != nil {
			return nil, fmt.Errorf("exchange: %d %w", code, err)
		}
		return s, nil
	}

	// The holder, with its lease.
	s, err := login(alice, api.ClientSubject("alice", api.VerbDashboard), a)
	if err != nil {
		t.Fatal(err)
	}
	w := s.Write
	if w == nil || w.Exporter != "e1" || w.Lease != a || fmt.Sprint(w.Consoles) != "[console]" || w.Method != "connect" ||
		!strings.HasPrefix(w.Inbox, bus.HolderInbox("e1", a, "alice")+".") || !strings.Contains(w.Inbox, ".w") || w.Stream != wire.StreamToken(a, "alice") {
		t.Fatalf("holder's write rights %+v", w)
	}
	if exp, _ := time.Parse(time.RFC3339, s.Expires); exp.After(la.Lease.End.Add(time.Second)) {
		t.Errorf("browser credential expires %s, after the lease's end %s", s.Expires, la.Lease.End)
	}
	br := l.browser(t, s)
	// What it may: open e1's console stream (reply in its inbox), send frames, read the lease's
	// stream output and the replies.
	open := sees(t, e1, "jsn.x.e1.call.console.connect")
	as := w.Stream // a~alice
	frames := sees(t, e1, "jsn.x.e1.stream."+as+".s1")
	out, err := br.nc.SubscribeSync("jsn.x.e1.out." + as + ".s1")
	if err != nil {
		t.Fatal(err)
	}
	reply, err := br.nc.SubscribeSync(w.Inbox + ".r1")
	if err != nil {
		t.Fatal(err)
	}
	if err := br.nc.Flush(); err != nil {
		t.Fatal(err)
	}
	msg := nats.NewMsg("jsn.x.e1.call.console.connect")
	msg.Reply = w.Inbox + ".r1"
	msg.Header.Set(wire.HeaderLease, a)
	msg.Header.Set(wire.HeaderStream, "s1")
	if err := br.nc.PublishMsg(msg); err != nil {
		t.Fatal(err)
	}
	open("the holder's open call")
	if err := br.nc.Publish("jsn.x.e1.stream."+as+".s1", []byte{1, 0, 0, 0, 0, 0, 0, 0, 0, 'h', 'i'}); err != nil {
		t.Fatal(err)
	}
	frames("the holder's DATA frame")
	if err := e1.Publish("jsn.x.e1.out."+as+".s1", nil, []byte("x")); err != nil {
		t.Fatal(err)
	}
	if _, err := out.NextMsg(5 * time.Second); err != nil {
		t.Errorf("stream output: %v", err)
	}
	if err := e1.Publish(w.Inbox+".r1", nil, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := reply.NextMsg(5 * time.Second); err != nil {
		t.Errorf("open reply: %v", err)
	}
	// What it may not: other drivers, methods, exporters, leases; the lease's whole inbox, its
	// events; calls beyond opening a console.
	for _, subj := range []string{"jsn.x.e1.call.power.on", "jsn.x.e1.call.console.set_baudrate", "jsn.x.e1.describe",
		"jsn.x.e2.call.console.connect", "jsn.x.e2.stream." + b + "~bob.s1", "jsn.x.e1.stream." + b + "~bob.s1", "jsn.x.e1.out." + as + ".s1",
		"jsn.x.e1.stream." + a + ".s1", "jsn.x.e1.stream." + a + "~carol.s1",
		"jsn.ctl.c.alice.lease.release", "jsn.tap.e1.console"} {
		_ = br.nc.Publish(subj, nil)
		br.denied(t, "holder's browser publish", subj)
	}
	sealed := w.Inbox[:strings.LastIndex(w.Inbox, ".")] // alice's sealed inbox of the lease
	for _, subj := range []string{bus.LeaseInbox("e1", a) + ".>", bus.HolderInbox("e1", a, "alice") + ".>", sealed + ".>", "jsn.x.e1.ev." + a + ".>",
		"jsn.x.e2.out." + b + "~bob.*", bus.LeaseInbox("e2", b) + ".>", "jsn.x.e1.out.*.*", "jsn.x.e1.out." + a + ".*",
		"jsn.x.e1.out." + a + "~carol.*", "_INBOX_c.alice.>"} {
		if _, err := br.nc.SubscribeSync(subj); err != nil {
			t.Fatal(err)
		}
		br.denied(t, "holder's browser subscribe", subj)
	}

	// Someone else's lease: refused at the token already.
	if _, err := login(bob, api.ClientSubject("bob", api.VerbDashboard), a); err == nil || !strings.Contains(err.Error(), "not an active lease of yours") {
		t.Errorf("bob's login with alice's lease: %v, want refused as not his", err)
	}
	if _, err := login(alice, api.ClientSubject("alice", api.VerbDashboard), "nosuchlease"); err == nil || !strings.Contains(err.Error(), "not an active lease of yours") {
		t.Errorf("login with an unknown lease: %v", err)
	}
	// A viewer may not ask for a lease's rights; its own login, a watch-only client's and the
	// holder's without a lease are read-only: no stream.
	if _, err := login(wall, api.ViewerSubject("wall", api.VerbDashboard), a); err == nil || !strings.Contains(err.Error(), "read-only") {
		t.Errorf("viewer's login with a lease: %v, want refused", err)
	}
	for _, who := range []struct {
		name string
		c    *bus.Conn
		subj string
	}{{"wall", wall, api.ViewerSubject("wall", api.VerbDashboard)}, {"watcher", watcher, api.ClientSubject("watcher", api.VerbDashboard)},
		{"alice", alice, api.ClientSubject("alice", api.VerbDashboard)}} {
		s, err := login(who.c, who.subj, "")
		if err != nil {
			t.Fatalf("%s: %v", who.name, err)
		}
		if s.Write != nil {
			t.Errorf("%s's read-only login has write rights %+v", who.name, s.Write)
		}
		ro := l.browser(t, s)
		for _, subj := range []string{"jsn.x.e1.call.console.connect", "jsn.x.e1.stream." + a + "~alice.s1", "jsn.x.e1.stream." + a + "~" + who.name + ".s1"} {
			_ = ro.nc.Publish(subj, nil)
			ro.denied(t, who.name+"'s read-only browser publish", subj)
		}
		if _, err := ro.nc.SubscribeSync("jsn.x.e1.out." + a + "~alice.*"); err != nil {
			t.Fatal(err)
		}
		ro.denied(t, who.name+"'s read-only browser subscribe", "jsn.x.e1.out."+a+"~alice.*")
	}

	// The power state subject: the watchers of e1 read it, a watcher of e2 only does not.
	w2, _ := l.client("w2", api.CreateClientRequest{Watch: []string{"e2"}})
	for _, who := range []struct {
		name string
		c    *bus.Conn
		ok   bool
	}{{"watcher", watcher, true}, {"w2", w2, false}} {
		s, err := login(who.c, api.ClientSubject(who.name, api.VerbDashboard), "")
		if err != nil {
			t.Fatal(err)
		}
		ro := l.browser(t, s)
		sub, err := ro.nc.SubscribeSync("jsn.tap.e1.~state.power")
		if err != nil {
			t.Fatal(err)
		}
		if !who.ok {
			ro.denied(t, who.name+"'s browser subscribe", "jsn.tap.e1.~state.power")
			continue
		}
		if err := ro.nc.Flush(); err != nil {
			t.Fatal(err)
		}
		if err := e1.Publish("jsn.tap.e1.~state.power", nil, []byte("on")); err != nil {
			t.Fatal(err)
		}
		if m, err := sub.NextMsg(5 * time.Second); err != nil || string(m.Data) != "on" {
			t.Errorf("%s: power state: %v %v", who.name, m, err)
		}
	}

	// Shared: carol types too, until alice unshares.
	callOK[api.LeaseReply](t, alice, api.ClientSubject("alice", api.VerbLeaseShare), api.ShareRequest{ID: a, With: "carol"})
	sc, err := login(carol, api.ClientSubject("carol", api.VerbDashboard), a)
	if err != nil || sc.Write == nil || sc.Write.Lease != a || sc.Write.Stream != wire.StreamToken(a, "carol") ||
		!strings.HasPrefix(sc.Write.Inbox, bus.HolderInbox("e1", a, "carol")+".") {
		t.Fatalf("carol's login with the shared lease: %+v %v", sc, err)
	}
	cb := l.browser(t, sc)
	_ = cb.nc.Publish("jsn.x.e1.stream."+as+".s1", nil) // alice's streams: not carol's
	cb.denied(t, "the sharee's browser publish", "jsn.x.e1.stream."+as+".s1")
	callOK[api.LeaseReply](t, alice, api.ClientSubject("alice", api.VerbLeaseUnshare), api.ShareRequest{ID: a, With: "carol"})
	testkit.CheckFor(t, 30*time.Second, func() error {
		if !cb.nc.IsClosed() {
			return errors.New("not yet: the unshared client's browser credential closed")
		}
		return nil
	})
	if br.nc.IsClosed() {
		t.Fatal("unsharing with carol closed alice's browser")
	}

	// A token asked for with the lease, exchanged after its release: refused. The release closes
	// the holder's browser credential.
	tok := callOK[api.DashboardToken](t, alice, api.ClientSubject("alice", api.VerbDashboard), api.DashboardRequest{Lease: a})
	callOK[api.Empty](t, alice, api.ClientSubject("alice", api.VerbLeaseRelease), api.LeaseID{ID: a})
	if _, code, err := l.exchange(tok.Token); code != http.StatusUnauthorized || !strings.Contains(err.Error(), "not an active lease") {
		t.Errorf("exchange after the release: %d %v, want 401 naming the lease not active", code, err)
	}
	testkit.CheckFor(t, 30*time.Second, func() error {
		if !br.nc.IsClosed() {
			return errors.New("not yet: the released lease's browser credential closed")
		}
		return nil
	})
}
