package controller

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"jsn.dev/jsn/bus"
	"jsn.dev/jsn/bus/wire"
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
			ends = append(ends, exp{e, le, endReason(&le.rec.Lease)})
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
		if x.reason == endReason(&x.le.rec.Lease) {
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
		if err := c.putEnded(ctx, rec, endReason(&rec.Lease)); err != nil {
			c.log.Warn("record expired lease", "lease", rec.Lease.ID, "err", err)
		}
		_ = c.revoke(ctx, rec.Keys)
	}
	c.checkGroups(ctx) // a part that ended ends its group (group.go)
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
		if why, stale := staleQueued(p.rec, now); stale {
			_ = c.endPending(ctx, p, why) // never granted to a holder that is gone
			continue
		}
		if p.rec.Lease.NotBefore.After(now) {
			continue // scheduled: not yet
		}
		if len(p.rec.Parts) > 0 {
			c.scheduleGroup(ctx, p) // a multi-exporter lease (group.go)
			continue
		}
		names, free := c.candidates(&p.rec.Lease)
		granted := false
		if free > 0 {
			for _, e := range names[:free] {
				if !c.fits(e, &p.rec.Lease) {
					continue
				}
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
			l := p.rec.Lease
			if id := c.identity(api.KindClient, l.Client); id != nil {
				limit, _ := c.leaseLimit(id)
				l.FreeAt, l.LongestNow = c.freeSlot(&l, limit)
			}
			if reason := c.waitReason(&l); reason != p.rec.Lease.Reason || !l.FreeAt.Equal(p.rec.Lease.FreeAt) || l.LongestNow != p.rec.Lease.LongestNow {
				nr := *p.rec
				nr.Lease.Reason, nr.Lease.FreeAt, nr.Lease.LongestNow = reason, l.FreeAt, l.LongestNow
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

// Bounds of how long an ended lease keeps its exporter while it finishes (leaseRecord.Finishing).
const (
	maxAfterLease = time.Hour        // longest afterLease timeout an exporter may declare
	finishMargin  = 30 * time.Second // added to it: the reset after the hook, messages in flight
)

// finishAllowance is how long exporter e may take to finish a lease after its end: its
// afterLease timeout plus finishMargin, 0 if it has no afterLease hook.
func (c *Controller) finishAllowance(e string) time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	if x := c.exps[e]; x != nil && x.AfterLease > 0 {
		return x.AfterLease + finishMargin
	}
	return 0
}

// notBusy clears the finishing record of exporter e (see leaseRecord.Finishing) when e reports
// it is busy with no lease or another one: it is done with the ended one (or restarted).
func (c *Controller) notBusy(ctx context.Context, e, busy string) {
	c.mu.Lock()
	le := c.active[e]
	c.mu.Unlock()
	if le == nil || !le.rec.Finishing || le.rec.Lease.ID == busy {
		return
	}
	c.finished(ctx, e, le)
}

// finished deletes the finishing record le of exporter e: it may be granted again.
func (c *Controller) finished(ctx context.Context, e string, le *leaseEntry) {
	rev, err := c.leases.Delete(ctx, e, le.rev)
	if err != nil && !errors.Is(err, bus.ErrKeyChanged) && !errors.Is(err, bus.ErrKeyNotFound) {
		c.log.Warn("clear finished lease", "exporter", e, "lease", le.rec.Lease.ID, "err", err)
		return
	}
	c.mu.Lock()
	if err == nil {
		c.fresh("l/"+e, rev)
	}
	if cur := c.active[e]; cur != nil && cur.rev == le.rev {
		delete(c.active, e)
	}
	c.mu.Unlock()
	c.kickScheduler()
}

// candidates lists the registered exporters a request may use, sorted by name, with how many of
// them are free and online right now first.
func (c *Controller) candidates(l *api.Lease) (names []string, free int) {
	sel, _ := ParseSelector(l.Selector)
	c.mu.Lock()
	defer c.mu.Unlock()
	now := time.Now()
	var busy []string
	match := func(name string) {
		e := c.exps[name]
		if e == nil || l.Exporter == "" && !sel.Matches(e.Labels) {
			return
		}
		if now.Sub(e.LastSeen) < c.o.OfflineAfter && c.active[name] == nil && !c.maint[name].off() {
			names = append(names, name)
		} else {
			busy = append(busy, name)
		}
	}
	if l.Exporter != "" {
		match(l.Exporter)
	} else {
		for _, name := range c.sortedNames() {
			match(name)
		}
	}
	return append(names, busy...), len(names)
}

// queuedAhead reports whether a queued request of at least rec's priority wants one of cands.
func (c *Controller) queuedAhead(rec *leaseRecord, cands []string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	var want map[string]bool
	for _, p := range c.pending {
		l := &p.rec.Lease
		if l.Status != api.StatusQueued || l.Priority < rec.Lease.Priority || l.NotBefore.After(time.Now()) || len(p.rec.Parts) > 0 {
			// A queued group holds nothing and reserves nothing: it is granted when all its
			// parts are free at once.
			continue
		}
		if want == nil {
			want = make(map[string]bool, len(cands))
			for _, n := range cands {
				want[n] = true
			}
		}
		if l.Exporter != "" {
			if want[l.Exporter] {
				return true
			}
			continue
		}
		sel, _ := ParseSelector(l.Selector)
		for n := range want {
			if c.exps[n] != nil && sel.Matches(c.exps[n].Labels) {
				return true
			}
		}
	}
	return false
}

func (c *Controller) waitReason(l *api.Lease) string {
	names, _ := c.candidates(l)
	c.mu.Lock()
	defer c.mu.Unlock()
	var leased, offline, maint []string
	now := time.Now()
	for _, n := range names {
		if m := c.maint[n]; m.off() {
			maint = append(maint, fmt.Sprintf("%s (%s)", n, m.Maintenance.Reason))
		} else if a := c.active[n]; a != nil && !a.live() {
			leased = append(leased, fmt.Sprintf("%s finishing the previous lease (afterLease hook)", n))
		} else if a != nil {
			leased = append(leased, fmt.Sprintf("%s by %s until %s", n, a.rec.Lease.Client, a.rec.Lease.End.Local().Format("15:04:05")))
		} else if e := c.exps[n]; e != nil && now.Sub(e.LastSeen) >= c.o.OfflineAfter {
			offline = append(offline, n)
		}
	}
	var parts []string
	if len(leased) > 0 {
		parts = append(parts, "leased: "+strings.Join(leased, ", "))
	}
	if len(offline) > 0 {
		parts = append(parts, "offline: "+strings.Join(offline, ", "))
	}
	if len(maint) > 0 {
		parts = append(parts, "in maintenance: "+strings.Join(maint, ", "))
	}
	if !l.NotBefore.IsZero() && l.NotBefore.After(now) {
		return fmt.Sprintf("scheduled: begins at %s", l.NotBefore.Local().Format("2006-01-02 15:04:05"))
	}
	if len(parts) == 0 {
		parts = append(parts, "behind earlier requests or reservations")
	}
	if s := slotText(l.FreeAt, l.LongestNow); s != "" {
		parts = append(parts, s)
	}
	return fmt.Sprintf("waiting for %d matching exporter(s); %s", len(names), strings.Join(parts, "; "))
}

// grant tries to give exporter e to rec atomically (kv.Create of e's lease key). granted false
// means e is taken. dup means the lease id was granted already (to this or another exporter,
// by this or another replica): the create carries the message id "grant-<id>", so a lease is
// granted at most once however many replicas and retries try.
func (c *Controller) grant(ctx context.Context, e string, rec *leaseRecord) (granted, dup bool, err error) {
	nr, rev, granted, dup, err := c.claim(ctx, e, rec)
	if !granted {
		return false, dup, err
	}
	*rec = *nr
	c.push(e, &nr.Lease, rev)
	c.auditLease(api.AuditGrant, &nr.Lease, "")
	return true, false, nil
}

// claim is grant without telling the exporter or the audit log: it creates e's lease key for
// rec and returns the record stored and its revision (group.go grants several, then tells).
func (c *Controller) claim(ctx context.Context, e string, rec *leaseRecord) (nr *leaseRecord, rev uint64, granted, dup bool, err error) {
	now := time.Now().UTC()
	l := rec.Lease
	l.Exporter, l.Status, l.Reason, l.Begin, l.End = e, api.StatusActive, "", now, now.Add(l.Duration)
	l.FreeAt, l.LongestNow, l.NotBefore = time.Time{}, 0, time.Time{}
	credEnd := l.End
	if l.Keepalive > 0 {
		// Renewed by its holder (leaseKeepalive); its credential lasts to the hard end and is
		// revoked when the lease ends earlier.
		l.Until = l.End
		if w := now.Add(l.Keepalive); w.Before(l.End) {
			l.End = w
		}
	}
	cred, pub, err := c.auth.MintLease(l.Client, e, l.ID, l.Allow, credEnd)
	if err != nil {
		return nil, 0, false, false, wire.Errorf(wire.InvalidArgument, "lease: %v", err)
	}
	cred.URL = c.endpoint
	nr = &leaseRecord{Lease: l, Credential: cred, Keys: map[string]time.Time{pub: credEnd}, Siblings: rec.Siblings}
	b, err := wire.Marshal(nr)
	if err != nil {
		return nil, 0, false, false, err
	}
	// The key outlives the lease by the exporter's finishing allowance: if no scheduler ends the
	// lease on time, the exporter still gets to finish it before it can be granted again.
	rev, dup, err = c.leases.CreateOnce(ctx, e, b, ttlUntil(l.End)+c.finishAllowance(e), "grant-"+l.ID)
	if errors.Is(err, bus.ErrKeyExists) {
		return nil, 0, false, false, nil
	}
	if err != nil || dup {
		return nil, 0, false, dup, err
	}
	c.mu.Lock()
	if c.fresh("l/"+e, rev) {
		c.active[e] = &leaseEntry{rec: nr, rev: rev}
	}
	c.mu.Unlock()
	return nr, rev, true, false, nil
}

// ttlUntil is the per-key TTL for a lease ending at end (whole seconds, at least 1s).
func ttlUntil(end time.Time) time.Duration {
	d := time.Until(end)
	d = (d + time.Second - 1).Truncate(time.Second)
	if d < time.Second {
		d = time.Second
	}
	return d
}

// push tells exporter e its lease as of revision rev of the lease bucket (nil: none).
func (c *Controller) push(e string, l *api.Lease, rev uint64) {
	var b []byte
	if l != nil {
		b, _ = wire.Marshal(l)
	}
	_ = c.conn.Publish(api.LeasePushSubject(e), wire.Header{api.HeaderLeaseRev: {strconv.FormatUint(rev, 10)}}, b)
}

func (c *Controller) putPending(ctx context.Context, rec *leaseRecord, rev uint64, ttl time.Duration) error {
	b, err := wire.Marshal(rec)
	if err != nil {
		return err
	}
	var nrev uint64
	if rev == 0 {
		nrev, err = c.queue.Create(ctx, rec.Lease.ID, b, ttl)
	} else {
		nrev, err = c.queue.Update(ctx, rec.Lease.ID, b, rev, ttl)
	}
	if err != nil {
		return err
	}
	c.mu.Lock()
	if c.fresh("q/"+rec.Lease.ID, nrev) {
		c.pending[rec.Lease.ID] = &leaseEntry{rec: rec, rev: nrev}
	}
	c.mu.Unlock()
	return nil
}

// findLease returns the lease with id: active (exporter set) or pending.
func (c *Controller) findLease(id string) (active *leaseEntry, exporter string, pending *leaseEntry) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for e, le := range c.active {
		if le.live() && le.rec.Lease.ID == id {
			return le, e, nil
		}
	}
	return nil, "", c.pending[id]
}

func (c *Controller) ownLease(ctx context.Context, who, id string) (*leaseEntry, string, *leaseEntry, error) {
	if id == "" {
		return nil, "", nil, wire.Errorf(wire.InvalidArgument, "lease id required")
	}
	a, e, p := c.findLease(id)
	if a == nil && p == nil {
		// Granted or queued by another replica a moment ago? Look again once this replica has
		// seen every write made so far.
		if err := c.catchUp(ctx); err != nil {
			return nil, "", nil, err
		}
		a, e, p = c.findLease(id)
	}
	var l *api.Lease
	if a != nil {
		l = &a.rec.Lease
	} else if p != nil {
		l = &p.rec.Lease
	}
	if l == nil {
		return nil, "", nil, wire.Errorf(wire.NotFound, "lease %s: not found", id)
	}
	if l.Client != who {
		if adm := c.identity(api.KindClient, who); adm == nil || !adm.Admin {
			return nil, "", nil, wire.Errorf(wire.NotFound, "lease %s: not found", id)
		}
	}
	return a, e, p, nil
}

// endLease ends the active lease le of exporter e: it records why (the ended record lease.get
// shows; the first reason recorded stays), then deletes the lease key (compare and set: an
// extension meanwhile is ended too) or, if the exporter has an afterLease hook, replaces it with a
// finishing record (leaseRecord.Finishing) that keeps the exporter from being granted until it
// has finished; then it tells the exporter, with that write's revision, and revokes the lease's
// credentials. Every step can be repeated: a replica that dies in the middle leaves either an
// active lease with an ended record, which the scheduler finishes, or an ended lease whose
// repeated release revokes again.
func (c *Controller) endLease(ctx context.Context, e string, le *leaseEntry, reason string) error {
	for attempt := 0; ; attempt++ {
		if err := c.putEnded(ctx, le.rec, reason); err != nil {
			return err
		}
		var rev uint64
		var err error
		var fin *leaseEntry
		if allow := c.finishAllowance(e); allow > 0 {
			f := &leaseRecord{Lease: le.rec.Lease, Finishing: true}
			f.Lease.Status, f.Lease.Reason, f.Lease.End = api.StatusEnded, reason, time.Now().UTC()
			b, merr := wire.Marshal(f)
			if merr != nil {
				return merr
			}
			if rev, err = c.leases.Update(ctx, e, b, le.rev, allow); err == nil {
				fin = &leaseEntry{rec: f, rev: rev}
			}
		} else {
			rev, err = c.leases.Delete(ctx, e, le.rev)
		}
		if err == nil {
			c.mu.Lock()
			if c.fresh("l/"+e, rev) {
				if cur := c.active[e]; cur != nil && cur.rec.Lease.ID == le.rec.Lease.ID {
					delete(c.active, e)
					if fin != nil {
						c.active[e] = fin
					}
				}
			}
			c.mu.Unlock()
			c.push(e, nil, rev)
			c.kickScheduler()
			return c.revoke(ctx, le.rec.Keys)
		}
		if !errors.Is(err, bus.ErrKeyChanged) && !errors.Is(err, bus.ErrKeyNotFound) || attempt >= 5 {
			return err
		}
		// The key changed: extended (the same lease, with another credential) or ended.
		cur, gerr := c.leases.Get(ctx, e)
		var r leaseRecord
		switch {
		case errors.Is(gerr, bus.ErrKeyNotFound):
		case gerr != nil:
			return gerr
		case wire.Unmarshal(cur.Value, &r) != nil:
			return fmt.Errorf("end lease %s: bad record of %s", le.rec.Lease.ID, e)
		case r.Lease.ID == le.rec.Lease.ID && !r.Finishing:
			le = &leaseEntry{rec: &r, rev: cur.Revision}
			continue
		}
		// Ended meanwhile (perhaps by an earlier attempt of this very call, whose reply was
		// lost): the reply's sync token must cover that end.
		_ = c.catchUp(ctx)
		return c.revoke(ctx, le.rec.Keys)
	}
}

// putEnded stores the ended record of rec (jsn-queue, key = lease id, kept endedKeepFor) unless
// one exists: the first reason recorded is the lease's.
func (c *Controller) putEnded(ctx context.Context, rec *leaseRecord, reason string) error {
	ended := *rec
	ended.Credential, ended.Shares = nil, nil // Keys stay: a restarted controller re-applies revocations a crash lost
	ended.Lease.Status, ended.Lease.Reason = api.StatusEnded, reason
	if now := time.Now().UTC(); ended.Lease.End.After(now) {
		ended.Lease.End = now
	}
	b, err := wire.Marshal(&ended)
	if err != nil {
		return err
	}
	id := rec.Lease.ID
	for attempt := 0; ; attempt++ {
		// A queued request granted from the queue left a delete marker, on which Create
		// succeeds too.
		rev, err := c.queue.Create(ctx, id, b, endedKeepFor)
		if errors.Is(err, bus.ErrKeyExists) && attempt < 5 {
			cur, gerr := c.queue.Get(ctx, id)
			if errors.Is(gerr, bus.ErrKeyNotFound) {
				continue
			}
			if gerr != nil {
				return gerr
			}
			var r leaseRecord
			if wire.Unmarshal(cur.Value, &r) == nil && r.Lease.Status == api.StatusEnded {
				return nil
			}
			// A queue record left behind by a grant from the queue: replace it.
			rev, err = c.queue.Update(ctx, id, b, cur.Revision, endedKeepFor)
			if errors.Is(err, bus.ErrKeyChanged) {
				continue
			}
		}
		if err != nil {
			return err
		}
		c.mu.Lock()
		if c.fresh("q/"+id, rev) {
			c.pending[id] = &leaseEntry{rec: &ended, rev: rev}
		}
		c.mu.Unlock()
		c.auditEnd(&rec.Lease, reason)
		return nil
	}
}

func (c *Controller) endPending(ctx context.Context, p *leaseEntry, reason string) error {
	ended := *p.rec
	ended.Lease.Status, ended.Lease.Reason = api.StatusEnded, reason
	if err := c.putPending(ctx, &ended, p.rev, endedKeepFor); err != nil {
		return err
	}
	c.auditLease(api.AuditCancel, &p.rec.Lease, reason)
	return nil
}
