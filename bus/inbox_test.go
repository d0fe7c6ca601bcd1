package bus

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"

	"jsn.dev/jsn/bus/wire"
)

func TestInInbox(t *testing.T) {
	tests := []struct {
		subject, prefix string
		want            bool
	}{
		{"_INBOX_c.alice.x1.y", "_INBOX_c.alice", true},
		{"_INBOX_c.alice", "_INBOX_c.alice", false},
		{"_INBOX_c.alice.", "_INBOX_c.alice", false},
		{"_INBOX_c.alice2.x", "_INBOX_c.alice", false},
		{"_INBOX_c.alicex", "_INBOX_c.alice", false},
		{"_INBOX_e.alice.x", "_INBOX_c.alice", false},
		{"$JS.API.STREAM.DELETE.KV_jsn-identities", "_INBOX_c.alice", false},
		{"_INBOX_c.alice.x", "", false},
		{"anything", "", false},
		{"_INBOX_l.e1.L1.x", LeaseInbox("e1", "L1"), true},
		{"_INBOX_l.e1.L2.x", LeaseInbox("e1", "L1"), false},
	}
	for _, tt := range tests {
		if got := InInbox(tt.subject, tt.prefix); got != tt.want {
			t.Errorf("InInbox(%q, %q): got %v, want %v", tt.subject, tt.prefix, got, tt.want)
		}
	}
	if got := InboxPrefix(KindClient, "alice"); got != "_INBOX_c.alice" {
		t.Errorf("client inbox: got %q", got)
	}
}

// userCreds mints a .creds file for a user allowed to subscribe to subs.
func userCreds(t *testing.T, subs ...string) []byte {
	t.Helper()
	acct, _ := nkeys.CreateAccount()
	user, _ := nkeys.CreateUser()
	pub, _ := user.PublicKey()
	uc := jwt.NewUserClaims(pub)
	uc.Sub.Allow.Add(subs...)
	j, err := uc.Encode(acct)
	if err != nil {
		t.Fatal(err)
	}
	seed, _ := user.Seed()
	creds, err := jwt.FormatUserConfig(j, seed)
	if err != nil {
		t.Fatal(err)
	}
	return creds
}

func TestCredsInbox(t *testing.T) {
	tests := []struct {
		subs []string
		want string
		err  string
	}{
		{[]string{"_INBOX_c.alice.>"}, "_INBOX_c.alice", ""},
		{[]string{"jsn.x.e1.out.L.*", "_INBOX_l.e1.L.>", "jsn.x.e1.ev.L.>"}, "_INBOX_l.e1.L", ""},
		{nil, "", ""},
		{[]string{"_INBOX_c.a.>", "_INBOX_c.b.>"}, "", "two inbox permissions"},
	}
	for _, tt := range tests {
		got, err := CredsInbox(userCreds(t, tt.subs...))
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("%v: got %q, %v; want an error containing %q", tt.subs, got, err, tt.err)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("%v: got %q, %v; want %q", tt.subs, got, err, tt.want)
		}
	}
	if _, err := CredsInbox([]byte("not creds")); err == nil {
		t.Error("garbage credentials: no error")
	}
}

// TestGuardReplies checks, with raw NATS connections, that a guarded connection answers a
// request only into its requester's inbox: a request naming another subject as its reply is not
// handed to the handler (subscriptions and service endpoints alike), nothing is published there,
// and the refusal is reported.
func TestGuardReplies(t *testing.T) {
	s := runServer(t)
	srv := dial(t, s, "srv")
	type refusal struct{ subject, reply, inbox string }
	refused := make(chan refusal, 16)
	// The requester is named by the second subject token: svc.<name>.
	srv.GuardReplies(func(m *Msg) string {
		parts := strings.Split(m.Subject, ".")
		if len(parts) != 2 {
			return ""
		}
		return InboxPrefix(KindClient, parts[1])
	}, func(m *Msg, inbox string) { refused <- refusal{m.Subject, m.Reply, inbox} })
	handled := make(chan string, 16)
	sub, err := srv.Subscribe("svc.*", "", func(m *Msg) {
		handled <- m.Reply
		_ = m.Respond(nil, []byte("ok"))
	})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()
	svc, err := srv.AddService(ServiceConfig{Name: "guarded"})
	if err != nil {
		t.Fatal(err)
	}
	defer svc.Stop()
	if err := svc.Handle("ep", "ep.*", func(m *Msg) {
		handled <- m.Reply
		_ = m.Respond(nil, []byte("ok"))
	}); err != nil {
		t.Fatal(err)
	}
	_ = srv.Flush(context.Background())

	// alice with her own inbox is answered, on both paths.
	alice, err := ConnectWith(context.Background(), s.URL(), ConnectOptions{Name: "alice", Inbox: InboxPrefix(KindClient, "alice")})
	if err != nil {
		t.Fatal(err)
	}
	defer alice.Close()
	for _, subject := range []string{"svc.alice", "ep.alice"} {
		if r, err := alice.Request(context.Background(), subject, nil, nil); err != nil || string(r.Data) != "ok" {
			t.Fatalf("%s from alice: got %v, want ok", subject, err)
		}
		<-handled
	}

	// A raw connection names bob's requests with replies elsewhere: a victim's inbox, a
	// JetStream API subject.
	raw, err := nats.Connect("nats://localhost", nats.SetCustomDialer(unixDialer{strings.TrimPrefix(s.URL(), "unix://")}))
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	victim, err := raw.SubscribeSync(">")
	if err != nil {
		t.Fatal(err)
	}
	replies := []string{"_INBOX_c.alice.stolen", "$JS.API.STREAM.DELETE.KV_x", "_INBOX_c.bobby.x"}
	for _, subject := range []string{"svc.bob", "ep.bob"} {
		for _, reply := range replies {
			if err := raw.PublishRequest(subject, reply, nil); err != nil {
				t.Fatal(err)
			}
			got := <-refused
			if got.subject != subject || got.reply != reply || got.inbox != "_INBOX_c.bob" {
				t.Errorf("refusal: got %+v, want %s reply %s for inbox _INBOX_c.bob", got, subject, reply)
			}
		}
	}
	if n := srv.RefusedReplies(); n != int64(2*len(replies)) {
		t.Errorf("refused replies: got %d, want %d", n, 2*len(replies))
	}
	select {
	case r := <-handled:
		t.Errorf("a request with reply %q reached the handler", r)
	default:
	}
	// Everything the server published before this round trip has reached raw by now.
	_ = srv.Flush(context.Background())
	if err := raw.Flush(); err != nil {
		t.Fatal(err)
	}
	for {
		m, err := victim.NextMsg(0)
		if errors.Is(err, nats.ErrTimeout) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(m.Subject, "svc.") && !strings.HasPrefix(m.Subject, "ep.") && !strings.HasPrefix(m.Subject, "$SRV") {
			t.Errorf("the guarded connection published on %s", m.Subject)
		}
	}

	// Respond refuses too.
	m := &Msg{Subject: "svc.bob", Reply: "_INBOX_c.alice.x", conn: srv}
	if err := m.Respond(nil, nil); !errors.Is(err, ErrReplyRefused) {
		t.Errorf("Respond outside the inbox: got %v, want ErrReplyRefused", err)
	}
	<-refused
}

// TestStreamSubjectsCarryTheLease checks that a stream's subjects carry the lease that opened it
// and that the exporter's end takes frames only from its own lease's subject: a frame published
// on another lease's stream subject (all that another lease's credential may publish) never
// reaches it.
func TestStreamSubjectsCarryTheLease(t *testing.T) {
	s := runServer(t)
	cli, accepted, _ := serveStreams(t, s, nil, nil)
	out := dial(t, s, "watcher")
	seen := make(chan string, 16)
	sub, err := out.Subscribe("jsn.x.e1.out.>", "", func(m *Msg) { seen <- m.Subject })
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()
	_ = out.Flush(context.Background())
	cs, err := cli.OpenStream(context.Background(), "e1", wire.CallSubject("e1", "net", "connect"), wire.Header{wire.HeaderLease: {"L1"}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	es := <-accepted
	if _, err := es.Write([]byte("x")); err != nil {
		t.Fatal(err)
	}
	if got, want := <-seen, wire.StreamOutSubject("e1", "L1", es.ID()); got != want {
		t.Errorf("exporter → client frames on %s, want %s", got, want)
	}
	raw := dial(t, s, "attacker")
	for _, f := range []struct {
		lease string
		off   uint64
	}{{"L2", 200}, {wire.NoLease, 300}, {"L1", 100}} {
		if err := raw.Publish(wire.StreamSubject("e1", f.lease, es.ID()), nil, wire.AppendFrame(nil, wire.Frame{Type: wire.FrameData, Offset: f.off, Data: []byte("x")})); err != nil {
			t.Fatal(err)
		}
	}
	// Only the frame on L1's subject arrived: its gap resets the stream.
	_, err = es.Read(make([]byte, 1))
	if !errors.Is(err, wire.ErrUnavailable) || !strings.Contains(err.Error(), "expected offset 0, got 100") {
		t.Fatalf("got %v, want the reset of the frame on the stream's own lease subject", err)
	}
	_ = cs.Close()
}
