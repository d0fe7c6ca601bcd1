package controller

import (
	"context"
	"errors"
	"sort"
	"time"

	"jsn.dev/jsn/bus"
	"jsn.dev/jsn/controller/api"
)

func (c *Controller) kickScheduler() {
	select {
	case c.kick <- struct{}{}:
	default:
	}
}

// scheduler runs the reconcile loop: leader election, lease expiry, granting queued requests.
func (c *Controller) scheduler(ctx context.Context) {
	defer c.wg.Done()
	t := time.NewTicker(c.o.Reconcile)
	defer t.Stop()
	for {
		rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		c.reconcile(rctx)
		cancel()
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-c.kick:
		}
	}
}

// leaderTTL is how long a leader stays leader without renewing (it renews every Reconcile): a
// replica that dies is replaced within about this long.
func (c *Controller) leaderTTL() time.Duration {
	d := 3 * c.o.Reconcile
	if d < 2*time.Second {
		d = 2 * time.Second
	}
	return d.Truncate(time.Second)
}

func (c *Controller) elect(ctx context.Context) bool {
	ttl := c.leaderTTL()
	e, err := c.leader.Get(ctx, leaderKey)
	switch {
	case errors.Is(err, bus.ErrKeyNotFound):
		_, err = c.leader.Create(ctx, leaderKey, []byte(c.id), ttl)
	case err == nil && string(e.Value) == c.id:
		_, err = c.leader.Update(ctx, leaderKey, []byte(c.id), e.Revision, ttl)
	case err == nil:
		err = errors.New("another replica leads")
	}
	lead := err == nil
	c.mu.Lock()
	if lead != c.isLeader {
		c.log.Info("scheduler leadership", "leader", lead, "replica", c.id)
	}
	c.isLeader = lead
	c.mu.Unlock()
	return lead
}

func (c *Controller) reconcile(ctx context.Context) {
	if !c.elect(ctx) {
		c.mu.Lock()
		c.expired = nil
		c.mu.Unlock()
		return
	}
	now := time.Now()
	c.mu.Lock()
	type exp struct {
		e      string
		le     *leaseEntry
		reason string
	}
	var ends []exp
	active := make(map[string]bool, len(c.active))
	for e, le := range c.active {
		if !le.live() {
			continue // an ended lease its exporter is finishing
		}
		active[le.rec.Lease.ID] = true
		if p := c.pending[le.rec.Lease.ID]; p != nil && p.rec.Lease.Status == api.StatusEnded {
			// Its end was recorded but not finished (the replica ending it stopped).
			ends = append(ends, exp{e, le, p.rec.Lease.Reason})
		} else if !le.rec.Lease.End.After(now) {
			ends = append(ends, exp{e, le, "expired"})
		}
	}
	var queued []*leaseEntry
	for _, p := range c.pending {
		if p.rec.Lease.Status == api.StatusQueued {
			queued = append(queued, p)
		}
	}
	expired := c.expired
	c.expired = nil
	c.mu.Unlock()
	for _, x := range ends {
		if x.reason == "expired" {
			// Its time is up whatever happens to the key: revoke first, the credential's JWT
			// expiry has a resolution of a second.
			_ = c.revoke(ctx, x.le.rec.Keys)
		}
		if err := c.endLease(ctx, x.e, x.le, x.reason); err != nil {
			c.log.Warn("end lease", "lease", x.le.rec.Lease.ID, "reason", x.reason, "err", err)
		}
	}
	for _, rec := range expired {
		// Gone by its TTL before the loop above saw it end. Its credentials expire with it, but
		// JWT expiry has a resolution of a second: revoke them too.
		if err := c.putEnded(ctx, rec, "expired"); err != nil {
			c.log.Warn("record expired lease", "lease", rec.Lease.ID, "err", err)
		}
		_ = c.revoke(ctx, rec.Keys)
	}
	sort.Slice(queued, func(i, j int) bool {
		a, b := queued[i].rec.Lease, queued[j].rec.Lease
		if a.Priority != b.Priority {
			return a.Priority > b.Priority
		}
		return a.Created.Before(b.Created)
	})
	for _, p := range queued {
		if active[p.rec.Lease.ID] {
			// Granted already; the queue record outlived it (its delete failed).
			c.dropQueued(ctx, p)
			continue
		}
		if c.identity(api.KindClient, p.rec.Lease.Client) == nil {
			_ = c.endPending(ctx, p, "client deleted")
			continue
		}
		names, free := c.candidates(&p.rec.Lease)
		granted := false
		if free > 0 {
			for _, e := range names[:free] {
				rec := *p.rec
				ok, dup, err := c.grant(ctx, e, &rec)
				if err != nil {
					c.log.Warn("grant queued lease", "lease", rec.Lease.ID, "err", err)
					break
				}
				if ok || dup {
					// The active record is in jsn-leases now; drop the queue entry.
					granted = true
					c.dropQueued(ctx, p)
					break
				}
			}
		}
		if !granted {
			if reason := c.waitReason(&p.rec.Lease); reason != p.rec.Lease.Reason {
				nr := *p.rec
				nr.Lease.Reason = reason
				_ = c.putPending(ctx, &nr, p.rev, 0)
			}
		}
	}
	c.maintain(ctx)
}

// dropQueued deletes the queue record of a queued request that was granted.
func (c *Controller) dropQueued(ctx context.Context, p *leaseEntry) {
	rev, err := c.queue.Delete(ctx, p.rec.Lease.ID, p.rev)
	if err != nil {
		c.log.Warn("drop granted request from the queue", "lease", p.rec.Lease.ID, "err", err)
		return
	}
	c.mu.Lock()
	if c.fresh("q/"+p.rec.Lease.ID, rev) {
		delete(c.pending, p.rec.Lease.ID)
	}
	c.mu.Unlock()
}

// Periods of the scheduling replica's upkeep.
const (
	reviveEvery = 10 * time.Second // re-apply revocations of ended leases a crash may have lost
	repushEvery = 30 * time.Second // push the LAB account again (servers and leaf nodes that missed it)
)

// maintain does the scheduling replica's periodic upkeep.
func (c *Controller) maintain(ctx context.Context) {
	now := time.Now()
	if now.Sub(c.lastRevive) >= reviveEvery {
		c.lastRevive = now
		if err := c.reviveRevocations(ctx, nil); err != nil {
			c.log.Warn("re-apply revocations", "err", err)
		}
	}
	c.mu.Lock()
	leaf := c.leafSeen
	c.mu.Unlock()
	// A leaf node that linked gets the account at once, and again every second for a few:
	// its system account link (which carries the update) may come up after the other.
	joined := !leaf.IsZero() && (c.lastRepush.Before(leaf) || now.Sub(leaf) < 5*time.Second && now.Sub(c.lastRepush) >= time.Second)
	if joined || now.Sub(c.lastRepush) >= repushEvery {
		c.lastRepush = now
		if err := c.repushAccount(ctx); err != nil {
			c.log.Warn("push the account again", "err", err)
		}
	}
}
