package controller

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"jsn.dev/jsn/bus"
	"jsn.dev/jsn/bus/wire"
	"jsn.dev/jsn/controller/api"
)

// Multi-exporter leases (groups): api.LeaseRequest.Parts asks for several distinct exporters,
// granted together or not at all.
//
// A group is one record in jsn-queue under its id (like a queued lease): queued while its parts
// cannot all be granted (it holds nothing meanwhile), active once they are (Siblings lists them),
// ended with the reason of the part that ended first. Each part is an ordinary lease of one
// exporter in jsn-leases (its own id, credential and expiry) whose Lease.Group names the group
// and whose Siblings list the group's parts.
//
// Granting (grantGroup) picks distinct free exporters for all parts, creates each part's lease
// key (KV Create: it fails if the exporter was taken meanwhile), then commits by updating the
// group record from queued to active with compare-and-set (exactly one attempt commits, however
// many replicas try); only then are the exporters told. A failure before the commit deletes the
// parts created so far. A replica that dies in between leaves parts of an uncommitted attempt,
// which the scheduler ends (checkGroups) once they are older than groupGrace; and when a part of
// an active group ends for any reason, the scheduler ends the group and every other part with a
// reason naming the part that ended.

// groupPart is one part of a granted group: the exporter and the part's lease id.
type groupPart struct {
	Exporter string `msgpack:"exporter"`
	ID       string `msgpack:"id"`
}

// groupStopAfter, set by tests, is asked after each part a grant creates whether the replica
// "stops" there (as if killed between parts).
var groupStopAfter func(c *Controller, part int) bool

var errStopped = errors.New("stopped in the middle of a group grant (test)")

// groupGrace is how long a part may exist without its group committed (a grant in progress on
// another replica) before the scheduler takes it for the leftover of a failed grant.
const groupGrace = 10 * time.Second

// expandParts checks the parts of a group request and returns one entry per exporter wanted.
func expandParts(in []api.LeasePart) ([]api.LeasePart, error) {
	var out []api.LeasePart
	named := map[string]bool{}
	for i, p := range in {
		n := p.Count
		switch {
		case (p.Selector == "") == (p.Exporter == ""):
			return nil, fmt.Errorf("part %d: give either a selector or an exporter name", i+1)
		case p.Exporter != "" && !wire.ValidName(p.Exporter):
			return nil, fmt.Errorf("part %d: bad exporter name %q", i+1, p.Exporter)
		case p.Exporter != "" && n > 1:
			return nil, fmt.Errorf("part %d: exporter %s: a count of %d (one exporter is one part)", i+1, p.Exporter, n)
		case p.Exporter != "" && named[p.Exporter]:
			return nil, fmt.Errorf("part %d: exporter %s is named twice (each part is a distinct exporter)", i+1, p.Exporter)
		case n < 0:
			return nil, fmt.Errorf("part %d: negative count %d", i+1, n)
		}
		if p.Selector != "" {
			if _, err := ParseSelector(p.Selector); err != nil {
				return nil, fmt.Errorf("part %d: %v", i+1, err)
			}
		}
		named[p.Exporter] = p.Exporter != ""
		if n == 0 {
			n = 1
		}
		if len(out)+n > api.MaxParts {
			return nil, fmt.Errorf("more than %d parts", api.MaxParts)
		}
		for range n {
			out = append(out, api.LeasePart{Selector: p.Selector, Exporter: p.Exporter})
		}
	}
	return out, nil
}

// partText describes a part for people: its selector, or "exporter NAME".
func partText(p api.LeasePart) string {
	if p.Exporter != "" {
		return "exporter " + p.Exporter
	}
	return p.Selector
}

// groupRequest serves a lease.request with Parts (already checked like any request: duration,
// priority, begin) of client id, whose longest lease is limit.
func (c *Controller) groupRequest(ctx context.Context, who string, id *api.Identity, limit time.Duration, req *api.LeaseRequest) (any, error) {
	parts, err := expandParts(req.Parts)
	if err != nil {
		return nil, wire.Errorf(wire.InvalidArgument, "lease request: %v", err)
	}
	specs := make([]api.LeasePart, len(parts))
	for i, p := range parts {
		// Policies apply to each part as to a lease of its own.
		r := *req
		r.Selector, r.Exporter, r.Parts = p.Selector, p.Exporter, nil
		sel, err := c.applyPolicies(id, &r)
		if err != nil {
			return nil, err
		}
		if m, _ := c.maintenanceOf(p.Exporter); p.Exporter != "" && m != nil {
			return nil, wire.Errorf(wire.FailedPrecondition, "lease request: exporter %s is in maintenance since %s (%s): %s",
				p.Exporter, m.Since.Local().Format("2006-01-02 15:04"), m.By, m.Reason)
		}
		specs[i] = api.LeasePart{Selector: sel, Exporter: p.Exporter}
		if cands, _ := c.candidates(&api.Lease{Selector: sel, Exporter: p.Exporter}); len(cands) == 0 {
			what := "selector " + p.Selector
			if p.Exporter != "" {
				what = "exporter " + p.Exporter
			}
			if sel != p.Selector && p.Exporter == "" {
				what += " within the policies of client " + who + " (" + strings.TrimPrefix(sel[len(p.Selector):], ",") + ")"
			}
			return nil, wire.Errorf(wire.NotFound, "lease request: part %d: no registered exporter matches %s", i+1, what)
		}
	}
	if req.ID != "" {
		if len(req.ID) > 64 || !wire.ValidName(req.ID) {
			return nil, wire.Errorf(wire.InvalidArgument, "lease request: id %q: want a subject token of at most 64 letters, digits, - and _", req.ID)
		}
		if rep, err := c.existingGroup(ctx, who, req.ID); rep != nil || err != nil {
			return rep, err
		}
	} else {
		req.ID = randomID()
	}
	desc := make([]string, len(specs))
	for i, p := range parts {
		desc[i] = partText(p)
	}
	rec := &leaseRecord{Lease: api.Lease{ID: req.ID, Group: req.ID, Client: who, Parts: desc, Priority: req.Priority,
		Status: api.StatusQueued, Created: time.Now().UTC(), Duration: req.Duration, Allow: id.Allow}, Parts: specs}
	if req.Keepalive {
		rec.Lease.Keepalive = c.o.KeepaliveWindow
	}
	if req.Begin.After(time.Now()) {
		rec.Lease.NotBefore = req.Begin.UTC()
	}
	if n := c.queuedBy(who); n >= c.o.MaxQueued {
		return nil, wire.Errorf(wire.FailedPrecondition, "lease request: client %s already has %d queued requests, the most the controller queues per client "+
			"(--max-queued); withdraw one (jsn lease release ID) or wait for a grant", who, n)
	}
	c.auditLease(api.AuditRequest, &rec.Lease, "")
	c.groupWait(rec, limit)
	// The group is recorded queued first: granting it is then the same step whoever does it
	// (this request or the scheduler), and exactly one of them commits.
	if err := c.putPending(ctx, rec, 0, 0); err != nil {
		if errors.Is(err, bus.ErrKeyExists) {
			if rep, err := c.existingGroup(ctx, who, req.ID); rep != nil || err != nil {
				return rep, err
			}
		}
		return nil, err
	}
	if rec.Lease.NotBefore.IsZero() {
		c.mu.Lock()
		p := c.pending[req.ID]
		c.mu.Unlock()
		if p != nil && p.rec.Lease.Status == api.StatusQueued {
			if ok, err := c.grantGroup(ctx, p); err != nil {
				c.log.Warn("grant group", "group", req.ID, "err", err)
			} else if ok {
				c.mu.Lock()
				g := c.pending[req.ID]
				c.mu.Unlock()
				return c.groupReply(g), nil
			}
		}
	}
	c.auditLease(api.AuditQueued, &rec.Lease, rec.Lease.Reason)
	c.kickScheduler()
	l := rec.Lease
	return api.LeaseReply{Lease: &l}, nil
}

// existingGroup returns group id as lease.get would (a repeated request), nil if there is none.
func (c *Controller) existingGroup(ctx context.Context, who, id string) (any, error) {
	g, err := c.ownGroup(ctx, who, id)
	if errors.Is(err, wire.ErrNotFound) {
		return nil, wire.Errorf(wire.InvalidArgument, "lease request: id %s is another client's lease; choose a random id", id)
	}
	if err != nil {
		return nil, err
	}
	if g == nil {
		if rep, err := c.existing(ctx, who, id); rep != nil || err != nil {
			if err == nil {
				err = wire.Errorf(wire.InvalidArgument, "lease request: id %s is a lease of one exporter, not a group; choose a random id", id)
			}
			return nil, err
		}
		return nil, nil
	}
	return c.groupReply(g), nil
}

// groupRecord returns the record of group id, nil if id is not a group this replica knows.
func (c *Controller) groupRecord(id string) *leaseEntry {
	c.mu.Lock()
	defer c.mu.Unlock()
	if p := c.pending[id]; p != nil && p.rec.Lease.Group == id && p.rec.Lease.ID == id {
		return p
	}
	return nil
}

// ownGroup returns group id if it is one and who may act on it (its client, or an admin); nil
// and no error if id is not a group (but perhaps a lease of one exporter).
func (c *Controller) ownGroup(ctx context.Context, who, id string) (*leaseEntry, error) {
	if id == "" {
		return nil, nil
	}
	g := c.groupRecord(id)
	if g == nil {
		if a, _, p := c.findLease(id); a != nil || p != nil {
			return nil, nil
		}
		if err := c.catchUp(ctx); err != nil {
			return nil, err
		}
		if g = c.groupRecord(id); g == nil {
			return nil, nil
		}
	}
	if g.rec.Lease.Client != who {
		if adm := c.identity(api.KindClient, who); adm == nil || !adm.Admin {
			return nil, wire.Errorf(wire.NotFound, "lease %s: not found", id)
		}
	}
	return g, nil
}

// liveParts returns the parts of group g that are active now, by exporter.
func (c *Controller) liveParts(g *leaseRecord) map[string]*leaseEntry {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := map[string]*leaseEntry{}
	for _, s := range g.Siblings {
		if a := c.active[s.Exporter]; a.live() && a.rec.Lease.ID == s.ID {
			out[s.Exporter] = a
		}
	}
	return out
}

// groupReply is group g as lease.get answers: the group, and its parts with their credentials.
// An active group's End is its earliest part's.
func (c *Controller) groupReply(g *leaseEntry) api.LeaseReply {
	l := g.rec.Lease
	rep := api.LeaseReply{Lease: &l}
	if l.Status != api.StatusActive {
		return rep
	}
	live := c.liveParts(g.rec)
	if len(live) > 0 {
		l.End = time.Time{} // the earliest part's (keepalive renewals move them)
	}
	for _, s := range g.rec.Siblings {
		a := live[s.Exporter]
		if a == nil {
			continue
		}
		pl := a.rec.Lease
		if pl.End.Before(l.End) || l.End.IsZero() {
			l.End = pl.End
		}
		rep.Parts = append(rep.Parts, api.LeaseReply{Lease: &pl, Credential: a.rec.Credential})
	}
	return rep
}

// assignGroup picks a distinct free exporter for each part of group rec (a bipartite matching),
// nil if it cannot be granted now.
func (c *Controller) assignGroup(rec *leaseRecord) []string {
	n := len(rec.Parts)
	cands := make([][]string, n)
	for i, p := range rec.Parts {
		l := rec.Lease
		l.Selector, l.Exporter = p.Selector, p.Exporter
		names, free := c.candidates(&l)
		for _, e := range names[:free] {
			if c.fits(e, &l) {
				cands[i] = append(cands[i], e)
			}
		}
		if len(cands[i]) == 0 {
			return nil
		}
	}
	owner := map[string]int{} // exporter → part
	var try func(i int, seen map[string]bool) bool
	try = func(i int, seen map[string]bool) bool {
		for _, e := range cands[i] {
			if seen[e] {
				continue
			}
			seen[e] = true
			if j, taken := owner[e]; !taken || try(j, seen) {
				owner[e] = i
				return true
			}
		}
		return false
	}
	for i := range n {
		if !try(i, map[string]bool{}) {
			return nil
		}
	}
	out := make([]string, n)
	for e, i := range owner {
		out[i] = e
	}
	return out
}

// grantGroup tries to grant every part of queued group p at once (see the file comment). It
// reports whether the group is active now.
func (c *Controller) grantGroup(ctx context.Context, p *leaseEntry) (bool, error) {
	// The request's own attempt and this replica's scheduler take turns; the latest record
	// says whether the other one granted it meanwhile.
	c.groupMu.Lock()
	defer c.groupMu.Unlock()
	if cur := c.groupRecord(p.rec.Lease.ID); cur != nil {
		p = cur
	}
	if p.rec.Lease.Status != api.StatusQueued {
		return p.rec.Lease.Status == api.StatusActive, nil
	}
	assign := c.assignGroup(p.rec)
	if assign == nil {
		return false, nil
	}
	sibs := make([]groupPart, len(assign))
	for i, e := range assign {
		sibs[i] = groupPart{Exporter: e, ID: randomID()}
	}
	type made struct {
		e   string
		rec *leaseRecord
		rev uint64
	}
	var done []made
	undo := func() {
		for _, m := range done {
			c.unclaim(ctx, m.e, m.rec, m.rev)
		}
	}
	for i, e := range assign {
		r := &leaseRecord{Lease: p.rec.Lease, Siblings: sibs}
		r.Lease.ID, r.Lease.Parts, r.Lease.Reason = sibs[i].ID, nil, ""
		r.Lease.Selector, r.Lease.Exporter = p.rec.Parts[i].Selector, p.rec.Parts[i].Exporter
		nr, rev, ok, _, err := c.claim(ctx, e, r)
		if err != nil || !ok {
			undo()
			return false, err
		}
		done = append(done, made{e, nr, rev})
		if groupStopAfter != nil && groupStopAfter(c, i) {
			return false, errStopped // a test's replica "stops" here: nothing undone, nothing committed
		}
	}
	// Commit: the group record goes from queued to active, compare-and-set.
	g := *p.rec
	g.Siblings = sibs
	g.Lease.Status, g.Lease.Reason, g.Lease.FreeAt, g.Lease.LongestNow, g.Lease.NotBefore = api.StatusActive, "", time.Time{}, 0, time.Time{}
	g.Lease.Begin, g.Lease.End = done[0].rec.Lease.Begin, done[0].rec.Lease.End
	g.Lease.Until = done[0].rec.Lease.Until
	if err := c.putPending(ctx, &g, p.rev, 0); err != nil {
		undo()
		if errors.Is(err, bus.ErrKeyChanged) || errors.Is(err, bus.ErrKeyNotFound) {
			return false, nil // withdrawn, or granted by another attempt
		}
		return false, err
	}
	for _, m := range done {
		c.push(m.e, &m.rec.Lease, m.rev)
		c.auditLease(api.AuditGrant, &m.rec.Lease, "")
	}
	return true, nil
}

// unclaim deletes part rec of exporter e (lease key revision rev) created by a group grant
// that did not commit: the exporter was never told, and its credential is revoked.
func (c *Controller) unclaim(ctx context.Context, e string, rec *leaseRecord, rev uint64) {
	drev, err := c.leases.Delete(ctx, e, rev)
	if err != nil {
		// Changed or gone meanwhile (ended by the scheduler?): end it the ordinary way.
		if errors.Is(err, bus.ErrKeyChanged) {
			c.log.Warn("undo group part", "exporter", e, "lease", rec.Lease.ID, "err", err)
		}
		_ = c.revoke(ctx, rec.Keys)
		return
	}
	c.mu.Lock()
	if c.fresh("l/"+e, drev) {
		if cur := c.active[e]; cur != nil && cur.rec.Lease.ID == rec.Lease.ID {
			delete(c.active, e)
		}
	}
	c.mu.Unlock()
	c.push(e, nil, drev)
	_ = c.revoke(ctx, rec.Keys)
}

// scheduleGroup is the scheduler's turn of queued group p: granted, or its reason renewed.
func (c *Controller) scheduleGroup(ctx context.Context, p *leaseEntry) {
	ok, err := c.grantGroup(ctx, p)
	if err != nil {
		c.log.Warn("grant queued group", "group", p.rec.Lease.ID, "err", err)
	}
	if ok || err != nil {
		return
	}
	nr := *p.rec
	limit := c.o.MaxDuration
	if id := c.identity(api.KindClient, nr.Lease.Client); id != nil {
		limit, _ = c.leaseLimit(id)
	}
	c.groupWait(&nr, limit)
	if nr.Lease.Reason != p.rec.Lease.Reason || !nr.Lease.FreeAt.Equal(p.rec.Lease.FreeAt) {
		_ = c.putPending(ctx, &nr, p.rev, 0)
	}
}

// groupWait sets why queued group rec waits (Reason) and when its parts are expected free
// (FreeAt: when the last of them is; zero if unknown).
func (c *Controller) groupWait(rec *leaseRecord, limit time.Duration) {
	type spec struct {
		p api.LeasePart
		n int
	}
	var specs []*spec
	for _, p := range rec.Parts {
		i := slices.IndexFunc(specs, func(s *spec) bool { return s.p == p })
		if i < 0 {
			specs = append(specs, &spec{p: p})
			i = len(specs) - 1
		}
		specs[i].n++
	}
	union := map[string]bool{}
	var waits []string
	var freeAt time.Time
	known := true
	for _, s := range specs {
		l := rec.Lease
		l.Selector, l.Exporter, l.Parts = s.p.Selector, s.p.Exporter, nil
		names, free := c.candidates(&l)
		for _, n := range names {
			union[n] = true
		}
		if len(names) < s.n {
			verb := "exist"
			if len(names) == 1 {
				verb = "exists"
			}
			rec.Lease.Reason = fmt.Sprintf("needs %d exporters matching %s, %d %s", s.n, partText(s.p), len(names), verb)
			rec.Lease.FreeAt = time.Time{}
			return
		}
		at, _ := c.freeSlot(&l, limit)
		if at.IsZero() {
			known = false
		} else if at.After(freeAt) {
			freeAt = at
		}
		if free < s.n {
			l.FreeAt = at
			waits = append(waits, partText(s.p)+": "+c.waitReason(&l))
		}
	}
	if len(union) < len(rec.Parts) {
		rec.Lease.Reason = fmt.Sprintf("needs %d distinct exporters for its parts, %d match any", len(rec.Parts), len(union))
		rec.Lease.FreeAt = time.Time{}
		return
	}
	if !known {
		freeAt = time.Time{}
	}
	rec.Lease.FreeAt = freeAt
	if !rec.Lease.NotBefore.IsZero() && rec.Lease.NotBefore.After(time.Now()) {
		rec.Lease.Reason = fmt.Sprintf("scheduled: begins at %s", rec.Lease.NotBefore.Local().Format("2006-01-02 15:04:05"))
		return
	}
	if len(waits) == 0 {
		waits = append(waits, "its parts compete for the same exporters or earlier requests")
	}
	rec.Lease.Reason = fmt.Sprintf("waiting for all %d parts at once (nothing is held meanwhile); %s", len(rec.Parts), strings.Join(waits, " | "))
}

// checkGroups ends what a group must not leave behind: every part of an active group once one of
// them ended (with a reason naming it), parts of an ended group, and parts of a grant that never
// committed (older than groupGrace).
func (c *Controller) checkGroups(ctx context.Context) {
	type part struct {
		e  string
		le *leaseEntry
	}
	defer c.groupRounds.Add(1)
	now := time.Now()
	c.mu.Lock()
	parts := map[string][]part{}
	for e, a := range c.active {
		if a.live() && a.rec.Lease.Group != "" {
			parts[a.rec.Lease.Group] = append(parts[a.rec.Lease.Group], part{e, a})
		}
	}
	groups := map[string]*leaseEntry{}
	for id, p := range c.pending {
		if p.rec.Lease.Group == id && p.rec.Lease.Status == api.StatusActive {
			groups[id] = p
		}
	}
	// Why a part of an active group is missing: its ended record, if it has one.
	missing := map[string]string{}
	for id, g := range groups {
		for _, s := range g.rec.Siblings {
			if a := c.active[s.Exporter]; a.live() && a.rec.Lease.ID == s.ID {
				continue
			}
			why := ""
			if p := c.pending[s.ID]; p != nil && p.rec.Lease.Status == api.StatusEnded {
				why = p.rec.Lease.Reason
			} else if now.Sub(g.rec.Lease.Begin) < groupGrace {
				continue // not seen yet (its key and the group's are in different buckets)
			} else {
				why = "gone"
			}
			missing[id] = fmt.Sprintf("part %s on %s ended: %s", s.ID, s.Exporter, why)
			break
		}
	}
	var other []*leaseEntry // ended or queued group records of groups with live parts
	for id := range parts {
		if groups[id] == nil {
			if p := c.pending[id]; p != nil {
				other = append(other, p)
			}
		}
	}
	c.mu.Unlock()

	for id, why := range missing {
		g := groups[id]
		ended := *g.rec
		ended.Lease.Status, ended.Lease.Reason = api.StatusEnded, why
		if now.Before(ended.Lease.End) {
			ended.Lease.End = now.UTC()
		}
		if err := c.putPending(ctx, &ended, g.rev, endedKeepFor); err != nil {
			c.log.Warn("end group", "group", id, "err", err)
			continue
		}
		for _, p := range parts[id] {
			if err := c.endLease(ctx, p.e, p.le, "group "+id+": "+why); err != nil {
				c.log.Warn("end group part", "group", id, "lease", p.le.rec.Lease.ID, "err", err)
			}
		}
		delete(parts, id)
	}
	for _, g := range other {
		id := g.rec.Lease.ID
		for _, p := range parts[id] {
			reason := ""
			switch {
			case g.rec.Lease.Status == api.StatusEnded:
				reason = "group " + id + " ended: " + g.rec.Lease.Reason
			case now.Sub(p.le.rec.Lease.Begin) >= groupGrace:
				reason = "group " + id + ": left over from a grant that did not complete"
			default:
				continue
			}
			if err := c.endLease(ctx, p.e, p.le, reason); err != nil {
				c.log.Warn("end group part", "group", id, "lease", p.le.rec.Lease.ID, "err", err)
			}
		}
		delete(parts, id)
	}
	// Parts of an active group that are not among its parts (an attempt that lost the commit),
	// and parts of a group this replica has no record of.
	for id, ps := range parts {
		g := groups[id]
		for _, p := range ps {
			if now.Sub(p.le.rec.Lease.Begin) < groupGrace {
				continue
			}
			if g != nil && slices.ContainsFunc(g.rec.Siblings, func(s groupPart) bool { return s.ID == p.le.rec.Lease.ID }) {
				continue
			}
			if err := c.endLease(ctx, p.e, p.le, "group "+id+": left over from a grant that did not complete"); err != nil {
				c.log.Warn("end group part", "group", id, "lease", p.le.rec.Lease.ID, "err", err)
			}
		}
	}
}

// groupRelease ends group g (or withdraws it while queued): the group record first, then every
// part, all with the reason "released by who".
func (c *Controller) groupRelease(ctx context.Context, who string, g *leaseEntry) error {
	for attempt := 0; attempt < 5; attempt++ {
		switch g.rec.Lease.Status {
		case api.StatusQueued:
			err := c.endPending(ctx, g, "cancelled by "+who)
			if !errors.Is(err, bus.ErrKeyChanged) && !errors.Is(err, bus.ErrKeyNotFound) {
				return err
			}
		case api.StatusActive:
			ended := *g.rec
			ended.Lease.Status, ended.Lease.Reason = api.StatusEnded, "released by "+who
			if now := time.Now().UTC(); now.Before(ended.Lease.End) {
				ended.Lease.End = now
			}
			err := c.putPending(ctx, &ended, g.rev, endedKeepFor)
			if err == nil {
				return c.endParts(ctx, g.rec, "released by "+who)
			}
			if !errors.Is(err, bus.ErrKeyChanged) && !errors.Is(err, bus.ErrKeyNotFound) {
				return err
			}
		default:
			// Ended already: make sure no part outlives it (a repeated release).
			return c.endParts(ctx, g.rec, g.rec.Lease.Reason)
		}
		if err := c.catchUp(ctx); err != nil {
			return err
		}
		if g = c.groupRecord(g.rec.Lease.ID); g == nil {
			return nil
		}
	}
	return wire.Errorf(wire.Unavailable, "release %s: the group keeps changing; try again", g.rec.Lease.ID)
}

// endParts ends every live part of group g.
func (c *Controller) endParts(ctx context.Context, g *leaseRecord, reason string) error {
	var errs []error
	for e, a := range c.liveParts(g) {
		if err := c.endLease(ctx, e, a, reason); err != nil {
			errs = append(errs, fmt.Errorf("end part %s on %s: %w", a.rec.Lease.ID, e, err))
		}
	}
	return errors.Join(errs...)
}

// activeParts returns the parts of active group g, or an error naming why it is not active.
func (c *Controller) activeParts(g *leaseEntry, verb string) (map[string]*leaseEntry, error) {
	if g.rec.Lease.Status != api.StatusActive {
		return nil, wire.Errorf(wire.FailedPrecondition, "%s %s: group is %s, not active", verb, g.rec.Lease.ID, g.rec.Lease.Status)
	}
	live := c.liveParts(g.rec)
	if len(live) != len(g.rec.Siblings) {
		return nil, wire.Errorf(wire.FailedPrecondition, "%s %s: a part of the group has ended; the group ends with it", verb, g.rec.Lease.ID)
	}
	return live, nil
}

// groupExtend extends every part of group g, or none: each is checked first.
func (c *Controller) groupExtend(ctx context.Context, who string, g *leaseEntry, req *api.ExtendRequest) (any, error) {
	live, err := c.activeParts(g, "extend")
	if err != nil {
		return nil, err
	}
	end := time.Now().UTC().Add(req.Duration)
	exps := make([]string, 0, len(live))
	for e, a := range live {
		l := &a.rec.Lease
		switch {
		case l.Keepalive > 0:
			return nil, wire.Errorf(wire.FailedPrecondition, "extend %s: a keepalive lease lives while its holder runs, until %s at most; it cannot be extended",
				g.rec.Lease.ID, l.Until.Local().Format("2006-01-02 15:04:05"))
		case end.Before(l.End) && !req.Set:
			return nil, wire.Errorf(wire.FailedPrecondition, "extend %s: %v from now (%s) is earlier than the end of part %s on %s (%s), and an extension never shortens a lease; "+
				"to end it earlier say so: jsn lease extend --set %s %v", g.rec.Lease.ID, req.Duration, end.Local().Format("15:04:05"), l.ID, e,
				l.End.Local().Format("15:04:05"), g.rec.Lease.ID, req.Duration)
		}
		if r := c.reservedFrom(e, l.ID); !r.IsZero() && end.After(r) {
			return nil, wire.Errorf(wire.FailedPrecondition, "extend %s: exporter %s (part %s) is reserved from %s by a scheduled lease; the longest extension now is until then",
				g.rec.Lease.ID, e, l.ID, r.Local().Format("15:04:05"))
		}
		exps = append(exps, e)
	}
	sort.Strings(exps)
	for _, e := range exps {
		b, err := wire.Marshal(api.ExtendRequest{ID: live[e].rec.Lease.ID, Duration: req.Duration, Set: req.Set})
		if err != nil {
			return nil, err
		}
		if _, err := c.leaseExtend(ctx, who, b); err != nil {
			return nil, fmt.Errorf("extend %s: part %s on %s: %w", g.rec.Lease.ID, live[e].rec.Lease.ID, e, err)
		}
	}
	if cur := c.groupRecord(g.rec.Lease.ID); cur != nil {
		g = cur
	}
	return c.groupReply(g), nil
}

// groupKeepalive renews every part of keepalive group g.
func (c *Controller) groupKeepalive(ctx context.Context, who string, g *leaseEntry) (any, error) {
	if g.rec.Lease.Status == api.StatusQueued && g.rec.Lease.Keepalive > 0 {
		return c.renewQueued(ctx, g) // its holder still waits for it
	}
	if g.rec.Lease.Status != api.StatusActive {
		l := g.rec.Lease
		return api.KeepaliveReply{Lease: &l}, nil
	}
	for e, a := range c.liveParts(g.rec) {
		b, err := wire.Marshal(api.LeaseID{ID: a.rec.Lease.ID})
		if err != nil {
			return nil, err
		}
		if _, err := c.leaseKeepalive(ctx, who, b); err != nil {
			return nil, fmt.Errorf("keepalive %s: part %s on %s: %w", g.rec.Lease.ID, a.rec.Lease.ID, e, err)
		}
	}
	rep := c.groupReply(g)
	return api.KeepaliveReply{Lease: rep.Lease}, nil
}
