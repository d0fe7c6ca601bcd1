package controller

import (
	"context"
	"errors"
	"maps"
	"slices"
	"time"

	"jsn.dev/jsn/bus"
	"jsn.dev/jsn/bus/wire"
	"jsn.dev/jsn/controller/api"
)

// Sharing: the holder of an active lease gives another client a credential of its own for it
// (LeasePermissions of the lease, with that client's allow list), kept in the lease's record
// (Shares) and revoked on unshare, transfer and the lease's end (its key is in Keys). The other
// client gets it with lease.get, as the holder gets hers.

// credEnd is when lease l's credentials expire: its end, or a keepalive lease's hard end.
func credEnd(l *api.Lease) time.Time {
	if l.Keepalive > 0 {
		return l.Until
	}
	return l.End
}

// updateActive rewrites the active lease of id owned by who (or an admin) with change, compare
// and set, retried when the record changed meanwhile. change returns the keys to revoke once the
// new record is stored.
func (c *Controller) updateActive(ctx context.Context, verb, who, id string, change func(e string, nr *leaseRecord) (map[string]time.Time, error)) (*leaseRecord, error) {
	for attempt := 0; ; attempt++ {
		a, e, p, err := c.ownLease(ctx, who, id)
		if err != nil {
			return nil, err
		}
		if a == nil {
			return nil, wire.Errorf(wire.FailedPrecondition, "%s %s: lease is %s, not active", verb, id, p.rec.Lease.Status)
		}
		nr := *a.rec
		nr.Keys = maps.Clone(a.rec.Keys)
		nr.Shares = maps.Clone(a.rec.Shares)
		nr.Web = maps.Clone(a.rec.Web)
		if nr.Keys == nil {
			nr.Keys = map[string]time.Time{}
		}
		if nr.Shares == nil {
			nr.Shares = map[string]*shareCred{}
		}
		revoke, err := change(e, &nr)
		if err != nil {
			return nil, err
		}
		nr.Lease.SharedWith, nr.Lease.SharedAllow = sharedOf(nr.Shares)
		b, err := wire.Marshal(&nr)
		if err != nil {
			return nil, err
		}
		rev, err := c.leases.Update(ctx, e, b, a.rev, ttlUntil(nr.Lease.End)+c.finishAllowance(e))
		if errors.Is(err, bus.ErrKeyChanged) && attempt < 5 {
			if err := c.catchUp(ctx); err != nil {
				return nil, err
			}
			continue
		}
		if errors.Is(err, bus.ErrKeyChanged) || errors.Is(err, bus.ErrKeyNotFound) {
			return nil, wire.Errorf(wire.FailedPrecondition, "%s %s: the lease changed meanwhile (ended?); try again", verb, id)
		}
		if err != nil {
			return nil, err
		}
		c.mu.Lock()
		if c.fresh("l/"+e, rev) {
			c.active[e] = &leaseEntry{rec: &nr, rev: rev}
		}
		c.mu.Unlock()
		c.push(e, &nr.Lease, rev)
		if len(revoke) > 0 {
			if err := c.revoke(ctx, revoke); err != nil {
				return nil, err
			}
		}
		return &nr, nil
	}
}

// sharedOf lists the clients of shares and their allow lists, as api.Lease has them.
func sharedOf(shares map[string]*shareCred) ([]string, map[string][]string) {
	if len(shares) == 0 {
		return nil, nil
	}
	allow := make(map[string][]string, len(shares))
	for name, s := range shares {
		allow[name] = s.Allow
	}
	return slices.Sorted(maps.Keys(shares)), allow
}

// shareTarget checks the client a lease is shared with or transferred to.
func (c *Controller) shareTarget(verb string, req *api.ShareRequest) (*api.Identity, error) {
	if !wire.ValidName(req.With) {
		return nil, wire.Errorf(wire.InvalidArgument, "%s %s: client name %q: want letters, digits, - and _", verb, req.ID, req.With)
	}
	id := c.identity(api.KindClient, req.With)
	if id == nil {
		return nil, wire.Errorf(wire.NotFound, "%s %s: no such client %s", verb, req.ID, req.With)
	}
	return id, nil
}

func (c *Controller) leaseShare(ctx context.Context, who string, data []byte) (any, error) {
	var req api.ShareRequest
	if err := decode(data, &req); err != nil {
		return nil, err
	}
	to, err := c.shareTarget("share", &req)
	if err != nil {
		return nil, err
	}
	nr, err := c.updateActive(ctx, "share", who, req.ID, func(e string, nr *leaseRecord) (map[string]time.Time, error) {
		if nr.Lease.Client == req.With {
			return nil, wire.Errorf(wire.InvalidArgument, "share %s: %s holds it", req.ID, req.With)
		}
		if err := c.checkHolder("share "+req.ID+" with "+req.With, to, &nr.Lease, e, false); err != nil {
			return nil, err
		}
		end := credEnd(&nr.Lease)
		cred, pub, err := c.auth.MintLease(req.With, e, nr.Lease.ID, to.Allow, end)
		if err != nil {
			return nil, wire.Errorf(wire.InvalidArgument, "share %s: %v", req.ID, err)
		}
		cred.URL = c.endpoint
		var revoke map[string]time.Time
		if old := nr.Shares[req.With]; old != nil {
			revoke = map[string]time.Time{old.Pub: nr.Keys[old.Pub]}
		}
		nr.Shares[req.With] = &shareCred{Credential: cred, Pub: pub, Allow: to.Allow}
		nr.Keys[pub] = end
		return revoke, nil
	})
	if err != nil {
		return nil, err
	}
	l := nr.Lease
	c.auditLease(api.AuditShare, &l, who+" shared it with "+req.With)
	return api.LeaseReply{Lease: &l}, nil
}

func (c *Controller) leaseUnshare(ctx context.Context, who string, data []byte) (any, error) {
	var req api.ShareRequest
	if err := decode(data, &req); err != nil {
		return nil, err
	}
	nr, err := c.updateActive(ctx, "unshare", who, req.ID, func(e string, nr *leaseRecord) (map[string]time.Time, error) {
		old := nr.Shares[req.With]
		if old == nil {
			return nil, wire.Errorf(wire.NotFound, "unshare %s: not shared with %s", req.ID, req.With)
		}
		delete(nr.Shares, req.With)
		revoke := webKeysOf(nr, req.With) // its dashboard logins that may type
		revoke[old.Pub] = nr.Keys[old.Pub]
		return revoke, nil
	})
	if err != nil {
		return nil, err
	}
	l := nr.Lease
	c.auditLease(api.AuditUnshare, &l, who+" withdrew it from "+req.With)
	return api.LeaseReply{Lease: &l}, nil
}

// leaseTransfer hands lease id over to another client: the lease is its from now on, with a
// credential bounded by its allow list; every credential of the previous holder is revoked.
func (c *Controller) leaseTransfer(ctx context.Context, who string, data []byte) (any, error) {
	var req api.ShareRequest
	if err := decode(data, &req); err != nil {
		return nil, err
	}
	to, err := c.shareTarget("transfer", &req)
	if err != nil {
		return nil, err
	}
	nr, err := c.updateActive(ctx, "transfer", who, req.ID, func(e string, nr *leaseRecord) (map[string]time.Time, error) {
		if nr.Lease.Client == req.With {
			return nil, wire.Errorf(wire.InvalidArgument, "transfer %s: %s holds it already", req.ID, req.With)
		}
		if err := c.checkHolder("transfer "+req.ID+" to "+req.With, to, &nr.Lease, e, true); err != nil {
			return nil, err
		}
		end := credEnd(&nr.Lease)
		cred, pub, err := c.auth.MintLease(req.With, e, nr.Lease.ID, to.Allow, end)
		if err != nil {
			return nil, wire.Errorf(wire.InvalidArgument, "transfer %s: %v", req.ID, err)
		}
		cred.URL = c.endpoint
		// Every key but the shares' (those clients keep theirs) belongs to the previous holder.
		revoke := map[string]time.Time{}
		shared := map[string]bool{}
		for _, s := range nr.Shares {
			shared[s.Pub] = true
		}
		if s := nr.Shares[req.With]; s != nil {
			delete(nr.Shares, req.With) // the new holder's own credential replaces it
			shared[s.Pub] = false
		}
		for k, t := range nr.Keys {
			if !shared[k] {
				revoke[k] = t
			}
		}
		nr.Lease.Client, nr.Lease.Allow, nr.Credential = req.With, to.Allow, cred
		nr.Keys[pub] = end
		return revoke, nil
	})
	if err != nil {
		return nil, err
	}
	l := nr.Lease
	c.auditLease(api.AuditTransfer, &l, who+" handed it to "+req.With)
	return api.LeaseReply{Lease: &l}, nil
}

// sharedLease returns active lease id if it is shared with who, and who's credential for it.
func (c *Controller) sharedLease(ctx context.Context, who, id string) (*api.Lease, *api.Credential) {
	a, _, _ := c.findLease(id)
	if a == nil {
		if c.catchUp(ctx) != nil {
			return nil, nil
		}
		a, _, _ = c.findLease(id)
	}
	if a == nil || a.rec.Shares[who] == nil {
		return nil, nil
	}
	l := a.rec.Lease
	return &l, a.rec.Shares[who].Credential
}
