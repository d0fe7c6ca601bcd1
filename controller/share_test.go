package controller

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"jsn.dev/jsn/bus"
	"jsn.dev/jsn/bus/wire"
	"jsn.dev/jsn/client"
	"jsn.dev/jsn/controller/api"
	"jsn.dev/jsn/drivers/serial"
	"jsn.dev/jsn/internal/testkit"
)

// TestSharedLeaseCallers: each client holding a shared lease has an inbox of its own below the
// lease's (raw NATS: neither may subscribe to the other's, nor to the whole lease's), and the
// exporter attributes each call to the client whose inbox its reply goes to: the audit log names
// bob for bob's calls and alice for alice's; the exporter holds each to its own allow list. A real
// exporter and the real audit stream.
func TestSharedLeaseCallers(t *testing.T) {
	l := startLab(t)
	l.runExporter("sh1", fmt.Sprintf(`export:
  console: {type: serial.Port, config: {url: "socket://%s", reconnect: 50ms}}
  aux: {type: serial.Port, config: {url: "socket://%[1]s", reconnect: 50ms}}
`, echoBoard(t)))
	alice, _ := l.client("alice", api.CreateClientRequest{Allow: []string{"console.*"}})
	bob, _ := l.client("bob", api.CreateClientRequest{})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	ra, exa := l.leaseExporter(ctx, alice, "alice", "sh1")
	id := ra.Lease.ID
	callOK[api.LeaseReply](t, alice, api.ClientSubject("alice", api.VerbLeaseShare), api.ShareRequest{ID: id, With: "bob"})
	rb := callOK[api.LeaseReply](t, bob, api.ClientSubject("bob", api.VerbLeaseGet), api.LeaseID{ID: id})
	exb, err := client.Dial(ctx, client.Options{Host: l.ctl.URL(), Exporter: "sh1", Lease: id, CredsData: rb.Credential.Creds(), CA: l.ctl.CA()})
	if err != nil {
		t.Fatal(err)
	}
	defer exb.Close()
	if err := exb.WaitReady(ctx, nil); err != nil {
		t.Fatal(err)
	}

	// Each credential's inbox is its own.
	aliceIn, bobIn := bus.HolderInbox("sh1", id, "alice"), bus.HolderInbox("sh1", id, "bob")
	for _, c := range []struct {
		who, own, other string
		creds           []byte
	}{{"alice", aliceIn, bobIn, ra.Credential.Creds()}, {"bob", bobIn, aliceIn, rb.Credential.Creds()}} {
		a := l.attack(t, c.creds, c.own)
		if a.nc == nil {
			t.Fatalf("%s's lease credential refused", c.who)
		}
		if _, err := a.nc.SubscribeSync(c.own + ".>"); err != nil {
			t.Fatal(err)
		}
		otherWho := strings.TrimPrefix(c.other, bus.LeaseInbox("sh1", id)+".")
		for _, s := range []string{c.other + ".>", bus.LeaseInbox("sh1", id) + ".>", bus.LeaseInbox("sh1", id) + ".*.x",
			// and to another's streams, or all of the lease's
			wire.StreamOutWildcard("sh1", wire.StreamToken(id, otherWho)), wire.StreamOutWildcard("sh1", id), "jsn.x.sh1.out.*.*"} {
			if _, err := a.nc.SubscribeSync(s); err != nil {
				t.Fatal(err)
			}
			a.denied(t, c.who+" subscribing to another's replies or streams", s)
		}
		for _, s := range []string{wire.StreamSubject("sh1", wire.StreamToken(id, otherWho), "x1"), wire.StreamSubject("sh1", id, "x1")} {
			_ = a.nc.Publish(s, nil)
			a.denied(t, c.who+" writing to another's streams", s)
		}
		if _, err := a.nc.SubscribeSync(wire.StreamOutWildcard("sh1", wire.StreamToken(id, c.who))); err != nil {
			t.Fatal(err)
		}
		// Its own inbox stays open to it (no violation was about it).
		if err := a.nc.Flush(); err != nil || a.nc.IsClosed() {
			t.Fatalf("%s's connection after subscribing to its own inbox: %v", c.who, err)
		}
	}

	// Each streams on the shared lease (a console: typed bytes echo back to their writer).
	for _, h := range []struct {
		who string
		ex  *client.Exporter
	}{{"alice", exa}, {"bob", exb}} {
		who, ex := h.who, h.ex
		st, err := serial.NewClient(ex.Driver("console")).Connect(ctx)
		if err != nil {
			t.Fatalf("%s's console stream: %v", who, err)
		}
		if _, err := st.Write([]byte(who + "\n")); err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 64)
		n, err := st.Read(buf)
		if err != nil || !strings.Contains(string(buf[:n]), who) {
			t.Errorf("%s's console stream read %q %v", who, buf[:n], err)
		}
		_ = st.Close()
	}

	// Calls by each are attributed to each.
	if _, err := serial.NewClient(exa.Driver("console")).Log(ctx, 0); err != nil {
		t.Fatalf("alice's call: %v", err)
	}
	if _, err := serial.NewClient(exb.Driver("console")).Log(ctx, 0); err != nil {
		t.Fatalf("bob's call: %v", err)
	}
	// aux is outside alice's allow list, not bob's: bob may call it on her lease.
	if _, err := serial.NewClient(exb.Driver("aux")).Log(ctx, 0); err != nil {
		t.Fatalf("bob's call outside alice's allow list, within his: %v", err)
	}
	// bob cannot make a call count as alice's: he does not know the seal of her inbox, and a
	// reply subject naming her inbox without it (with his own seal, or none) is dropped
	// unserved. With his own sealed inbox his raw call is served and his.
	bobInbox, err := bus.CredsInbox(rb.Credential.Creds())
	if err != nil || !strings.HasPrefix(bobInbox, bobIn+".") {
		t.Fatalf("bob's credential's inbox %q (%v), want his sealed inbox below %s", bobInbox, err, bobIn)
	}
	raw := l.attack(t, rb.Credential.Creds(), bobInbox)
	replies, err := raw.nc.SubscribeSync(bobInbox + ".>")
	if err != nil {
		t.Fatal(err)
	}
	forged := strings.Replace(bobInbox, ".bob.", ".alice.", 1)
	for _, reply := range []string{forged + ".r1", aliceIn + ".r2", aliceIn + ".bm9zZWFs.r3", bobInbox + ".r4"} {
		m := nats.NewMsg("jsn.x.sh1.call.console.log")
		m.Header.Set(wire.HeaderLease, id)
		m.Reply = reply
		if err := raw.nc.PublishMsg(m); err != nil {
			t.Fatal(err)
		}
	}
	if m, err := replies.NextMsg(10 * time.Second); err != nil || m.Subject != bobInbox+".r4" {
		t.Fatalf("bob's raw call with his own sealed inbox: %v %v", m, err)
	}

	// (A stream's call is logged when it ends, closed by its client: CANCELLED.)
	want := []string{"call alice sh1 console.connect CANCELLED", "call alice sh1 console.log OK",
		"call bob sh1 aux.log OK", "call bob sh1 console.connect CANCELLED", "call bob sh1 console.log OK", "call bob sh1 console.log OK"}
	testkit.CheckFor(t, 30*time.Second, func() error {
		r, err := call[api.AuditReply](t, l.admin, api.ClientSubject(AdminName, api.VerbAudit), api.AuditQuery{Lease: id, Kind: api.AuditKindCall})
		if err != nil {
			return err // the audit stream busy: ask again
		}
		if got := auditEvents(t, r); !slices.Equal(slices.Sorted(slices.Values(got)), want) {
			return fmt.Errorf("calls of the shared lease:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
		}
		return nil
	})
	// Unshare: bob's credential is revoked and the streams he opened end on the exporter at once
	// (not at their silence timeout); alice's go on.
	sa, err := serial.NewClient(exa.Driver("console")).Connect(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer sa.Close()
	sb, err := serial.NewClient(exb.Driver("console")).Connect(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer sb.Close()
	callOK[api.LeaseReply](t, alice, api.ClientSubject("alice", api.VerbLeaseUnshare), api.ShareRequest{ID: id, With: "bob"})
	testkit.CheckFor(t, 10*time.Second, func() error {
		r, err := call[api.AuditReply](t, l.admin, api.ClientSubject(AdminName, api.VerbAudit), api.AuditQuery{Lease: id, Kind: api.AuditKindCall})
		if err != nil {
			return err // the audit stream busy: ask again
		}
		if got := auditEvents(t, r); !slices.Contains(got, "call bob sh1 console.connect PERMISSION_DENIED") {
			return fmt.Errorf("bob's stream not ended on the exporter yet: %q", got)
		}
		return nil
	})
	if _, err := sa.Write([]byte("still-alice\n")); err != nil {
		t.Fatalf("alice's stream after bob's unshare: %v", err)
	}
	buf := make([]byte, 64)
	if n, err := sa.Read(buf); err != nil || !strings.Contains(string(buf[:n]), "still") {
		t.Errorf("alice's stream after bob's unshare read %q %v", buf[:n], err)
	}
	want = append(want, "call bob sh1 console.connect PERMISSION_DENIED")
	slices.Sort(want)

	// bob reads his own calls in his audit log, not alice's.
	testkit.CheckFor(t, 30*time.Second, func() error {
		r, err := call[api.AuditReply](t, bob, api.ClientSubject("bob", api.VerbAudit), api.AuditQuery{Kind: api.AuditKindCall})
		if err != nil {
			return err // the audit stream busy: ask again
		}
		var mine []string
		for _, w := range want {
			if strings.Contains(w, " bob ") {
				mine = append(mine, w)
			}
		}
		if got := auditEvents(t, r); !slices.Equal(slices.Sorted(slices.Values(got)), mine) {
			return fmt.Errorf("bob's audit log of calls: %q, want %q", got, mine)
		}
		return nil
	})
}
