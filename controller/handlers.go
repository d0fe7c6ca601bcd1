package controller

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"
	"sort"
	"strconv"
	"strings"
	"time"

	"jsn.dev/jsn/bus"
	"jsn.dev/jsn/bus/wire"
	"jsn.dev/jsn/controller/api"
)

// serveAPI adds the micro service "jsn-controller" with one endpoint per verb. Replies go only
// into the requester's own inbox (apiRequester): a request naming any other reply subject is
// dropped unanswered.
func (c *Controller) serveAPI() error {
	c.conn.GuardReplies(apiRequester, c.refusedReply)
	svc, err := c.conn.AddService(bus.ServiceConfig{Name: "jsn-controller", Version: "0.1.0",
		Description: "jsn lab controller", QueueGroup: "jsn-controller"})
	if err != nil {
		return fmt.Errorf("controller: %w", err)
	}
	c.svc = svc
	type ep struct {
		prefix, verb string
		h            func(ctx context.Context, who string, data []byte) (any, error)
	}
	eps := []ep{
		{api.PrefixExporter, api.VerbRegister, c.register},
		{api.PrefixExporter, api.VerbHeartbeat, c.heartbeat},
		{api.PrefixExporter, api.VerbLeaseEnded, c.leaseEnded},
		{api.PrefixExporter, api.VerbLeaseDone, c.leaseDone},
		{api.PrefixClient, api.VerbLeaseRequest, c.leaseRequest},
		{api.PrefixClient, api.VerbLeaseGet, c.leaseGet},
		{api.PrefixClient, api.VerbLeaseExtend, c.leaseExtend},
		{api.PrefixClient, api.VerbLeaseRelease, c.leaseRelease},
		{api.PrefixClient, api.VerbLeaseList, c.leaseList},
		{api.PrefixClient, api.VerbExportersList, c.exportersList},
		{api.PrefixClient, api.VerbExportersDesc, c.exportersDescribe},
		{api.PrefixAdmin, api.VerbCreateExporter, c.createExporter},
		{api.PrefixAdmin, api.VerbCreateClient, c.createClient},
		{api.PrefixAdmin, api.VerbListExporter, c.lister(api.KindExporter)},
		{api.PrefixAdmin, api.VerbListClient, c.lister(api.KindClient)},
		{api.PrefixAdmin, api.VerbDeleteExporter, c.deleter(api.KindExporter)},
		{api.PrefixAdmin, api.VerbDeleteClient, c.deleter(api.KindClient)},
	}
	for _, e := range eps {
		name := strings.NewReplacer(".", "-").Replace(strings.TrimSuffix(strings.TrimPrefix(e.prefix, "jsn.ctl."), ".") + "-" + e.verb)
		h := e.h
		clientAPI := e.prefix != api.PrefixExporter
		err := svc.Handle(name, e.prefix+"*."+e.verb, func(m *bus.Msg) {
			// Each request in its own goroutine: one waiting for a bucket (a cluster electing a
			// stream leader) must not hold up the others of its verb.
			c.reqs <- struct{}{}
			c.reqWG.Add(1)
			go func() {
				defer func() { <-c.reqs; c.reqWG.Done() }()
				c.serve(m, h, clientAPI)
			}()
		})
		if err != nil {
			return fmt.Errorf("controller: %w", err)
		}
	}
	return nil
}

// apiRequester is the inbox prefix of whoever sent API request m: the identity named by the
// subject's fourth token, which NATS permissions let only that identity publish
// (jsn.ctl.c.<client>, jsn.ctl.a.<admin client>, jsn.ctl.e.<exporter>).
func apiRequester(m *bus.Msg) string {
	parts := strings.SplitN(m.Subject, ".", 5)
	if len(parts) < 5 || parts[0] != "jsn" || parts[1] != "ctl" || !bus.ValidName(parts[3]) {
		return ""
	}
	switch parts[2] {
	case "c", "a":
		return bus.InboxPrefix(bus.KindClient, parts[3])
	case "e":
		return bus.InboxPrefix(bus.KindExporter, parts[3])
	}
	return ""
}

// refusedReply logs requests dropped for naming a reply outside their requester's inbox, at most
// one line per refusalLogEvery (they are an attack or a broken client, and must not flood the log).
func (c *Controller) refusedReply(m *bus.Msg, inbox string) {
	now := time.Now()
	c.refusedMu.Lock()
	c.refusedN++
	if now.Sub(c.refusedAt) < refusalLogEvery {
		c.refusedMu.Unlock()
		return
	}
	n := c.refusedN
	c.refusedN, c.refusedAt = 0, now
	c.refusedMu.Unlock()
	c.log.Warn("controller api: request dropped: its reply subject is not the requester's inbox",
		"subject", m.Subject, "reply", m.Reply, "inbox", inbox, "dropped", n)
}

// refusalLogEvery bounds how often dropped requests are logged.
const refusalLogEvery = 10 * time.Second

// serve answers one API request. Client and admin requests carrying a sync token wait until
// this replica has seen the writes it stands for, and every reply carries the current one.
func (c *Controller) serve(m *bus.Msg, h func(ctx context.Context, who string, data []byte) (any, error), clientAPI bool) {
	c.served.Add(1)
	defer func() {
		if r := recover(); r != nil {
			c.log.Error("controller api: panic", "subject", m.Subject, "panic", r, "stack", string(debug.Stack()))
			_ = m.RespondError(bus.Errorf(bus.Internal, "%s: the controller failed (a bug; see its log)", m.Subject))
		}
	}()
	who := strings.Split(m.Subject, ".")[3]
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var out any
	want, err := parseSyncToken(m.Header.Get(api.HeaderSync))
	if err == nil && clientAPI {
		err = c.waitSeen(ctx, want)
	}
	if err == nil {
		out, err = h(ctx, who, m.Data)
	}
	var hdr bus.Header
	if clientAPI {
		hdr = bus.Header{api.HeaderSync: {c.syncToken()}}
	}
	if err != nil {
		if _, ok := err.(*bus.Error); !ok {
			if be := (*bus.Error)(nil); errors.As(err, &be) && be.Code == bus.Unavailable {
				err = bus.Errorf(bus.Unavailable, "%s: %v", m.Subject, err) // a bucket not answering: try again
			} else {
				c.log.Error("controller api", "subject", m.Subject, "err", err)
				err = bus.Errorf(bus.Internal, "%s: %v", m.Subject, err)
			}
		}
		eh := wire.ErrorHeader(err)
		for k, v := range hdr {
			eh[k] = v
		}
		_ = m.Respond(eh, nil)
		return
	}
	b, err := bus.Marshal(out)
	if err != nil {
		_ = m.RespondError(bus.Errorf(bus.Internal, "%v", err))
		return
	}
	_ = m.Respond(hdr, b)
}

func decode(data []byte, v any) error {
	if len(data) == 0 {
		return nil // an empty body is the zero request
	}
	if err := bus.Unmarshal(data, v); err != nil {
		return bus.Errorf(bus.InvalidArgument, "bad request body: %v", err)
	}
	return nil
}

func (c *Controller) identity(kind, name string) *api.Identity {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.ids[kind+"."+name]
}

// --- exporters ---

func (c *Controller) register(ctx context.Context, e string, data []byte) (any, error) {
	var req api.RegisterRequest
	if err := decode(data, &req); err != nil {
		return nil, err
	}
	id := c.identity(api.KindExporter, e)
	if id == nil {
		return nil, bus.Errorf(bus.PermissionDenied, "register %s: no such exporter identity", e)
	}
	labels := map[string]string{}
	for k, v := range req.Labels {
		labels[k] = v
	}
	for k, v := range id.Labels { // the admin's labels win
		labels[k] = v
	}
	if req.AfterLease < 0 {
		return nil, bus.Errorf(bus.InvalidArgument, "register %s: negative afterLease timeout", e)
	}
	now := time.Now().UTC()
	rec := &exporterRecord{Name: e, Labels: labels, Describe: req.Describe, Version: req.Version, Registered: now, LastSeen: now,
		AfterLease: min(req.AfterLease, maxAfterLease)}
	if err := c.putExporter(ctx, rec); err != nil {
		return nil, err
	}
	c.notBusy(ctx, e, req.Busy)
	l, rev := c.currentLease(e)
	return api.RegisterReply{Lease: l, Heartbeat: c.o.Heartbeat, Rev: rev}, nil
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

func (c *Controller) leaseDone(ctx context.Context, e string, data []byte) (any, error) {
	var req api.LeaseDoneRequest
	if err := decode(data, &req); err != nil {
		return nil, err
	}
	c.mu.Lock()
	le := c.active[e]
	c.mu.Unlock()
	if le != nil && le.rec.Finishing && le.rec.Lease.ID == req.Lease {
		c.finished(ctx, e, le)
	}
	return api.Empty{}, nil
}

func (c *Controller) putExporter(ctx context.Context, rec *exporterRecord) error {
	b, err := bus.Marshal(rec)
	if err != nil {
		return err
	}
	rev, err := c.exporters.Put(ctx, rec.Name, b)
	if err != nil {
		return err
	}
	c.mu.Lock()
	if c.fresh("e/"+rec.Name, rev) {
		c.setExp(rec)
	}
	c.mu.Unlock()
	return nil
}

// currentLease returns exporter e's active lease (nil if none) and the revision of the lease
// bucket it is current at: this replica has seen every change of e's key up to there.
func (c *Controller) currentLease(e string) (*api.Lease, uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	rev := max(c.seen[syncLeases], c.revs["l/"+e])
	if le := c.active[e]; le.live() && le.rec.Lease.End.After(time.Now()) {
		l := le.rec.Lease
		return &l, rev
	}
	return nil, rev
}

func (c *Controller) heartbeat(ctx context.Context, e string, data []byte) (any, error) {
	var req api.HeartbeatRequest
	if err := decode(data, &req); err != nil {
		return nil, err
	}
	if c.identity(api.KindExporter, e) == nil {
		return nil, bus.Errorf(bus.PermissionDenied, "heartbeat %s: no such exporter identity", e)
	}
	c.mu.Lock()
	old := c.exps[e]
	c.mu.Unlock()
	if old == nil {
		return nil, bus.Errorf(bus.FailedPrecondition, "heartbeat %s: not registered (register first)", e)
	}
	rec := *old
	rec.LastSeen = time.Now().UTC()
	pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	if err := c.putExporter(pctx, &rec); err != nil {
		// The exporter must still hear what it should serve: that is what a heartbeat is for.
		c.log.Warn("heartbeat: record last seen", "exporter", e, "err", err)
	}
	c.notBusy(ctx, e, req.Busy)
	l, rev := c.currentLease(e)
	return api.HeartbeatReply{Lease: l, Rev: rev}, nil
}

func (c *Controller) leaseEnded(ctx context.Context, e string, data []byte) (any, error) {
	var req api.LeaseEndedRequest
	if err := decode(data, &req); err != nil {
		return nil, err
	}
	c.mu.Lock()
	le := c.active[e]
	c.mu.Unlock()
	if !le.live() || le.rec.Lease.ID != req.Lease {
		return api.Empty{}, nil // already over
	}
	reason := "ended by the exporter"
	if req.Reason != "" {
		reason += ": " + req.Reason
	}
	return api.Empty{}, c.endLease(ctx, e, le, reason)
}

// --- clients ---

func (c *Controller) leaseRequest(ctx context.Context, who string, data []byte) (any, error) {
	var req api.LeaseRequest
	if err := decode(data, &req); err != nil {
		return nil, err
	}
	id := c.identity(api.KindClient, who)
	if id == nil {
		return nil, bus.Errorf(bus.PermissionDenied, "lease request: no such client %s", who)
	}
	switch {
	case req.Duration <= 0:
		return nil, bus.Errorf(bus.InvalidArgument, "lease request: duration must be positive")
	case req.Duration > c.o.MaxDuration:
		return nil, bus.Errorf(bus.InvalidArgument, "lease request: duration %v exceeds the controller's maximum of %v", req.Duration, c.o.MaxDuration)
	case id.MaxDuration > 0 && req.Duration > id.MaxDuration:
		return nil, bus.Errorf(bus.InvalidArgument, "lease request: duration %v exceeds client %s's cap of %v", req.Duration, who, id.MaxDuration)
	case (req.Selector == "") == (req.Exporter == ""):
		return nil, bus.Errorf(bus.InvalidArgument, "lease request: give either a selector or an exporter name")
	case req.Exporter != "" && !bus.ValidName(req.Exporter):
		return nil, bus.Errorf(bus.InvalidArgument, "lease request: bad exporter name %q", req.Exporter)
	}
	if _, err := ParseSelector(req.Selector); err != nil {
		return nil, bus.Errorf(bus.InvalidArgument, "lease request: %v", err)
	}
	if req.ID != "" {
		if len(req.ID) > 64 || !bus.ValidName(req.ID) {
			return nil, bus.Errorf(bus.InvalidArgument, "lease request: id %q: want a subject token of at most 64 letters, digits, - and _", req.ID)
		}
		// A repeated request (its reply was lost): the lease it made, as it is now.
		if rep, err := c.existing(ctx, who, req.ID); rep != nil || err != nil {
			return rep, err
		}
	} else {
		req.ID = randomID()
	}
	rec := &leaseRecord{Lease: api.Lease{ID: req.ID, Client: who, Selector: req.Selector, Exporter: req.Exporter,
		Priority: req.Priority, Status: api.StatusQueued, Created: time.Now().UTC(), Duration: req.Duration, Allow: id.Allow}}
	cands, _ := c.candidates(&rec.Lease)
	if len(cands) == 0 {
		what := "selector " + req.Selector
		if req.Exporter != "" {
			what = "exporter " + req.Exporter
		}
		return nil, bus.Errorf(bus.NotFound, "lease request: no registered exporter matches %s", what)
	}
	if !c.queuedAhead(rec, cands) {
		for _, e := range cands {
			granted, dup, err := c.grant(ctx, e, rec)
			if err != nil {
				return nil, err
			}
			if dup {
				return c.granted(ctx, who, req.ID)
			}
			if granted {
				return api.LeaseReply{Lease: &rec.Lease, Credential: rec.Credential}, nil
			}
		}
	}
	rec.Lease.Exporter = req.Exporter
	rec.Lease.Reason = c.waitReason(&rec.Lease)
	if err := c.putPending(ctx, rec, 0, 0); err != nil {
		if errors.Is(err, bus.ErrKeyExists) {
			return c.granted(ctx, who, req.ID) // the same request, repeated meanwhile
		}
		return nil, err
	}
	c.kickScheduler()
	return api.LeaseReply{Lease: &rec.Lease}, nil
}

// existing returns lease id as lease.get would, or nil if there is no such lease; a lease of
// another client with that id is an error.
func (c *Controller) existing(ctx context.Context, who, id string) (any, error) {
	a, _, p := c.findLease(id)
	if a == nil && p == nil {
		if err := c.catchUp(ctx); err != nil {
			return nil, err
		}
		if a, _, p = c.findLease(id); a == nil && p == nil {
			return nil, nil
		}
	}
	var l *api.Lease
	if a != nil {
		l = &a.rec.Lease
	} else {
		l = &p.rec.Lease
	}
	if l.Client != who {
		return nil, bus.Errorf(bus.InvalidArgument, "lease request: id %s is another client's lease; choose a random id", id)
	}
	if a != nil {
		l := a.rec.Lease
		return api.LeaseReply{Lease: &l, Credential: a.rec.Credential}, nil
	}
	lc := *l
	return api.LeaseReply{Lease: &lc}, nil
}

// granted answers a request whose id turned out to be granted or queued already (the same
// request, repeated while the first one was being served).
func (c *Controller) granted(ctx context.Context, who, id string) (any, error) {
	rep, err := c.existing(ctx, who, id)
	if err == nil && rep == nil {
		err = bus.Errorf(bus.Unavailable, "lease request %s: granted meanwhile, but not visible yet; try again", id)
	}
	return rep, err
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
		if now.Sub(e.LastSeen) < c.o.OfflineAfter && c.active[name] == nil {
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
		if l.Status != api.StatusQueued || l.Priority < rec.Lease.Priority {
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
	var leased, offline []string
	now := time.Now()
	for _, n := range names {
		if a := c.active[n]; a != nil && !a.live() {
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
	if len(parts) == 0 {
		parts = append(parts, "behind earlier requests")
	}
	return fmt.Sprintf("waiting for %d matching exporter(s); %s", len(names), strings.Join(parts, "; "))
}

// grant tries to give exporter e to rec atomically (kv.Create of e's lease key). granted false
// means e is taken. dup means the lease id was granted already (to this or another exporter,
// by this or another replica): the create carries the message id "grant-<id>", so a lease is
// granted at most once however many replicas and retries try.
func (c *Controller) grant(ctx context.Context, e string, rec *leaseRecord) (granted, dup bool, err error) {
	now := time.Now().UTC()
	l := rec.Lease
	l.Exporter, l.Status, l.Reason, l.Begin, l.End = e, api.StatusActive, "", now, now.Add(l.Duration)
	cred, pub, err := c.auth.MintLease(l.Client, e, l.ID, l.Allow, l.End)
	if err != nil {
		return false, false, bus.Errorf(bus.InvalidArgument, "lease: %v", err)
	}
	cred.URL = c.endpoint
	nr := &leaseRecord{Lease: l, Credential: cred, Keys: map[string]time.Time{pub: l.End}}
	b, err := bus.Marshal(nr)
	if err != nil {
		return false, false, err
	}
	// The key outlives the lease by the exporter's finishing allowance: if no scheduler ends the
	// lease on time, the exporter still gets to finish it before it can be granted again.
	rev, dup, err := c.leases.CreateOnce(ctx, e, b, ttlUntil(l.End)+c.finishAllowance(e), "grant-"+l.ID)
	if errors.Is(err, bus.ErrKeyExists) {
		return false, false, nil
	}
	if err != nil || dup {
		return false, dup, err
	}
	c.mu.Lock()
	if c.fresh("l/"+e, rev) {
		c.active[e] = &leaseEntry{rec: nr, rev: rev}
	}
	c.mu.Unlock()
	*rec = *nr
	c.push(e, &l, rev)
	return true, false, nil
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
		b, _ = bus.Marshal(l)
	}
	_ = c.conn.Publish(api.LeasePushSubject(e), bus.Header{api.HeaderLeaseRev: {strconv.FormatUint(rev, 10)}}, b)
}

func (c *Controller) putPending(ctx context.Context, rec *leaseRecord, rev uint64, ttl time.Duration) error {
	b, err := bus.Marshal(rec)
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
		return nil, "", nil, bus.Errorf(bus.InvalidArgument, "lease id required")
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
		return nil, "", nil, bus.Errorf(bus.NotFound, "lease %s: not found", id)
	}
	if l.Client != who {
		if adm := c.identity(api.KindClient, who); adm == nil || !adm.Admin {
			return nil, "", nil, bus.Errorf(bus.NotFound, "lease %s: not found", id)
		}
	}
	return a, e, p, nil
}

func (c *Controller) leaseGet(ctx context.Context, who string, data []byte) (any, error) {
	var req api.LeaseID
	if err := decode(data, &req); err != nil {
		return nil, err
	}
	a, _, p, err := c.ownLease(ctx, who, req.ID)
	if err != nil {
		return nil, err
	}
	if a != nil {
		l := a.rec.Lease
		return api.LeaseReply{Lease: &l, Credential: a.rec.Credential}, nil
	}
	l := p.rec.Lease
	return api.LeaseReply{Lease: &l}, nil
}

func (c *Controller) leaseExtend(ctx context.Context, who string, data []byte) (any, error) {
	var req api.ExtendRequest
	if err := decode(data, &req); err != nil {
		return nil, err
	}
	id := c.identity(api.KindClient, who)
	if id == nil {
		return nil, bus.Errorf(bus.PermissionDenied, "extend: no such client %s", who)
	}
	switch {
	case req.Duration <= 0:
		return nil, bus.Errorf(bus.InvalidArgument, "extend: duration must be positive")
	case req.Duration > c.o.MaxDuration:
		return nil, bus.Errorf(bus.InvalidArgument, "extend: duration %v exceeds the controller's maximum of %v", req.Duration, c.o.MaxDuration)
	case id.MaxDuration > 0 && req.Duration > id.MaxDuration:
		return nil, bus.Errorf(bus.InvalidArgument, "extend: duration %v exceeds client %s's cap of %v", req.Duration, who, id.MaxDuration)
	}
	a, e, p, err := c.ownLease(ctx, who, req.ID)
	if err != nil {
		return nil, err
	}
	if a == nil {
		return nil, bus.Errorf(bus.FailedPrecondition, "extend %s: lease is %s, not active", req.ID, p.rec.Lease.Status)
	}
	nr := *a.rec
	nr.Lease.End = time.Now().UTC().Add(req.Duration)
	nr.Lease.Duration = nr.Lease.End.Sub(nr.Lease.Begin)
	cred, pub, err := c.auth.MintLease(nr.Lease.Client, e, nr.Lease.ID, nr.Lease.Allow, nr.Lease.End)
	if err != nil {
		return nil, err
	}
	cred.URL = c.endpoint
	nr.Credential = cred
	nr.Keys = map[string]time.Time{pub: nr.Lease.End}
	for k, v := range a.rec.Keys {
		nr.Keys[k] = v
	}
	b, err := bus.Marshal(&nr)
	if err != nil {
		return nil, err
	}
	rev, err := c.leases.Update(ctx, e, b, a.rev, ttlUntil(nr.Lease.End)+c.finishAllowance(e))
	if err != nil {
		if errors.Is(err, bus.ErrKeyChanged) || errors.Is(err, bus.ErrKeyNotFound) {
			return nil, bus.Errorf(bus.FailedPrecondition, "extend %s: the lease changed meanwhile (ended?); try again", req.ID)
		}
		return nil, err
	}
	c.mu.Lock()
	if c.fresh("l/"+e, rev) {
		c.active[e] = &leaseEntry{rec: &nr, rev: rev}
	}
	c.mu.Unlock()
	c.push(e, &nr.Lease, rev)
	return api.LeaseReply{Lease: &nr.Lease, Credential: cred}, nil
}

func (c *Controller) leaseRelease(ctx context.Context, who string, data []byte) (any, error) {
	var req api.LeaseID
	if err := decode(data, &req); err != nil {
		return nil, err
	}
	for attempt := 0; attempt < 5; attempt++ {
		a, e, p, err := c.ownLease(ctx, who, req.ID)
		if err != nil {
			return nil, err
		}
		if a != nil {
			return api.Empty{}, c.endLease(ctx, e, a, "released by "+who)
		}
		if p.rec.Lease.Status == api.StatusQueued {
			err := c.endPending(ctx, p, "cancelled by "+who)
			if errors.Is(err, bus.ErrKeyChanged) || errors.Is(err, bus.ErrKeyNotFound) {
				// Granted meanwhile: look again once this replica has seen it.
				if err := c.catchUp(ctx); err != nil {
					return nil, err
				}
				continue
			}
			return api.Empty{}, err
		}
		// Ended already (a repeated release whose first reply was lost): make sure its
		// credentials are revoked, as a replica that died inside the release may not have.
		return api.Empty{}, c.revoke(ctx, p.rec.Keys)
	}
	return nil, bus.Errorf(bus.Unavailable, "release %s: the lease keeps changing; try again", req.ID)
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
			b, merr := bus.Marshal(f)
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
		case bus.Unmarshal(cur.Value, &r) != nil:
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
	ended.Credential = nil // Keys stay: a restarted controller re-applies revocations a crash lost
	ended.Lease.Status, ended.Lease.Reason = api.StatusEnded, reason
	if now := time.Now().UTC(); ended.Lease.End.After(now) {
		ended.Lease.End = now
	}
	b, err := bus.Marshal(&ended)
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
			if bus.Unmarshal(cur.Value, &r) == nil && r.Lease.Status == api.StatusEnded {
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
		return nil
	}
}

func (c *Controller) endPending(ctx context.Context, p *leaseEntry, reason string) error {
	ended := *p.rec
	ended.Lease.Status, ended.Lease.Reason = api.StatusEnded, reason
	return c.putPending(ctx, &ended, p.rev, endedKeepFor)
}

func (c *Controller) leaseList(ctx context.Context, who string, data []byte) (any, error) {
	var req api.ListLeasesRequest
	if err := decode(data, &req); err != nil {
		return nil, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	out := api.ListLeasesReply{Leases: []api.Lease{}}
	for _, a := range c.active {
		if a.live() && (req.All || a.rec.Lease.Client == who) {
			out.Leases = append(out.Leases, a.rec.Lease)
		}
	}
	for _, p := range c.pending {
		if p.rec.Lease.Status == api.StatusQueued && (req.All || p.rec.Lease.Client == who) {
			out.Leases = append(out.Leases, p.rec.Lease)
		}
	}
	sort.Slice(out.Leases, func(i, j int) bool { return out.Leases[i].Created.Before(out.Leases[j].Created) })
	return out, nil
}

func (c *Controller) exportersList(ctx context.Context, who string, data []byte) (any, error) {
	var req api.ListExportersRequest
	if err := decode(data, &req); err != nil {
		return nil, err
	}
	sel, err := ParseSelector(req.Selector)
	if err != nil {
		return nil, bus.Errorf(bus.InvalidArgument, "list exporters: %v", err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	now := time.Now()
	out := api.ListExportersReply{Exporters: []api.ExporterInfo{}}
	for name, e := range c.exps {
		if !sel.Matches(e.Labels) {
			continue
		}
		info := api.ExporterInfo{Name: name, Labels: e.Labels, LastSeen: e.LastSeen, Version: e.Version,
			Online: now.Sub(e.LastSeen) < c.o.OfflineAfter}
		if a := c.active[name]; a.live() {
			l := a.rec.Lease
			info.Lease = &l
		}
		out.Exporters = append(out.Exporters, info)
	}
	sort.Slice(out.Exporters, func(i, j int) bool { return out.Exporters[i].Name < out.Exporters[j].Name })
	return out, nil
}

func (c *Controller) exportersDescribe(ctx context.Context, who string, data []byte) (any, error) {
	var req api.ExporterName
	if err := decode(data, &req); err != nil {
		return nil, err
	}
	c.mu.Lock()
	e := c.exps[req.Name]
	c.mu.Unlock()
	if e == nil {
		return nil, bus.Errorf(bus.NotFound, "exporter %q: not registered", req.Name)
	}
	return e.Describe, nil
}

// --- admin ---

func (c *Controller) isAdmin(who string) error {
	if id := c.identity(api.KindClient, who); id == nil || !id.Admin {
		return bus.Errorf(bus.PermissionDenied, "%s is not an admin", who)
	}
	return nil
}

func checkLabels(labels map[string]string) error {
	for k, v := range labels {
		if !validWord(k) || !validWord(v) {
			return fmt.Errorf("label %q=%q: use letters, digits and -_./", k, v)
		}
	}
	return nil
}

func validWord(s string) bool {
	if s == "" || len(s) > 253 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !isWordByte(s[i]) {
			return false
		}
	}
	return true
}

// reserved refuses names kept for the lab's own principals, whatever the kind: "jsn-…" (the
// controller's users) and "admin" (the first admin). Inbox prefixes are kind-qualified, so a
// name of one kind never reaches another kind's replies; reserving these keeps logs and lists
// unambiguous too.
func reserved(name string) error {
	if strings.HasPrefix(name, "jsn-") || name == AdminName {
		return fmt.Errorf("the name %s is reserved (jsn-… and %s are the lab's own)", name, AdminName)
	}
	return nil
}

func (c *Controller) createExporter(ctx context.Context, who string, data []byte) (any, error) {
	if err := c.isAdmin(who); err != nil {
		return nil, err
	}
	var req api.CreateExporterRequest
	if err := decode(data, &req); err != nil {
		return nil, err
	}
	if err := bus.CheckName("exporter name", req.Name); err != nil {
		return nil, bus.Errorf(bus.InvalidArgument, "create exporter: %v", err)
	}
	if err := reserved(req.Name); err != nil {
		return nil, bus.Errorf(bus.InvalidArgument, "create exporter %s: %v", req.Name, err)
	}
	if err := checkLabels(req.Labels); err != nil {
		return nil, bus.Errorf(bus.InvalidArgument, "create exporter %s: %v", req.Name, err)
	}
	creds, pub, err := c.auth.NewExporter(req.Name)
	if err != nil {
		return nil, err
	}
	id := api.Identity{Name: req.Name, Kind: api.KindExporter, PublicKey: pub, Labels: req.Labels, Created: time.Now().UTC(),
		Scheme: api.IdentityScheme}
	if err := c.storeIdentity(ctx, &id); err != nil {
		return nil, err
	}
	cfg, err := ExporterConfigYAML(req.Name, c.endpoint, req.Labels, creds)
	if err != nil {
		return nil, err
	}
	return api.ConfigReply{Config: cfg}, nil
}

func (c *Controller) createClient(ctx context.Context, who string, data []byte) (any, error) {
	if err := c.isAdmin(who); err != nil {
		return nil, err
	}
	var req api.CreateClientRequest
	if err := decode(data, &req); err != nil {
		return nil, err
	}
	if err := bus.CheckName("client name", req.Name); err != nil {
		return nil, bus.Errorf(bus.InvalidArgument, "create client: %v", err)
	}
	if err := reserved(req.Name); err != nil {
		return nil, bus.Errorf(bus.InvalidArgument, "create client %s: %v", req.Name, err)
	}
	for _, a := range req.Allow {
		if err := CheckAllow(a); err != nil {
			return nil, bus.Errorf(bus.InvalidArgument, "create client %s: %v", req.Name, err)
		}
	}
	if req.MaxDuration < 0 {
		return nil, bus.Errorf(bus.InvalidArgument, "create client %s: negative max duration", req.Name)
	}
	creds, pub, err := c.auth.NewClient(req.Name, req.Admin)
	if err != nil {
		return nil, err
	}
	id := api.Identity{Name: req.Name, Kind: api.KindClient, PublicKey: pub, Allow: req.Allow, MaxDuration: req.MaxDuration,
		Admin: req.Admin, Created: time.Now().UTC(), Scheme: api.IdentityScheme}
	if err := c.storeIdentity(ctx, &id); err != nil {
		return nil, err
	}
	cfg, err := ClientConfigYAML(req.Name, c.endpoint, creds, req.Admin, req.Allow)
	if err != nil {
		return nil, err
	}
	return api.ConfigReply{Config: cfg}, nil
}

func (c *Controller) storeIdentity(ctx context.Context, id *api.Identity) error {
	b, err := bus.Marshal(id)
	if err != nil {
		return err
	}
	key := id.Kind + "." + id.Name
	rev, err := c.identities.Create(ctx, key, b, 0)
	if errors.Is(err, bus.ErrKeyExists) {
		return bus.Errorf(bus.FailedPrecondition, "%s %s already exists (delete it first)", id.Kind, id.Name)
	}
	if err != nil {
		return err
	}
	c.cacheIdentity(key, rev, id)
	return nil
}

// cacheIdentity records an identity this replica just wrote at rev, unless the cache already has
// a newer revision of it.
func (c *Controller) cacheIdentity(key string, rev uint64, id *api.Identity) {
	c.mu.Lock()
	if c.fresh("i/"+key, rev) {
		c.ids[key] = id
	}
	c.mu.Unlock()
}

func (c *Controller) lister(kind string) func(context.Context, string, []byte) (any, error) {
	return func(ctx context.Context, who string, data []byte) (any, error) {
		if err := c.isAdmin(who); err != nil {
			return nil, err
		}
		c.mu.Lock()
		defer c.mu.Unlock()
		out := api.ListIdentitiesReply{Identities: []api.Identity{}}
		for _, id := range c.ids {
			if id.Kind == kind {
				out.Identities = append(out.Identities, *id)
			}
		}
		sort.Slice(out.Identities, func(i, j int) bool { return out.Identities[i].Name < out.Identities[j].Name })
		return out, nil
	}
}

func (c *Controller) deleter(kind string) func(context.Context, string, []byte) (any, error) {
	return func(ctx context.Context, who string, data []byte) (any, error) {
		if err := c.isAdmin(who); err != nil {
			return nil, err
		}
		var req api.ExporterName
		if err := decode(data, &req); err != nil {
			return nil, err
		}
		id := c.identity(kind, req.Name)
		if id == nil {
			return nil, bus.Errorf(bus.NotFound, "%s %q: no such identity", kind, req.Name)
		}
		if kind == api.KindClient && req.Name == who {
			return nil, bus.Errorf(bus.FailedPrecondition, "delete client %s: an admin cannot delete itself", who)
		}
		key := kind + "." + req.Name
		if _, err := c.identities.Delete(ctx, key, 0); err != nil {
			return nil, err
		}
		c.mu.Lock()
		delete(c.ids, key)
		var ends []*leaseEntry
		var exps []string
		var pend []*leaseEntry
		for e, a := range c.active {
			if !a.live() {
				continue
			}
			if kind == api.KindExporter && e == req.Name || kind == api.KindClient && a.rec.Lease.Client == req.Name {
				ends = append(ends, a)
				exps = append(exps, e)
			}
		}
		for _, p := range c.pending {
			if p.rec.Lease.Status == api.StatusQueued && kind == api.KindClient && p.rec.Lease.Client == req.Name {
				pend = append(pend, p)
			}
		}
		c.mu.Unlock()
		if err := c.revokeWait(ctx, map[string]time.Time{id.PublicKey: {}}); err != nil {
			return nil, err
		}
		for i, a := range ends {
			_ = c.endLease(ctx, exps[i], a, "identity "+req.Name+" deleted")
		}
		for _, p := range pend {
			_ = c.endPending(ctx, p, "client deleted")
		}
		if kind == api.KindExporter {
			// A deleted exporter finishes nothing: free its name at once.
			c.mu.Lock()
			fin := c.active[req.Name]
			c.mu.Unlock()
			if fin != nil && !fin.live() {
				c.finished(ctx, req.Name, fin)
			}
			_, _ = c.exporters.Delete(ctx, req.Name, 0)
		}
		return api.Empty{}, nil
	}
}
