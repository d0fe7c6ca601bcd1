package controller

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"jsn.dev/jsn/bus"
	"jsn.dev/jsn/bus/wire"
	"jsn.dev/jsn/controller/api"
)

// Keepalive leases (api.Lease.Keepalive) live while their holder renews them. Their record in
// jsn-leases carries End = the last renewal + KeepaliveWindow (never past Until, the hard end),
// and the key's TTL follows it; the scheduler ends them like any lease whose End passed. All of
// it is in the bucket, so a renewal may reach any replica and a failover of the scheduling
// replica loses nothing. Their credential expires at Until and is revoked when they end.

// leaseKeepalive renews keepalive lease id of client who.
func (c *Controller) leaseKeepalive(ctx context.Context, who string, data []byte) (any, error) {
	var req api.LeaseID
	if err := decode(data, &req); err != nil {
		return nil, err
	}
	if g, err := c.ownGroup(ctx, who, req.ID); g != nil || err != nil {
		if err != nil {
			return nil, err
		}
		return c.groupKeepalive(ctx, who, g) // every part (group.go)
	}
	for attempt := 0; ; attempt++ {
		a, e, p, err := c.ownLease(ctx, who, req.ID)
		if err != nil {
			return nil, err
		}
		if a == nil {
			if p.rec.Lease.Status == api.StatusQueued && p.rec.Lease.Keepalive > 0 {
				return c.renewQueued(ctx, p)
			}
			l := p.rec.Lease // a fixed request (renewed once granted) or ended (the holder stops)
			return api.KeepaliveReply{Lease: &l}, nil
		}
		if a.rec.Lease.Keepalive <= 0 {
			return nil, wire.Errorf(wire.FailedPrecondition, "keepalive %s: not a keepalive lease (it ends at %s; jsn lease extend moves that)",
				req.ID, a.rec.Lease.End.Format(time.RFC3339))
		}
		end := time.Now().UTC().Add(a.rec.Lease.Keepalive)
		if end.After(a.rec.Lease.Until) {
			end = a.rec.Lease.Until
		}
		if !end.After(a.rec.Lease.End) {
			l := a.rec.Lease
			return api.KeepaliveReply{Lease: &l}, nil
		}
		nr := *a.rec
		nr.Lease.End = end
		b, err := wire.Marshal(&nr)
		if err != nil {
			return nil, err
		}
		rev, err := c.leases.Update(ctx, e, b, a.rev, ttlUntil(end)+c.finishAllowance(e))
		if errors.Is(err, bus.ErrKeyChanged) && attempt < 3 {
			if err := c.catchUp(ctx); err != nil {
				return nil, err
			}
			continue
		}
		if errors.Is(err, bus.ErrKeyChanged) || errors.Is(err, bus.ErrKeyNotFound) {
			return nil, wire.Errorf(wire.Unavailable, "keepalive %s: the lease changed meanwhile; try again", req.ID)
		}
		if err != nil {
			return nil, err
		}
		c.mu.Lock()
		if c.fresh("l/"+e, rev) {
			c.active[e] = &leaseEntry{rec: &nr, rev: rev}
		}
		c.mu.Unlock()
		l := nr.Lease
		return api.KeepaliveReply{Lease: &l}, nil
	}
}

// renewQueued renews queued keepalive request p: its holder still waits for it. A request whose
// holder died (stopped renewing) is dropped by the scheduler (staleQueued) rather than granted
// to nobody. The record is rewritten at most every quarter of a window.
func (c *Controller) renewQueued(ctx context.Context, p *leaseEntry) (any, error) {
	for attempt := 0; ; attempt++ {
		l := p.rec.Lease
		now := time.Now().UTC()
		if l.Status != api.StatusQueued || now.Sub(lastRenewal(p.rec)) < l.Keepalive/4 {
			return api.KeepaliveReply{Lease: &l}, nil
		}
		nr := *p.rec
		nr.Renewed = now
		err := c.putPending(ctx, &nr, p.rev, 0)
		if err == nil {
			return api.KeepaliveReply{Lease: &l}, nil
		}
		if !errors.Is(err, bus.ErrKeyChanged) || attempt >= 3 {
			return nil, err
		}
		// Rewritten meanwhile (its wait reason, a grant, an end): renew what it is now.
		if err := c.catchUp(ctx); err != nil {
			return nil, err
		}
		a, _, q := c.findLease(l.ID)
		if a != nil {
			l := a.rec.Lease
			return api.KeepaliveReply{Lease: &l}, nil // granted: the holder renews the lease now
		}
		if q == nil {
			return nil, wire.Errorf(wire.NotFound, "lease %s: not found", l.ID)
		}
		p = q
	}
}

// lastRenewal is when queued keepalive request rec was last renewed (made, if never).
func lastRenewal(rec *leaseRecord) time.Time {
	if rec.Renewed.After(rec.Lease.Created) {
		return rec.Renewed
	}
	return rec.Lease.Created
}

// staleQueued reports whether queued request rec is a keepalive request its holder stopped
// renewing a keepalive window ago, and why it is dropped.
func staleQueued(rec *leaseRecord, now time.Time) (string, bool) {
	l := &rec.Lease
	if l.Keepalive <= 0 || now.Sub(lastRenewal(rec)) <= l.Keepalive {
		return "", false
	}
	return fmt.Sprintf("its holder stopped renewing the request (keepalive; last renewed %s)", lastRenewal(rec).Local().Format("15:04:05")), true
}

// endReason is why lease l, whose End has passed, ends.
func endReason(l *api.Lease) string {
	if l.Keepalive > 0 {
		if l.End.Before(l.Until) {
			return "its holder stopped renewing it (keepalive)"
		}
		return "it reached its hard limit (keepalive until " + l.Until.Format(time.RFC3339) + ")"
	}
	return "expired"
}

// leaseLimit is the longest lease client id may hold: the controller's maximum, the client's
// cap and its policies'.
func (c *Controller) leaseLimit(id *api.Identity) (time.Duration, string) {
	d, by := c.o.MaxDuration, "the controller's maximum"
	if id.MaxDuration > 0 && id.MaxDuration < d {
		d, by = id.MaxDuration, "client "+id.Name+"'s cap"
	}
	if p := c.policyFor(id); p != nil && p.MaxDuration > 0 && p.MaxDuration < d {
		d, by = p.MaxDuration, "policy "+p.Name
	}
	return d, by
}

// reservedFrom is when exporter e is reserved by a scheduled request other than lease id (the
// earliest NotBefore of the queued requests naming e), zero if none.
func (c *Controller) reservedFrom(e, id string) time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.reservedFromLocked(e, id)
}

func (c *Controller) reservedFromLocked(e, id string) time.Time {
	var t time.Time
	for _, p := range c.pending {
		l := &p.rec.Lease
		if l.Status != api.StatusQueued || l.ID == id || l.Exporter != e || l.NotBefore.IsZero() {
			continue
		}
		if t.IsZero() || l.NotBefore.Before(t) {
			t = l.NotBefore
		}
	}
	return t
}

// fits reports whether lease l may be granted exporter e now: it would end before any
// reservation of e by a scheduled lease.
func (c *Controller) fits(e string, l *api.Lease) bool {
	r := c.reservedFrom(e, l.ID)
	return r.IsZero() || !time.Now().Add(l.Duration).After(r)
}

// freeSlot answers "when can I get one?" for request l of a client whose longest lease is
// limit: when the earliest matching exporter is expected free, and the longest lease one matching
// exporter could be granted for now.
func (c *Controller) freeSlot(l *api.Lease, limit time.Duration) (freeAt time.Time, longest time.Duration) {
	names, _ := c.candidates(l)
	c.mu.Lock()
	defer c.mu.Unlock()
	now := time.Now()
	for _, n := range names {
		e := c.exps[n]
		if e == nil || now.Sub(e.LastSeen) >= c.o.OfflineAfter || c.maint[n].off() {
			continue // offline or out of service: no expected time
		}
		at := now
		if a := c.active[n]; a != nil {
			switch {
			case !a.live():
				at = now.Add(e.AfterLease + finishMargin)
			case a.rec.Lease.Keepalive > 0:
				at = a.rec.Lease.Until
			default:
				at = a.rec.Lease.End
			}
		}
		if freeAt.IsZero() || at.Before(freeAt) {
			freeAt = at
		}
		if c.active[n] != nil {
			continue
		}
		d := limit
		if r := c.reservedFromLocked(n, l.ID); !r.IsZero() {
			d = min(d, r.Sub(now))
		}
		longest = max(longest, d.Truncate(time.Second))
	}
	return freeAt.UTC(), longest
}

// slotText formats freeAt and longest for a wait reason.
func slotText(freeAt time.Time, longest time.Duration) string {
	var parts []string
	if !freeAt.IsZero() {
		parts = append(parts, "earliest free at "+freeAt.Local().Format("15:04:05"))
	}
	if longest > 0 {
		parts = append(parts, fmt.Sprintf("longest lease available now: %v", longest))
	}
	return strings.Join(parts, "; ")
}
