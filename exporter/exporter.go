package exporter

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"runtime/debug"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"jsn.dev/jsn/bus"
	"jsn.dev/jsn/bus/wire"
	"jsn.dev/jsn/drivers/driver"
)

// Exporter serves one driver tree on the bus: describe requests, driver calls and streams, for
// the current lease only.
type Exporter struct {
	name   string
	labels map[string]string
	tree   *driver.Tree
	log    *slog.Logger

	conn    *bus.Conn         // non-nil after Start
	streams *bus.StreamServer // non-nil after Start
	subs    []*bus.Subscription
	tapConn atomic.Pointer[bus.Conn] // where taps are published; nil until Start
	calls   sync.WaitGroup
	pool    *workers      // runs calls; idle workers are reused
	extra   []*attachment // further connections (Attach); guarded by mu
	direct  *bus.DirectListener

	// waitLease, if set before Start, is called (in its own goroutine) for describe requests
	// carrying a Jsn-Lease header: it may wait until that lease is served, and its error is the
	// reply. Remote mode uses it as the "lease ready" barrier.
	waitLease func(m *bus.Msg) error
	// guard, if set before Start, makes the main connection answer only into the inbox of the
	// lease a request presents (see GuardReplies).
	guard bool
	// audit, if set before Start, makes the exporter append an event for each call to the
	// controller's audit log (see AuditCalls).
	audit bool
	// seals, if set before Start, makes the guard accept replies only into sealed inboxes of
	// a lease's holders (see CheckSeals).
	seals *bus.SealChecker

	power powerStates // the power drivers' last known states (power.go)

	refusedMu sync.Mutex
	refusedAt time.Time // last log line about dropped requests; guarded by refusedMu
	refusedN  int       // dropped since then; guarded by refusedMu

	mu          sync.Mutex
	lease       string                  // current lease id, "" when none; guarded by mu
	allow       []string                // the lease's allow list, nil for all; guarded by mu
	holder      string                  // the lease's holder ("" in a local session); guarded by mu
	shared      []string                // the clients the holder shared the lease with; guarded by mu
	sharedAllow map[string][]string     // their allow lists; guarded by mu
	leaseCtx    context.Context         // cancelled when the lease ends; guarded by mu
	leaseCancel context.CancelCauseFunc // guarded by mu
	stopped     bool                    // guarded by mu
}

// New builds the driver tree of cfg (no side effects: nothing is opened).
func New(cfg *Config, log *slog.Logger) (*Exporter, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if err := wire.CheckName("exporter name", cfg.Metadata.Name); err != nil {
		return nil, fmt.Errorf("%s: metadata.name: %w", cfg.File, err)
	}
	e := &Exporter{name: cfg.Metadata.Name, labels: cfg.Metadata.Labels, log: log.With("exporter", cfg.Metadata.Name),
		pool: newWorkers(10 * time.Second)}
	tree, err := cfg.BuildWith(driver.BuildOptions{Log: log, Tap: e.tapper})
	if err != nil {
		return nil, err
	}
	e.tree = tree
	e.initPower()
	return e, nil
}

// Name returns the exporter's name.
func (e *Exporter) Name() string { return e.name }

// Tree returns the driver tree.
func (e *Exporter) Tree() *driver.Tree { return e.tree }

// Describe returns the driver tree's description.
func (e *Exporter) Describe() *wire.Description {
	return &wire.Description{Exporter: e.name, Labels: e.labels, Drivers: e.tree.Describe()}
}

// describe answers a describe request. It is computed per request: availability changes.
func (e *Exporter) describe(m *bus.Msg) {
	if e.waitLease != nil && m.Header.Get(wire.HeaderLease) != "" {
		e.calls.Add(1)
		go func() {
			defer e.calls.Done()
			if err := e.waitLease(m); err != nil {
				_ = m.RespondError(err)
				return
			}
			e.describeNow(m)
		}()
		return
	}
	e.describeNow(m)
}

func (e *Exporter) describeNow(m *bus.Msg) {
	b, err := wire.Marshal(e.Describe())
	if err != nil {
		_ = m.RespondError(wire.Errorf(wire.Internal, "describe: %v", err))
		return
	}
	_ = m.Respond(nil, b)
}

// tapper returns the tap publisher of the driver at path. Each message carries the offset of its
// first byte in the driver's output (Jsn-Tap-Offset), counted whether or not the exporter is
// connected, so that a watcher can join a history (driver.TapHistorian, whose end counts the same
// bytes) to the live bytes without a gap or a duplicate.
func (e *Exporter) tapper(path string) func([]byte) {
	subject := wire.TapSubject(e.name, path)
	var off atomic.Int64
	return func(data []byte) {
		at := off.Add(int64(len(data))) - int64(len(data))
		if c := e.tapConn.Load(); c != nil {
			_ = c.Publish(subject, wire.Header{wire.HeaderTapOffset: {strconv.FormatInt(at, 10)}}, data)
		}
	}
}

// HistoryLimit is the most bytes of history a watcher gets (the newest): one message, well below
// the bus's 1 MiB message limit.
const HistoryLimit = 512 << 10

// history answers a tap history request (docs/protocol.md "Taps and their history"): the newest
// output of the driver, with the offset just past it. The reply goes only to a subject of the
// exporter's own tap namespace, so it reaches exactly those who may watch the exporter's taps
// (and the exporter's publish rights stay within its own subjects).
func (e *Exporter) history(m *bus.Msg) {
	if !wire.IsHistoryReply(e.name, m.Reply) {
		e.refusedReply(m, wire.HistoryReplyPrefix(e.name))
		return
	}
	path, ok := wire.ParseHistory(e.name, m.Subject)
	var n *driver.Node
	if ok {
		n = e.tree.Find(path)
	}
	if n == nil {
		_ = m.RespondError(wire.Errorf(wire.NotFound, "history: no driver %q on exporter %s", path, e.name))
		return
	}
	if p, ok := e.powerNode(n); ok && e.powerHistory(m, p) {
		return
	}
	h, ok := n.Driver.(driver.TapHistorian)
	if !ok {
		_ = m.RespondError(wire.Errorf(wire.Unimplemented, "history: driver %s keeps no history of its tap", path))
		return
	}
	data, end := h.TapHistory(HistoryLimit)
	_ = m.Respond(wire.Header{wire.HeaderTapOffset: {strconv.FormatInt(end, 10)}}, data)
}

// Open opens every driver.
func (e *Exporter) Open(ctx context.Context) error { return e.tree.Open(ctx) }

// Close closes every driver. Call Stop first.
func (e *Exporter) Close() error { return e.tree.Close() }

// OfferDirect lets clients move byte streams off the broker onto connections accepted by d (see
// bus.ListenDirect). Call it before Start; the caller closes d after Stop.
func (e *Exporter) OfferDirect(d *bus.DirectListener) { e.direct = d }

// ListenDirect starts the direct stream listener cfg asks for, or the default address def when it
// names none ("" for none); nil when off.
func ListenDirect(cfg DirectStreams, def string) (*bus.DirectListener, error) {
	addr := cfg.Listen
	if addr == "" {
		addr = def
	}
	if addr == "" || cfg.Off() {
		return nil, nil
	}
	return bus.ListenDirect(addr, cfg.Advertise)
}

// GuardReplies makes the exporter, once started, answer requests on its main connection only
// into the inbox of the lease credential that sent them (bus.LeaseInbox): the lease the request
// presents in Jsn-Lease, or for a describe without one the current lease. A request naming any
// other reply subject is dropped unserved, so a lease holder cannot make the exporter publish
// where its own credential may not (another exporter's control subject, JetStream's API,
// another principal's inbox). Distributed mode turns it on; in a local session anyone who can
// open the socket may publish anywhere anyway. Call it before Start.
func (e *Exporter) GuardReplies() { e.guard = true }

// CheckSeals makes the exporter (before Start) answer requests presenting a lease only into a
// sealed inbox (bus.SealedInbox) of a client holding it, with seals checked by seals, and
// attribute each call to that client. Distributed mode turns it on with GuardReplies: a client
// sharing a lease cannot make its calls count as another's.
func (e *Exporter) CheckSeals(seals *bus.SealChecker) { e.seals = seals }

// requester is the inbox a request to the exporter may be answered in (see GuardReplies).
func (e *Exporter) requester(m *bus.Msg) string {
	if _, ok := wire.ParseHistory(e.name, m.Subject); ok {
		// Tap history: replies go to the exporter's own tap namespace (see history).
		return wire.HistoryReplyPrefix(e.name)
	}
	lease := m.Header.Get(wire.HeaderLease)
	if lease == "" {
		lease = e.Lease()
	}
	if !wire.ValidName(lease) {
		return ""
	}
	if e.seals != nil {
		who := e.seals.Holder(m.Reply, e.name, lease)
		if who == "" {
			return "" // not a sealed inbox of the lease: nobody's it may be answered in
		}
		return bus.HolderInbox(e.name, lease, who)
	}
	return bus.LeaseInbox(e.name, lease)
}

// refusedReply logs requests dropped by the guard, at most one line per refusalLogEvery.
func (e *Exporter) refusedReply(m *bus.Msg, inbox string) {
	now := time.Now()
	e.refusedMu.Lock()
	e.refusedN++
	if now.Sub(e.refusedAt) < refusalLogEvery {
		e.refusedMu.Unlock()
		return
	}
	n := e.refusedN
	e.refusedN, e.refusedAt = 0, now
	e.refusedMu.Unlock()
	e.log.Warn("request dropped: its reply subject is not the (sealed) inbox of a holder of the lease it presents",
		"subject", m.Subject, "reply", m.Reply, "inbox", inbox, "dropped", n)
}

// refusalLogEvery bounds how often dropped requests are logged.
const refusalLogEvery = 10 * time.Second

// Start begins serving on conn. Calls are refused until BeginLease.
func (e *Exporter) Start(ctx context.Context, conn *bus.Conn) error {
	if e.guard {
		conn.GuardReplies(e.requester, e.refusedReply)
	}
	ss, err := conn.ServeStreams(e.name)
	if err != nil {
		return fmt.Errorf("serve %s: %w", e.name, err)
	}
	e.conn, e.streams = conn, ss
	if e.direct != nil {
		ss.OfferDirect(e.direct)
	}
	e.tapConn.Store(conn)
	d, err := conn.Subscribe(wire.DescribeSubject(e.name), "", e.describe)
	if err != nil {
		ss.Close()
		return fmt.Errorf("serve %s: %w", e.name, err)
	}
	c, err := conn.Subscribe(wire.CallWildcard(e.name), "", e.dispatch)
	if err != nil {
		_ = d.Unsubscribe()
		ss.Close()
		return fmt.Errorf("serve %s: %w", e.name, err)
	}
	h, err := conn.Subscribe(wire.HistoryWildcard(e.name), "", e.history)
	if err != nil {
		_ = d.Unsubscribe()
		_ = c.Unsubscribe()
		ss.Close()
		return fmt.Errorf("serve %s: %w", e.name, err)
	}
	e.subs = []*bus.Subscription{d, c, h}
	if err := conn.Flush(ctx); err != nil {
		return fmt.Errorf("serve %s: %w", e.name, err)
	}
	e.readPower()
	e.log.Info("serving", "drivers", len(e.tree.Roots))
	return nil
}

// Stop ends the current lease, stops receiving, and waits for calls in flight.
func (e *Exporter) Stop(ctx context.Context) {
	e.mu.Lock()
	if e.stopped {
		e.mu.Unlock()
		return
	}
	e.stopped = true
	e.tapConn.Store(nil)
	lease := e.lease
	extra := e.extra
	e.extra = nil
	e.mu.Unlock()
	for _, s := range e.subs {
		_ = s.Unsubscribe()
	}
	if e.conn != nil && len(e.subs) > 0 {
		// Once the server has dropped the subscriptions, a call gets "no responders" at once
		// instead of reaching a connection about to close and waiting for a reply in vain.
		fctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		_ = e.conn.Flush(fctx)
		cancel()
	}
	for _, a := range extra {
		a.stop()
	}
	if lease != "" {
		_ = e.EndLease(ctx, lease)
	}
	if e.streams != nil {
		e.streams.Close()
	}
	for _, a := range extra {
		a.streams.Close()
	}
	e.calls.Wait()
	e.pool.close()
}

// attachment is a further connection the tree is served on, with its own lease rule.
type attachment struct {
	conn    *bus.Conn
	streams *bus.StreamServer
	subs    []*bus.Subscription
	accept  func(lease string) (context.Context, error)
}

func (a *attachment) stop() {
	for _, s := range a.subs {
		_ = s.Unsubscribe()
	}
}

// Attach serves the tree on conn too (describe, calls and streams), accepting a call when accept
// returns a context for the lease it presents (cancelled when that lease's access ends) and
// refusing it with accept's error otherwise. The main connection's lease (BeginLease) is not
// accepted there unless accept says so. Remote mode attaches the private hook bus this way. Stop
// detaches it.
func (e *Exporter) Attach(ctx context.Context, conn *bus.Conn, accept func(lease string) (context.Context, error)) error {
	ss, err := conn.ServeStreams(e.name)
	if err != nil {
		return fmt.Errorf("serve %s: %w", e.name, err)
	}
	if e.direct != nil {
		ss.OfferDirect(e.direct)
	}
	a := &attachment{conn: conn, streams: ss, accept: accept}
	d, err := conn.Subscribe(wire.DescribeSubject(e.name), "", e.describeNow)
	if err != nil {
		ss.Close()
		return fmt.Errorf("serve %s: %w", e.name, err)
	}
	c, err := conn.Subscribe(wire.CallWildcard(e.name), "", func(m *bus.Msg) { e.dispatchOn(a, m) })
	if err != nil {
		_ = d.Unsubscribe()
		ss.Close()
		return fmt.Errorf("serve %s: %w", e.name, err)
	}
	a.subs = []*bus.Subscription{d, c}
	if err := conn.Flush(ctx); err != nil {
		a.stop()
		ss.Close()
		return fmt.Errorf("serve %s: %w", e.name, err)
	}
	e.mu.Lock()
	if e.stopped {
		e.mu.Unlock()
		a.stop()
		ss.Close()
		return fmt.Errorf("serve %s: exporter stopped", e.name)
	}
	e.extra = append(e.extra, a)
	e.mu.Unlock()
	return nil
}

// LeaseOptions are the terms of a lease the exporter enforces itself.
type LeaseOptions struct {
	// Allow is the holder's driver/method allow list, as in api.Lease.Allow and `jsn admin
	// create client --allow`: "power.*" (every method of power and the drivers below it),
	// "serial.write" (one method), "*" (everything). Empty allows every call. NATS permissions
	// of the lease credential already enforce it; the exporter checks it again (defence in
	// depth) and refuses other calls with PERMISSION_DENIED naming the list.
	Allow []string
	// Holder is the identity of the client the lease is for (distributed mode; "" in a local
	// session). Drivers find it with driver.Holder in the context of the lease's calls.
	Holder string
	// Shared lists the clients the holder shared the lease with (api.Lease.SharedWith). A call
	// whose reply subject is in the inbox of one of them (bus.HolderInbox) is that client's:
	// driver.Holder and the audit log name it instead of the holder.
	Shared []string
	// SharedAllow is the allow list of each client in Shared (api.Lease.SharedAllow; nil: every
	// driver): that client's calls are checked against it instead of Allow. A client in Shared
	// without an entry is checked against Allow.
	SharedAllow map[string][]string
}

// BeginLease makes id the current lease: it ends the previous one, if any, and resets every driver
// so the session starts from a clean state.
func (e *Exporter) BeginLease(ctx context.Context, id string) error {
	return e.BeginLeaseWith(ctx, id, LeaseOptions{})
}

// BeginLeaseWith is BeginLease with terms the exporter enforces on the lease's calls.
func (e *Exporter) BeginLeaseWith(ctx context.Context, id string, o LeaseOptions) error {
	if id == "" {
		return errors.New("begin lease: empty lease id")
	}
	e.mu.Lock()
	prev := e.lease
	e.mu.Unlock()
	if prev != "" && prev != id {
		if err := e.EndLease(ctx, prev); err != nil {
			e.log.Warn("end previous lease", "lease", prev, "err", err)
		}
	}
	resetErr := e.tree.Reset(ctx)
	if resetErr != nil {
		e.log.Warn("reset drivers at lease start", "lease", id, "err", resetErr)
	}
	e.readPower() // a reset may switch power
	lctx, cancel := context.WithCancelCause(driver.WithHolder(context.Background(), o.Holder))
	e.mu.Lock()
	e.lease, e.leaseCtx, e.leaseCancel = id, lctx, cancel
	e.allow = append([]string(nil), o.Allow...)
	e.holder, e.shared, e.sharedAllow = o.Holder, append([]string(nil), o.Shared...), maps.Clone(o.SharedAllow)
	e.mu.Unlock()
	e.log.Info("lease started", "lease", id)
	return resetErr
}

// UpdateLease changes the terms of lease id, if it is the current one: a transfer changes its
// holder and allow list, a share or unshare the clients it is shared with.
// The streams of a client that no longer holds it (unshared, or the previous holder of a lease
// handed over) are reset: its credential is revoked, and what it opened ends with it.
func (e *Exporter) UpdateLease(id string, o LeaseOptions) {
	e.mu.Lock()
	if e.lease != id {
		e.mu.Unlock()
		return
	}
	var gone []string
	for _, who := range append([]string{e.holder}, e.shared...) {
		if who != "" && who != o.Holder && !slices.Contains(o.Shared, who) {
			gone = append(gone, who)
		}
	}
	e.allow = append([]string(nil), o.Allow...)
	e.holder, e.shared, e.sharedAllow = o.Holder, append([]string(nil), o.Shared...), maps.Clone(o.SharedAllow)
	streams := e.streams
	e.mu.Unlock()
	for _, who := range gone {
		if streams != nil {
			streams.ResetHolder(id, who, &wire.Error{Code: wire.PermissionDenied, Message: "lease " + id + " is no longer " + who + "'s"})
		}
	}
}

// caller returns the client call m of the current lease is made by, as its reply subject names
// it (bus.HolderInbox: only that client's credential may receive there): the holder or one the
// lease is shared with. A reply subject naming no one who holds the lease (no one can read the
// answer) counts as the holder's. "" in a local session.
func (e *Exporter) caller(m *bus.Msg, lease string) string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.callerLocked(m, lease)
}

func (e *Exporter) callerLocked(m *bus.Msg, lease string) string {
	if e.holder == "" || lease != e.lease {
		return e.holder
	}
	if e.seals != nil {
		// The seal proves the credential was minted for that client.
		if who := e.seals.Holder(m.Reply, e.name, lease); who != "" {
			return who
		}
		return e.holder
	}
	who := bus.InboxHolder(m.Reply, e.name, lease)
	if who != "" && (who == e.holder || slices.Contains(e.shared, who)) {
		return who
	}
	return e.holder
}

// EndLease ends lease id: calls in flight are cancelled, its streams are reset, and every driver
// is reset.
func (e *Exporter) EndLease(ctx context.Context, id string) error {
	e.mu.Lock()
	if e.lease != id {
		e.mu.Unlock()
		return wire.Errorf(wire.FailedPrecondition, "end lease %s: not the current lease", id)
	}
	cancel := e.leaseCancel
	e.lease, e.leaseCtx, e.leaseCancel, e.allow = "", nil, nil, nil
	e.holder, e.shared, e.sharedAllow = "", nil, nil
	e.mu.Unlock()
	ended := &wire.Error{Code: wire.PermissionDenied, Message: "lease " + id + " ended"}
	// Streams first, so their handlers see why they end; then calls in flight.
	if e.streams != nil {
		e.streams.ResetGroup(id, ended)
	}
	cancel(ended)
	err := e.tree.Reset(ctx)
	if err != nil {
		e.log.Warn("reset drivers at lease end", "lease", id, "err", err)
	}
	e.readPower()
	e.Forget(ctx)
	e.log.Info("lease ended", "lease", id)
	return err
}

// Forget makes every driver that records a session (driver.Forgetter) forget it: nothing of an
// ended lease is left for the next holder. EndLease calls it; distributed mode calls it again
// after the afterLease hook.
func (e *Exporter) Forget(ctx context.Context) {
	e.tree.Walk(func(n *driver.Node) {
		if f, ok := n.Driver.(driver.Forgetter); ok {
			if err := f.Forget(ctx); err != nil {
				e.log.Warn("forget the ended lease's session", "driver", n.Path, "err", err)
			}
		}
	})
}

// Lease returns the current lease id, "" if none.
func (e *Exporter) Lease() string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.lease
}

// dispatch runs each call in its own goroutine: a slow driver never holds up another.
func (e *Exporter) dispatch(m *bus.Msg) { e.dispatchOn(nil, m) }

// dispatchOn is dispatch for a call received on attachment a (nil: the main connection).
func (e *Exporter) dispatchOn(a *attachment, m *bus.Msg) {
	e.calls.Add(1)
	e.pool.run(func() {
		defer e.calls.Done()
		e.serveOn(a, m)
	})
}

// serveOn serves call m received on attachment a (nil: the main connection).
func (e *Exporter) serveOn(a *attachment, m *bus.Msg) {
	path, method, ok := wire.ParseCall(e.name, m.Subject)
	if !ok {
		_ = m.RespondError(wire.Errorf(wire.NotFound, "%s: not a call subject (want jsn.x.%s.call.<driver path>.<method>)", m.Subject, e.name))
		return
	}
	var ctx context.Context
	var callErr error // what the call ended with, for the audit log
	if e.audit {
		start := time.Now()
		defer func() { e.auditCall(ctx, m, path, method, start, callErr) }()
	}
	fail := func(err error) { callErr = err; _ = m.RespondError(err) }
	streams, group := e.streams, m.Header.Get(wire.HeaderLease)
	var err error
	if a == nil {
		ctx, err = e.checkLease(m, group, path, method)
	} else {
		streams, group = a.streams, "attached:"+group
		ctx, err = a.accept(m.Header.Get(wire.HeaderLease))
	}
	if err != nil {
		fail(err)
		return
	}
	node := e.tree.Find(path)
	if node == nil {
		fail(wire.Errorf(wire.NotFound, "no driver %q on exporter %s; drivers: %s", path, e.name, strings.Join(e.paths(), ", ")))
		return
	}
	if why := node.Unavailable(); why != "" {
		fail(wire.Errorf(wire.Unavailable, "driver %s is unavailable: %s", path, why))
		return
	}
	meth := node.Method(method)
	if meth == nil {
		names := node.MethodNames()
		list := "it has no methods"
		if len(names) > 0 {
			list = "methods: " + strings.Join(names, ", ")
		}
		fail(wire.Errorf(wire.NotFound, "driver %s has no method %q; %s", path, method, list))
		return
	}
	raw, err := wire.DecodeArgs(m.Data)
	if err != nil {
		fail(wire.Errorf(wire.InvalidArgument, "%s.%s: %v", path, method, err))
		return
	}
	args, err := meth.Convert(raw)
	if err != nil {
		fail(err)
		return
	}
	opens := bus.Opens(m)
	if meth.Kind == driver.KindCall {
		if opens {
			fail(wire.Errorf(wire.InvalidArgument, "%s.%s is a plain call; it does not open a stream", path, method))
			return
		}
		if meth.Raw != nil { // the driver takes and gives msgpack as it is on the wire
			body := m.Data
			if len(raw) == 0 {
				body = nil
			}
			res, err := e.invoke(ctx, path, method, func() (any, error) { return meth.Raw(ctx, body) })
			if err != nil {
				if cause := context.Cause(ctx); errors.Is(err, context.Canceled) && cause != nil {
					err = cause
				}
				_ = m.RespondError(err)
				return
			}
			b, _ := res.([]byte)
			_ = m.Respond(nil, b)
			return
		}
		res, err := e.invoke(ctx, path, method, func() (any, error) { return meth.Call(ctx, args) })
		if err != nil {
			if cause := context.Cause(ctx); errors.Is(err, context.Canceled) && cause != nil {
				err = cause // the lease ended under the call
			}
			fail(err)
			return
		}
		if p, ok := e.powerNode(node); ok {
			e.powerCalled(p, method, res)
		}
		var body []byte // nil result: empty body
		if res != nil {
			body, err = wire.Marshal(res)
		}
		if err != nil {
			fail(wire.Errorf(wire.Internal, "%s.%s: %v", path, method, err))
			return
		}
		_ = m.Respond(nil, body)
		return
	}
	if !opens {
		fail(wire.Errorf(wire.InvalidArgument, "%s.%s is a %s method; call it with the %s header to open a stream", path, method, meth.Kind, wire.HeaderStream))
		return
	}
	s, hdr, err := streams.Accept(m, group)
	if err != nil {
		fail(err)
		return
	}
	if err := m.Respond(hdr, nil); err != nil {
		s.Reset(err)
		return
	}
	// The stream's own context, carrying the lease's holder like every call of the lease.
	sctx, cancel := context.WithCancel(driver.WithHolder(s.Context(), driver.Holder(ctx)))
	stop := context.AfterFunc(ctx, cancel)
	defer func() { stop(); cancel() }()
	_, err = e.invoke(sctx, path, method, func() (any, error) {
		if meth.Kind == driver.KindServerStream {
			return nil, meth.Stream(sctx, args, func(item any) error {
				b, err := wire.Marshal(item)
				if err != nil {
					return err
				}
				_, err = s.Write(b)
				return err
			})
		}
		return nil, meth.Bytes(sctx, args, s)
	})
	if err != nil {
		if errors.Is(err, context.Canceled) {
			if cause := context.Cause(s.Context()); cause != nil {
				err = cause
			} else if cause := context.Cause(ctx); cause != nil {
				err = cause
			}
		}
		callErr = err
		s.Reset(err)
		return
	}
	_ = s.CloseWrite()
	_ = s.Close()
}

// invoke runs a driver method, turning a panic into an INTERNAL error so the exporter keeps
// serving.
func (e *Exporter) invoke(ctx context.Context, path, method string, fn func() (any, error)) (res any, err error) {
	defer func() {
		if r := recover(); r != nil {
			e.log.Error("driver panicked", "driver", path, "method", method, "panic", r, "stack", string(debug.Stack()))
			err = wire.Errorf(wire.Internal, "%s.%s: driver panicked: %v", path, method, r)
		}
	}()
	res, err = fn()
	if err != nil {
		e.log.Debug("call failed", "driver", path, "method", method, "err", err)
	}
	return res, err
}

// checkLease checks call m of path.method presenting lease got and returns the context it runs
// in: the lease's, naming the client that makes it (caller) for driver.Holder. A client the lease
// is shared with is held to its own allow list.
func (e *Exporter) checkLease(m *bus.Msg, got, path, method string) (context.Context, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	allow, who := e.allow, ""
	if got != "" && got == e.lease {
		who = e.callerLocked(m, got)
		if a, ok := e.sharedAllow[who]; ok && who != e.holder {
			allow = a
		}
	}
	switch {
	case e.lease == "":
		return nil, wire.Errorf(wire.PermissionDenied, "exporter %s has no active lease", e.name)
	case got == "":
		return nil, wire.Errorf(wire.PermissionDenied, "call carries no %s header; exporter %s is leased", wire.HeaderLease, e.name)
	case got != e.lease:
		return nil, wire.Errorf(wire.PermissionDenied, "lease %q is not the current lease of exporter %s", got, e.name)
	case !Allowed(allow, path, method):
		return nil, wire.Errorf(wire.PermissionDenied, "lease %s on exporter %s allows only %s; not %s.%s",
			got, e.name, strings.Join(allow, ", "), path, method)
	}
	if who != "" {
		return driver.WithHolder(e.leaseCtx, who), nil
	}
	return e.leaseCtx, nil
}

// Allowed reports whether allow (LeaseOptions.Allow) permits calling method of the driver at
// path. It matches as the lease credential's NATS permissions do: "p.*" permits every call
// subject below jsn.x.E.call.p, "p.m" exactly one, "*" all; an empty list permits everything.
func Allowed(allow []string, path, method string) bool {
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

func (e *Exporter) paths() []string {
	var out []string
	e.tree.Walk(func(n *driver.Node) { out = append(out, n.Path) })
	sort.Strings(out)
	return out
}
