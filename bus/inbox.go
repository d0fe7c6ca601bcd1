package bus

import (
	"errors"
	"fmt"
	"strings"
	"sync/atomic"

	"github.com/nats-io/jwt/v2"

	"jsn.dev/jsn/bus/wire"
)

// Inbox prefixes. In distributed mode every principal may subscribe only under its own inbox
// prefix (its NATS permissions say so), and whoever answers a request answers only into the
// requester's prefix (GuardReplies). The token after "_INBOX_" names the kind of principal, so
// that principals of different kinds never share a namespace whatever their names:
//
//	_INBOX_c.<client>                    a client identity (admins are clients)
//	_INBOX_e.<exporter>                  an exporter identity
//	_INBOX_l.<exporter>.<lease>.<client> a lease credential: one lease on one exporter, of one
//	                                     of the clients that hold it (its holder, or one it was
//	                                     shared with: each receives only its own replies)
//	_INBOX_v.<viewer>                    a read-only viewer identity (or a browser credential)
//	_INBOX_k.<name>                      the controller's own connections
//
// A connection adds a random token to its prefix (_INBOX_c.alice.3f9a…), so that two
// connections of one principal do not receive each other's replies.
const (
	KindClient     = "c"
	KindExporter   = "e"
	KindLease      = "l"
	KindController = "k"
	KindViewer     = "v"
)

// InboxPrefix returns the inbox prefix of the principal of kind named by names (a lease is named
// by its exporter and its id).
func InboxPrefix(kind string, names ...string) string {
	return "_INBOX_" + kind + "." + strings.Join(names, ".")
}

// LeaseInbox is the inbox prefix common to the credentials of lease on exporter (HolderInbox).
func LeaseInbox(exporter, lease string) string { return InboxPrefix(KindLease, exporter, lease) }

// HolderInbox is the inbox prefix of client's credential of lease on exporter: the lease's
// inbox with the client's name below it, so that a lease's holder and those it shared it with
// each receive only their own replies, and an exporter knows from a request's reply subject
// whose credential can read the answer (InboxHolder).
func HolderInbox(exporter, lease, client string) string {
	return InboxPrefix(KindLease, exporter, lease, client)
}

// InboxHolder returns the token of subject right below the inbox of lease on exporter (the
// client of HolderInbox), "" if subject is not below it or the token is not a name.
func InboxHolder(subject, exporter, lease string) string {
	p := LeaseInbox(exporter, lease)
	if !InInbox(subject, p) {
		return ""
	}
	rest := subject[len(p)+1:]
	if i := strings.IndexByte(rest, '.'); i >= 0 {
		rest = rest[:i]
	}
	if !wire.ValidName(rest) {
		return ""
	}
	return rest
}

// InInbox reports whether subject lies under the inbox prefix (is a subject its owner may
// receive on). An empty prefix holds nothing.
func InInbox(subject, prefix string) bool {
	return prefix != "" && len(subject) > len(prefix)+1 && subject[len(prefix)] == '.' &&
		strings.HasPrefix(subject, prefix)
}

// CredsInbox returns the inbox prefix the user of a NATS .creds file may receive on: the prefix
// of its one subscribe permission of the form _INBOX….>, or "" for a user without subscribe
// restrictions. The permission is what the server enforces, so it is the truth about where the
// user's replies can go.
func CredsInbox(creds []byte) (string, error) {
	j, err := jwt.ParseDecoratedJWT(creds)
	if err != nil {
		return "", fmt.Errorf("credentials: %w", err)
	}
	uc, err := jwt.DecodeUserClaims(j)
	if err != nil {
		return "", fmt.Errorf("credentials: %w", err)
	}
	var inbox string
	for _, s := range uc.Sub.Allow {
		p, ok := strings.CutSuffix(s, ".>")
		if !ok || !strings.HasPrefix(p, "_INBOX") {
			continue
		}
		if inbox != "" {
			return "", fmt.Errorf("credentials of %q: two inbox permissions (%s.> and %s.>)", uc.Name, inbox, p)
		}
		inbox = p
	}
	return inbox, nil
}

// ErrReplyRefused is returned by Respond when the reply subject of the request is not in its
// requester's inbox (see GuardReplies).
var ErrReplyRefused = errors.New("reply refused: the reply subject is not in the requester's inbox")

// A ReplyGuard names the inbox prefix into which the reply to request m may go: its requester's
// own (InboxPrefix), established from what NATS permissions enforce, such as the identity token
// of the subject or the lease whose credential alone may publish it. "" refuses every reply.
type ReplyGuard func(m *Msg) string

// replyGuard is a connection's guard and what it tells of refusals.
type replyGuard struct {
	who     ReplyGuard
	refused func(m *Msg, inbox string) // may be nil
}

// GuardReplies makes the connection answer requests only into their requesters' inboxes, as
// who names them: a request received through Subscribe or a service endpoint whose reply subject
// lies elsewhere is not handed to the handler at all, and Respond refuses such a reply too. So a
// requester cannot make this connection publish where it could not publish itself (on
// JetStream's API, into another principal's inbox, on a control subject). Messages without a
// reply subject are delivered as usual. refused, if not nil, is called for each request dropped.
// Call it before subscribing.
func (c *Conn) GuardReplies(who ReplyGuard, refused func(m *Msg, inbox string)) {
	c.guard.Store(&replyGuard{who: who, refused: refused})
}

// RefusedReplies counts the requests the connection's guard dropped.
func (c *Conn) RefusedReplies() int64 { return c.refusals.Load() }

// replyAllowed reports whether m's reply may be published on c, counting and reporting a refusal.
func (c *Conn) replyAllowed(m *Msg) bool {
	g := c.guard.Load()
	if g == nil || m.Reply == "" {
		return true
	}
	in := g.who(m)
	if InInbox(m.Reply, in) {
		return true
	}
	c.refusals.Add(1)
	if g.refused != nil {
		g.refused(m, in)
	}
	return false
}

// guardState is embedded in Conn.
type guardState struct {
	guard    atomic.Pointer[replyGuard]
	refusals atomic.Int64
}
