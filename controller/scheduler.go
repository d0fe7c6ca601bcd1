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

// leaderTTL is how long a leader stays leader without renewing.
func (c *Controller) leaderTTL() time.Duration {
	d := 5 * c.o.Reconcile
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
		return
	}
	now := time.Now()
	c.mu.Lock()
	type exp struct {
		e  string
		le *leaseEntry
	}
	var expired []exp
	for e, le := range c.active {
		if le.live() && !le.rec.Lease.End.After(now) {
			expired = append(expired, exp{e, le})
		}
	}
	var queued []*leaseEntry
	for _, p := range c.pending {
		if p.rec.Lease.Status == api.StatusQueued {
			queued = append(queued, p)
		}
	}
	c.mu.Unlock()
	for _, x := range expired {
		if err := c.endLease(ctx, x.e, x.le, "expired"); err != nil {
			c.log.Warn("end expired lease", "lease", x.le.rec.Lease.ID, "err", err)
		}
	}
	sort.Slice(queued, func(i, j int) bool {
		a, b := queued[i].rec.Lease, queued[j].rec.Lease
		if a.Priority != b.Priority {
			return a.Priority > b.Priority
		}
		return a.Created.Before(b.Created)
	})
	for _, p := range queued {
		if c.identity(api.KindClient, p.rec.Lease.Client) == nil {
			_ = c.endPending(ctx, p, "client deleted")
			continue
		}
		names, free := c.candidates(&p.rec.Lease)
		granted := false
		if free > 0 {
			for _, e := range names[:free] {
				rec := *p.rec
				ok, err := c.grant(ctx, e, &rec)
				if err != nil {
					c.log.Warn("grant queued lease", "lease", rec.Lease.ID, "err", err)
					break
				}
				if ok {
					granted = true
					// The active record is in jsn-leases now; drop the queue entry.
					if err := c.queue.Delete(ctx, rec.Lease.ID, p.rev); err == nil {
						c.mu.Lock()
						delete(c.pending, rec.Lease.ID)
						c.mu.Unlock()
					}
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
}
