package controller

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"strings"
	"time"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nkeys"

	"jsn.dev/jsn/bus"
	"jsn.dev/jsn/bus/wire"
	"jsn.dev/jsn/controller/api"
)

// Typing from the browser (docs/protocol.md "Typing into a console from the browser"): a login
// asked for with a lease (`jsn dashboard --lease ID`, or JSN_LEASE) gets a browser credential
// that may also open the console byte streams of that lease's exporter and send their frames,
// expiring no later than the lease; its key is one of the lease's keys (leaseRecord.Keys), so
// the lease's end revokes it like the lease's own credentials.

const (
	consoleInterface = "jsn.serial.v1" // the drivers a page may type into
	consoleMethod    = "connect"       // their byte-stream method
)

// leaseForWeb checks that who may type into the consoles of lease id: it holds the lease or has
// it shared, and the lease is active. It returns the lease's entry and exporter.
func (c *Controller) leaseForWeb(ctx context.Context, who, id string) (*leaseEntry, string, error) {
	if !wire.ValidName(id) {
		return nil, "", wire.Errorf(wire.InvalidArgument, "dashboard: lease %q: not a lease id", id)
	}
	a, e, _ := c.findLease(id)
	if a == nil {
		if err := c.catchUp(ctx); err != nil {
			return nil, "", err
		}
		a, e, _ = c.findLease(id)
	}
	// One answer whether the lease ended, is unknown or someone else's: a lease id is a handle
	// its holder keeps to itself, and nobody learns here whether another's exists.
	refuse := wire.Errorf(wire.FailedPrecondition, "dashboard: %s is not an active lease of yours (ended, queued, unknown, or "+
		"not yours nor shared with you); run jsn dashboard without --lease (and without JSN_LEASE) for a read-only view", id)
	if a == nil {
		return nil, "", refuse
	}
	c.mu.Lock()
	l := a.rec.Lease
	shared := a.rec.Shares[who] != nil
	c.mu.Unlock()
	if l.Client != who && !shared {
		return nil, "", refuse
	}
	return a, e, nil
}

// webConsoles lists the consoles of exporter e (its last describe) whose connect method allow
// (a lease allow list, empty: everything) permits.
func (c *Controller) webConsoles(e string, allow []string) []string {
	c.mu.Lock()
	x := c.exps[e]
	var d *wire.Description
	if x != nil {
		d = x.Describe
	}
	c.mu.Unlock()
	if d == nil {
		return nil
	}
	var out []string
	var walk func([]*wire.NodeDesc)
	walk = func(ns []*wire.NodeDesc) {
		for _, n := range ns {
			if n.Interface == consoleInterface && n.Ref == "" && allowedCall(allow, n.Path, consoleMethod) {
				for _, m := range n.Methods {
					if m.Name == consoleMethod && m.Kind == wire.KindByteStream {
						out = append(out, n.Path)
					}
				}
			}
			walk(n.Children)
		}
	}
	walk(d.Drivers)
	return out
}

// allowedCall reports whether allow (a lease's allow list) permits method of the driver at path,
// as the lease credential's permissions and the exporter do: "p.*" every method below p, "p.m"
// one, "*" all; empty: everything.
func allowedCall(allow []string, path, method string) bool {
	if len(allow) == 0 {
		return true
	}
	call := path + "." + method
	for _, a := range allow {
		if a == "*" || a == call {
			return true
		}
		if p, ok := strings.CutSuffix(a, ".*"); ok && strings.HasPrefix(call, p+".") {
			return true
		}
	}
	return false
}

// BrowserWritePermissions adds to p what a browser credential may do to type into the consoles
// (driver paths) of exporter e under stream token stream (wire.StreamToken of the lease and the
// client that logged in): publish their open calls (jsn.x.E.call.<path>.connect) and the
// client → exporter frames of that client's streams of the lease (jsn.x.E.stream.<stream>.*),
// and subscribe to their exporter → client frames (jsn.x.E.out.<stream>.*) and to the replies of
// its openings under inbox, a prefix inside the client's sealed inbox of the lease
// (_INBOX_l.E.<lease>.<client>.<seal>.w<random>: the exporter answers only into a sealed inbox)
// — not all of it: the replies of the client's other connections stay out of reach. Nothing else of the lease: no other call, no describe, no hook
// events, nothing of the others the lease is shared with.
func BrowserWritePermissions(p *jwt.Permissions, e, stream, inbox string, consoles []string) {
	x := "jsn.x." + e + "."
	for _, path := range consoles {
		p.Pub.Allow.Add(x + "call." + path + "." + consoleMethod)
	}
	p.Pub.Allow.Add(x + "stream." + stream + ".*")
	p.Sub.Allow.Add(x+"out."+stream+".*", inbox+".>")
}

// MintBrowserWrite mints a browser credential for name with BrowserPermissions(watch) and, when
// w is not nil, BrowserWritePermissions of w.
func (a *Authority) MintBrowserWrite(name string, watch []string, w *api.BrowserWrite, expires time.Time) (*api.Credential, string, error) {
	kp, err := nkeys.CreateUser()
	if err != nil {
		return nil, "", err
	}
	pub, _ := kp.PublicKey()
	p := BrowserPermissions(watch)
	if w != nil {
		BrowserWritePermissions(&p, w.Exporter, w.Stream, w.Inbox, w.Consoles)
	}
	j, err := a.userJWT(name, pub, p, expires, []string{"jsn-browser"})
	if err != nil {
		return nil, "", err
	}
	seed, _ := kp.Seed()
	return &api.Credential{JWT: j, Seed: string(seed), Expires: expires}, pub, nil
}

// webWrite prepares the write rights of a login of who with lease id: the consoles, the inbox
// and the expiry (at most exp, never past the lease's credentials). A nil result with no error
// means the exporter has no console the lease may open.
func (c *Controller) webWrite(ctx context.Context, who, id string, exp time.Time) (*api.BrowserWrite, time.Time, error) {
	a, e, err := c.leaseForWeb(ctx, who, id)
	if err != nil {
		return nil, exp, err
	}
	c.mu.Lock()
	l := a.rec.Lease
	c.mu.Unlock()
	allow := l.Allow
	if l.Client != who {
		allow = nil
		if id := c.identity(api.KindClient, who); id != nil {
			allow = id.Allow // a shared lease is bounded by the sharee's own allow list
		}
	}
	if end := credEnd(&l); end.Before(exp) {
		exp = end
	}
	consoles := c.webConsoles(e, allow)
	if len(consoles) == 0 {
		return nil, exp, nil
	}
	seal, err := bus.Seal(c.auth.signing, e, id, who) // the exporter answers only into sealed inboxes
	if err != nil {
		return nil, exp, err
	}
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	// The exporter takes the stream's owner from the reply subject (the token below the lease's
	// inbox): the opening's replies and the stream's subjects are who's, as its lease
	// credential's are.
	return &api.BrowserWrite{Exporter: e, Lease: id, Inbox: bus.SealedInbox(e, id, who, seal) + ".w" + hex.EncodeToString(b),
		Stream: wire.StreamToken(id, who), Consoles: consoles, Method: consoleMethod, Expires: exp.UTC().Format(time.RFC3339)}, exp, nil
}

// recordWebKey adds a browser credential's key to lease id's keys (revoked at its end), and
// notes whose it is (unsharing the lease with who revokes it). The holder's name updates the
// record, as for every change of an active lease.
func (c *Controller) recordWebKey(ctx context.Context, who, id, pub string, exp time.Time) error {
	a, _, _ := c.findLease(id)
	if a == nil {
		return wire.Errorf(wire.FailedPrecondition, "dashboard: lease %s ended meanwhile", id)
	}
	c.mu.Lock()
	holder := a.rec.Lease.Client
	c.mu.Unlock()
	_, err := c.updateActive(ctx, "dashboard", holder, id, func(_ string, nr *leaseRecord) (map[string]time.Time, error) {
		if nr.Lease.Client != who && nr.Shares[who] == nil {
			return nil, wire.Errorf(wire.PermissionDenied, "dashboard: lease %s is no longer yours", id)
		}
		nr.Keys[pub] = exp
		if nr.Web == nil {
			nr.Web = map[string]string{}
		}
		nr.Web[pub] = who
		return nil, nil
	})
	return err
}

// webKeysOf moves the browser keys of client who out of nr (unshare) into the returned map.
func webKeysOf(nr *leaseRecord, who string) map[string]time.Time {
	out := map[string]time.Time{}
	for pub, name := range nr.Web {
		if name == who {
			out[pub] = nr.Keys[pub]
			delete(nr.Web, pub)
		}
	}
	return out
}
