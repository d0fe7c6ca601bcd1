package exporter

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"jsn.dev/jsn/bus"
	"jsn.dev/jsn/bus/wire"
	"jsn.dev/jsn/controller/api"
)

// Headers of the "lease ready" barrier: a describe request carrying Jsn-Lease waits until the
// exporter serves that lease (its beforeLease hook done). With Jsn-Hook-Replay: TOKEN the
// exporter first publishes the lease's beforeLease output on api.ReplaySubject(exporter, lease,
// TOKEN), which only that lease's credential may subscribe to, ending with a
// HookOutput{Hook: HookReplayEnd, Done: true}. A lease that has ended is not replayed.
// client.(*Exporter).WaitReady is the other side; the values must match.
const (
	HeaderHookReplay = "Jsn-Hook-Replay"
	HookReplayEnd    = "replay"
	// NotReady starts the message of the UNAVAILABLE error a waiting describe gets when the
	// lease is not served yet after ReadyWait: ask again.
	NotReady = "not ready yet"
)

// Remote mode tuning.
const (
	// ReadyWait bounds one waiting describe: an exporter may only answer a request within a
	// minute.
	ReadyWait = 30 * time.Second
	// unknownLeaseWait is how long a waiting describe waits for a lease the controller has not
	// told the exporter about yet.
	unknownLeaseWait = 10 * time.Second
	maxReplay        = 256 << 10 // beforeLease output kept for the replay
	maxEnded         = 256       // ended lease ids remembered
)

// Version is reported to the controller when an exporter registers.
var Version = "dev"

// remote is an exporter in distributed mode.
type remote struct {
	cfg     *Config
	ex      *Exporter
	log     *slog.Logger
	name    string
	conn    *bus.Conn // to the controller's bus
	hookURL string    // the private hook bus, JSN_HOST for hooks

	mu         sync.Mutex
	target     *api.Lease           // the lease the controller says to serve; guarded by mu
	targetRev  uint64               // the controller's lease bucket revision target is current at; guarded by mu
	pushSeq    uint64               // lease pushes received; guarded by mu
	resume     string               // lease to resume without beforeLease (learned at first register); guarded by mu
	registered bool                 // the first register succeeded; guarded by mu
	serving    *api.Lease           // the lease served now; guarded by mu
	starting   string               // the lease whose beforeLease hook runs; guarded by mu
	finishing  string               // the ended lease whose afterLease hook runs; guarded by mu
	ended      map[string]string    // lease id → why it ended here; guarded by mu
	endedOrder []string             // ended ids, oldest first; guarded by mu
	replay     []api.HookOutput     // beforeLease output of starting/serving; guarded by mu
	replayFor  string               // lease of replay; guarded by mu
	replaySize int                  // guarded by mu
	hookLease  string               // lease accepted on the hook bus, "" when no hook runs; guarded by mu
	hookCtx    context.Context      // cancelled when the hook ends; guarded by mu
	changed    chan struct{}        // closed and replaced at every state change; guarded by mu
	kick       chan struct{}        // wakes the follower
	poke       chan struct{}        // makes the control loop heartbeat now
	lastPoke   time.Time            // guarded by mu
	pending    map[string]time.Time // unknown leases asked about → first asked; guarded by mu

	jBin    string             // directory with the `j` command for hooks; "" if none
	stop    context.CancelFunc // ends the control and follow loops (onFailure: exit, exitOnLeaseEnd)
	exitMu  sync.Mutex         // guards exitErr
	exitErr error              // why the exporter stopped itself; nil for exitOnLeaseEnd
}

// exit stops the exporter after the current step: RunRemote returns err (nil for a clean stop).
func (r *remote) exit(err error) {
	r.exitMu.Lock()
	if r.exitErr == nil {
		r.exitErr = err
	}
	r.exitMu.Unlock()
	r.stop()
}

// RunRemote runs cfg's exporter in distributed mode until ctx ends: it opens the drivers,
// connects to cfg.Endpoint with cfg.Credentials (retrying, and reconnecting, forever), registers
// with the controller and heartbeats, and serves whatever lease the controller assigns, running
// the lease hooks around each one. Hooks reach the exporter through a private Unix-socket bus.
// When ctx ends the current lease's session is closed (the lease itself goes on: a restarted
// exporter resumes it), drivers are closed and RunRemote returns nil.
func RunRemote(ctx context.Context, cfg *Config, log *slog.Logger) (err error) {
	defer func() {
		if ctx.Err() != nil {
			err = nil // stopping while starting up is a clean stop
		}
	}()
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if cfg.Endpoint == "" {
		return fmt.Errorf("%s: endpoint: required to run an exporter against a controller", cfg.File)
	}
	if cfg.Credentials == "" {
		return fmt.Errorf("%s: credentials: required to run an exporter against a controller", cfg.File)
	}
	ex, err := New(cfg, log)
	if err != nil {
		return err
	}
	r := &remote{cfg: cfg, ex: ex, log: log.With("exporter", ex.Name()), name: ex.Name(),
		ended: map[string]string{}, changed: make(chan struct{}), kick: make(chan struct{}, 1), poke: make(chan struct{}, 1),
		pending: map[string]time.Time{}}
	ex.waitLease = r.waitLease
	defer func() {
		if cerr := ex.Close(); cerr != nil && err == nil {
			err = cerr
		}
	}()
	if err := ex.Open(ctx); err != nil {
		return err
	}

	dir, err := os.MkdirTemp("", "jsn-hooks-")
	if err != nil {
		return fmt.Errorf("hook bus: %w", err)
	}
	defer os.RemoveAll(dir)
	if jb, err := JCommand(dir); err == nil {
		r.jBin = jb
	} else {
		r.log.Info("no j command for hooks", "err", err)
	}
	srv, err := bus.StartServer(ctx, bus.ServerOptions{Dir: dir, Log: log})
	if err != nil {
		return fmt.Errorf("hook bus: %w", err)
	}
	defer srv.Shutdown()
	r.hookURL = srv.URL()
	hookConn, err := srv.Connect(ctx, "exporter-"+r.name)
	if err != nil {
		return fmt.Errorf("hook bus: %w", err)
	}
	defer hookConn.Close()

	if r.conn, err = r.dial(ctx); err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return err
	}
	defer r.conn.Close()
	direct, err := ListenDirect(cfg.DirectStreams, "")
	if err != nil {
		return err
	}
	if direct != nil {
		defer direct.Close() // after ex.Stop (deferred below)
		ex.OfferDirect(direct)
		r.log.Info("direct streams", "listen", direct.Address())
	}
	ex.GuardReplies()
	seals, err := bus.NewSealChecker([]byte(cfg.Credentials))
	if err != nil {
		return fmt.Errorf("%s: credentials: %w", cfg.File, err)
	}
	ex.CheckSeals(seals)
	ex.AuditCalls()
	if err := ex.Start(ctx, r.conn); err != nil {
		return err
	}
	defer ex.Stop(context.Background())
	if err := ex.Attach(ctx, hookConn, r.acceptHook); err != nil {
		return err
	}
	push, err := r.conn.Subscribe(api.LeasePushSubject(r.name), "", r.onPush)
	if err != nil {
		return err
	}
	defer func() { _ = push.Unsubscribe() }()

	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	r.stop = stop
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); r.control(runCtx) }()
	go func() { defer wg.Done(); r.follow(runCtx) }()
	wg.Wait()
	r.log.Info("stopping")
	r.exitMu.Lock()
	defer r.exitMu.Unlock()
	if r.exitErr != nil && ctx.Err() == nil {
		return r.exitErr
	}
	return nil
}

// dial connects to the controller's bus, retrying until ctx ends.
func (r *remote) dial(ctx context.Context) (*bus.Conn, error) {
	wait := 250 * time.Millisecond
	for {
		cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		var ca []byte
		if r.cfg.CA != "" {
			ca = []byte(r.cfg.CA)
		}
		// Lease pushes sent while the connection was down are lost: ask at once when it is back.
		c, err := bus.ConnectWith(cctx, r.cfg.Endpoint, bus.ConnectOptions{Name: r.name, Creds: []byte(r.cfg.Credentials), CA: ca,
			Reconnected: r.heartbeatNow})
		cancel()
		if err == nil {
			r.log.Info("connected", "endpoint", c.ConnectedURL())
			return c, nil
		}
		r.log.Warn("connect to controller", "endpoint", r.cfg.Endpoint, "err", err, "retry_in", wait)
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(wait):
		}
		wait = min(wait*2, 5*time.Second)
	}
}

// request calls the controller API.
func (r *remote) request(ctx context.Context, verb string, req, out any) error {
	b, err := wire.Marshal(req)
	if err != nil {
		return err
	}
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	m, err := r.conn.Request(cctx, api.ExporterSubject(r.name, verb), nil, b)
	if err != nil {
		return err
	}
	if out != nil && len(m.Data) > 0 {
		return wire.Unmarshal(m.Data, out)
	}
	return nil
}

// control registers and heartbeats until ctx ends.
func (r *remote) control(ctx context.Context) {
	every := 3 * time.Second
	registered := false
	wait := 250 * time.Millisecond
	for ctx.Err() == nil {
		if !registered {
			r.mu.Lock()
			seq := r.pushSeq
			r.mu.Unlock()
			var rep api.RegisterReply
			err := r.request(ctx, api.VerbRegister, api.RegisterRequest{Labels: r.cfg.Metadata.Labels, Describe: r.ex.Describe(),
				Version: Version, AfterLease: r.afterLeaseTimeout(), Busy: r.busy()}, &rep)
			if err != nil {
				if ctx.Err() != nil {
					return
				}
				r.log.Warn("register", "err", err, "retry_in", wait)
				sleep(ctx, wait)
				wait = min(wait*2, 5*time.Second)
				continue
			}
			wait = 250 * time.Millisecond
			registered = true
			if rep.Heartbeat > 0 {
				every = rep.Heartbeat
			}
			r.log.Info("registered", "heartbeat", every)
			r.mu.Lock()
			if !r.registered && rep.Lease != nil && rep.Lease.Status == api.StatusActive {
				r.resume = rep.Lease.ID // a lease from before a restart: resume it as it is
			}
			r.registered = true
			r.mu.Unlock()
			r.setTarget(rep.Lease, rep.Rev, seq, true)
		}
		t := time.NewTimer(every)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		case <-r.poke:
			t.Stop()
		}
		r.mu.Lock()
		seq := r.pushSeq
		cur := ""
		if r.serving != nil {
			cur = r.serving.ID
		}
		r.mu.Unlock()
		var rep api.HeartbeatReply
		if err := r.request(ctx, api.VerbHeartbeat, api.HeartbeatRequest{Lease: cur, Busy: r.busy()}, &rep); err != nil {
			if ctx.Err() != nil {
				return
			}
			if errors.Is(err, wire.ErrFailedPrecondition) {
				registered = false // the controller does not know us (any more)
			}
			r.log.Warn("heartbeat", "err", err)
			continue
		}
		r.setTarget(rep.Lease, rep.Rev, seq, true)
	}
}

// afterLeaseTimeout is the afterLease hook's timeout, 0 without one (api.RegisterRequest).
func (r *remote) afterLeaseTimeout() time.Duration {
	if h := r.cfg.LeaseHooks.AfterLease; h != nil {
		return h.Timeout
	}
	return 0
}

// busy is the lease the exporter is starting, serving or finishing, "" if none.
func (r *remote) busy() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	switch {
	case r.finishing != "":
		return r.finishing
	case r.serving != nil:
		return r.serving.ID
	}
	return r.starting
}

// done tells the controller the exporter has finished lease id (after its afterLease hook): it
// may be granted again. A lost message only delays that until the next heartbeat.
// hookFailed (if not "") says why its afterLease hook failed: the controller counts failures in a
// row and takes the exporter out of service after a few.
func (r *remote) done(ctx context.Context, id, hookFailed string) {
	if err := r.request(ctx, api.VerbLeaseDone, api.LeaseDoneRequest{Lease: id, HookFailed: hookFailed}, nil); err != nil && ctx.Err() == nil {
		r.log.Warn("tell the controller the lease is finished", "lease", id, "err", err)
	}
}

// heartbeatNow makes the control loop heartbeat at once (at most once a second): the exporter
// may have missed a lease push.
func (r *remote) heartbeatNow() {
	r.mu.Lock()
	if time.Since(r.lastPoke) < time.Second {
		r.mu.Unlock()
		return
	}
	r.lastPoke = time.Now()
	r.mu.Unlock()
	select {
	case r.poke <- struct{}{}:
	default:
	}
}

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

// onPush applies a lease pushed by the controller (an empty body: no lease).
func (r *remote) onPush(m *bus.Msg) {
	var l *api.Lease
	if len(m.Data) > 0 {
		l = new(api.Lease)
		if err := wire.Unmarshal(m.Data, l); err != nil {
			r.log.Warn("lease push", "err", err)
			return
		}
	}
	var rev uint64
	if h := m.Header.Get(api.HeaderLeaseRev); h != "" {
		var err error
		if rev, err = strconv.ParseUint(h, 10, 64); err != nil {
			r.log.Warn("lease push", "err", fmt.Errorf("header %s: %q is not a revision", api.HeaderLeaseRev, h))
			return
		}
	}
	r.mu.Lock()
	r.pushSeq++
	r.mu.Unlock()
	r.setTarget(l, rev, 0, false)
}

// setTarget records the lease the controller wants served, as of revision rev of its lease
// bucket. Controller replicas push and answer concurrently, so what arrives may be older than
// what the exporter has: it is ignored (serving a lease a stale "no lease" would end is how
// leases got lost). A reply without a revision (an older controller; ifSeq) is stale when a
// push arrived since its request was sent.
func (r *remote) setTarget(l *api.Lease, rev, seq uint64, ifSeq bool) {
	if l != nil && (l.Status != api.StatusActive || l.ID == "") {
		l = nil
	}
	id := ""
	if l != nil {
		id = l.ID
	}
	r.mu.Lock()
	if rev > 0 && rev < r.targetRev || rev == 0 && ifSeq && seq != r.pushSeq {
		have := r.targetRev
		r.mu.Unlock()
		r.log.Debug("lease news older than what the exporter has: ignored", "lease", id, "rev", rev, "have", have, "push", !ifSeq)
		return
	}
	r.targetRev = max(r.targetRev, rev)
	same := (r.target == nil) == (l == nil) && (l == nil || r.target.ID == l.ID)
	r.target = l
	update := same && l != nil && r.serving != nil && r.serving.ID == l.ID // shared, unshared or handed over
	if !same {
		r.changedLocked()
	}
	r.mu.Unlock()
	r.log.Debug("lease news", "lease", id, "rev", rev, "push", !ifSeq)
	if update {
		r.updateServing()
	}
	if !same {
		select {
		case r.kick <- struct{}{}:
		default:
		}
	}
}

// updateServing gives the exporter the terms of the lease it serves as the controller has them
// now (its holder, shares and allow lists), outside r.mu: it may reset streams.
func (r *remote) updateServing() {
	r.mu.Lock()
	t, s := r.target, r.serving
	r.mu.Unlock()
	if t != nil && s != nil && t.ID == s.ID {
		r.ex.UpdateLease(t.ID, leaseOptions(t))
	}
}

// leaseOptions are the terms of lease l the exporter enforces and audits by.
func leaseOptions(l *api.Lease) LeaseOptions {
	return LeaseOptions{Allow: l.Allow, Holder: l.Client, Shared: l.SharedWith, SharedAllow: l.SharedAllow}
}

func (r *remote) changedLocked() {
	close(r.changed)
	r.changed = make(chan struct{})
}

// follow makes the exporter serve the target lease, one transition at a time.
func (r *remote) follow(ctx context.Context) {
	for {
		for r.step(ctx) {
		}
		select {
		case <-ctx.Done():
			return
		case <-r.kick:
		}
	}
}

// step makes one transition towards the target and reports whether it did anything.
func (r *remote) step(ctx context.Context) bool {
	if ctx.Err() != nil {
		return false
	}
	r.mu.Lock()
	target, serving := r.target, r.serving
	r.mu.Unlock()
	if serving != nil && (target == nil || target.ID != serving.ID) {
		r.endServing(ctx, serving)
		return true
	}
	if target == nil || serving != nil {
		return false
	}
	r.mu.Lock()
	_, done := r.ended[target.ID]
	resume := r.resume == target.ID
	r.resume = ""
	r.mu.Unlock()
	if done {
		return false
	}
	r.start(ctx, target, resume)
	return true
}

// start runs the beforeLease hook of l (unless resuming it) and begins serving it.
func (r *remote) start(ctx context.Context, l *api.Lease, resume bool) {
	log := r.log.With("lease", l.ID, "client", l.Client)
	r.mu.Lock()
	r.starting = l.ID
	r.replay, r.replayFor, r.replaySize = nil, l.ID, 0
	r.changedLocked()
	r.mu.Unlock()
	if h := r.cfg.LeaseHooks.BeforeLease; h != nil && !resume {
		// Start the session from clean drivers, for the hook and then for the lease.
		if err := r.ex.Tree().Reset(ctx); err != nil {
			log.Warn("reset drivers before beforeLease hook", "err", err)
		}
		if err := r.runHook(ctx, HookBeforeLease, h, l); err != nil && ctx.Err() == nil && (h.OnFailure == OnFailureEndLease || h.OnFailure == OnFailureExit) {
			r.mu.Lock()
			r.starting = ""
			r.markEndedLocked(l.ID, err.Error())
			r.changedLocked()
			r.mu.Unlock()
			log.Warn("ending lease: beforeLease hook failed", "err", err)
			why := err.Error() + r.outputTail(l.ID)
			r.mu.Lock()
			r.replay, r.replaySize = nil, 0 // no replay for an ended lease
			r.mu.Unlock()
			if rerr := r.request(ctx, api.VerbLeaseEnded, api.LeaseEndedRequest{Lease: l.ID, Reason: why}, nil); rerr != nil {
				log.Warn("tell the controller the lease ended", "err", rerr)
			}
			r.done(ctx, l.ID, "")
			if h.OnFailure == OnFailureExit {
				log.Warn("exporter going offline: beforeLease hook failed with onFailure: exit")
				r.exit(fmt.Errorf("beforeLease hook failed (onFailure: exit): %w", err))
			}
			return
		}
	}
	if ctx.Err() != nil {
		return
	}
	if resume {
		log.Info("resuming lease after restart")
	}
	r.mu.Lock()
	if r.target != nil && r.target.ID == l.ID {
		l = r.target // shared or handed over while its beforeLease hook ran
	}
	r.mu.Unlock()
	if err := r.ex.BeginLeaseWith(ctx, l.ID, leaseOptions(l)); err != nil {
		log.Warn("begin lease", "err", err)
	}
	r.mu.Lock()
	update := r.target != nil && r.target.ID == l.ID && r.target != l
	r.starting = ""
	r.serving = l
	r.changedLocked()
	r.mu.Unlock()
	if update {
		r.updateServing() // changed while it began
	}
}

// endServing ends the lease served now: closes its session, runs afterLease, resets drivers,
// and tells the controller it may grant the exporter again.
func (r *remote) endServing(ctx context.Context, l *api.Lease) {
	_ = r.ex.EndLease(ctx, l.ID)
	r.mu.Lock()
	r.serving = nil
	r.finishing = l.ID
	r.markEndedLocked(l.ID, "ended")
	if r.replayFor == l.ID {
		r.replay, r.replaySize = nil, 0 // no replay for an ended lease
	}
	r.changedLocked()
	r.mu.Unlock()
	hookFailed := ""
	var exitErr error
	if r.cfg.ExitOnLeaseEnd {
		exitErr = errExitOnLeaseEnd
	}
	if h := r.cfg.LeaseHooks.AfterLease; h != nil {
		err := r.runHook(ctx, HookAfterLease, h, l)
		if err != nil && ctx.Err() == nil {
			hookFailed = err.Error()
		}
		if err != nil && ctx.Err() == nil && h.OnFailure == OnFailureExit {
			exitErr = fmt.Errorf("afterLease hook failed (onFailure: exit): %w", err)
		}
		if err == nil || ctx.Err() == nil {
			if err := r.ex.Tree().Reset(ctx); err != nil {
				r.log.Warn("reset drivers after afterLease hook", "lease", l.ID, "err", err)
			}
			r.ex.Forget(ctx) // what the hook made the devices say belongs to the ended lease
		}
	}
	r.mu.Lock()
	r.finishing = ""
	r.mu.Unlock()
	if ctx.Err() == nil {
		r.done(ctx, l.ID, hookFailed)
		if exitErr != nil {
			r.log.Info("exporter stopping after the lease", "lease", l.ID, "why", exitErr)
			if exitErr == errExitOnLeaseEnd {
				exitErr = nil
			}
			r.exit(exitErr)
		}
	}
}

// errExitOnLeaseEnd is why an exporter with exitOnLeaseEnd stops: a clean stop.
var errExitOnLeaseEnd = errors.New("exitOnLeaseEnd: the lease ended")

// outputTail returns the last lines of lease id's beforeLease output, as " (output: …)", or "":
// the reason a failed hook ended the lease carries them, for a holder that could not connect
// before its credential was revoked.
func (r *remote) outputTail(id string) string {
	const maxTail = 1 << 10
	r.mu.Lock()
	var b []byte
	if r.replayFor == id {
		for _, o := range r.replay {
			b = append(b, o.Data...)
		}
	}
	r.mu.Unlock()
	s := strings.TrimSpace(string(b))
	if len(s) > maxTail {
		s = "…" + s[len(s)-maxTail:]
	}
	if s == "" {
		return ""
	}
	return " (output: " + strings.ReplaceAll(s, "\n", " | ") + ")"
}

func (r *remote) markEndedLocked(id, why string) {
	if _, ok := r.ended[id]; ok {
		return
	}
	r.ended[id] = why
	r.endedOrder = append(r.endedOrder, id)
	if len(r.endedOrder) > maxEnded {
		delete(r.ended, r.endedOrder[0])
		r.endedOrder = r.endedOrder[1:]
	}
}

// runHook runs hook name for lease l with the hook bus open to it.
func (r *remote) runHook(ctx context.Context, name string, h *Hook, l *api.Lease) error {
	hctx, cancel := context.WithCancel(ctx)
	defer cancel()
	r.mu.Lock()
	r.hookLease, r.hookCtx = l.ID, hctx
	r.mu.Unlock()
	defer func() {
		r.mu.Lock()
		r.hookLease, r.hookCtx = "", nil
		r.mu.Unlock()
	}()
	run := &hookRun{name: name, hook: h, lease: l, log: r.log, dir: r.cfg.Dir,
		env: hookEnv([]string{
			"JSN_HOST=" + r.hookURL,
			"JSN_EXPORTER=" + r.name,
			"JSN_LEASE=" + l.ID,
			"JSN_CLIENT=" + l.Client,
			"JSN_HOOK=" + name,
		}, r.jBin),
		out: func(o api.HookOutput) {
			if b, err := wire.Marshal(o); err == nil {
				_ = r.conn.Publish(api.HookSubject(r.name, l.ID), nil, b)
			}
			if name == HookBeforeLease {
				r.mu.Lock()
				if r.replayFor == l.ID && r.replaySize+len(o.Data) <= maxReplay {
					r.replay = append(r.replay, o)
					r.replaySize += len(o.Data)
				}
				r.mu.Unlock()
			}
		}}
	return run.run(hctx)
}

// acceptHook admits calls on the hook bus: only the lease of the hook running now.
func (r *remote) acceptHook(lease string) (context.Context, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.hookLease == "" || lease != r.hookLease {
		return nil, wire.Errorf(wire.PermissionDenied, "exporter %s: the hook bus accepts only the lease of the hook running now", r.name)
	}
	return r.hookCtx, nil
}

// waitLease is the "lease ready" barrier of describe requests carrying Jsn-Lease.
func (r *remote) waitLease(m *bus.Msg) error {
	id := m.Header.Get(wire.HeaderLease)
	token := m.Header.Get(HeaderHookReplay)
	if token != "" && !wire.ValidName(token) {
		return wire.Errorf(wire.InvalidArgument, "%s %q is not a subject token", HeaderHookReplay, token)
	}
	deadline := time.NewTimer(ReadyWait)
	defer deadline.Stop()
	for {
		r.mu.Lock()
		ch := r.changed
		served := r.serving != nil && r.serving.ID == id
		why, ended := r.ended[id]
		known := served || ended || r.starting == id || r.target != nil && r.target.ID == id
		var first time.Time
		if !known {
			if first = r.pending[id]; first.IsZero() {
				first = time.Now()
				if len(r.pending) > 1024 {
					clear(r.pending)
				}
				r.pending[id] = first
			}
		} else {
			delete(r.pending, id)
		}
		var replay []api.HookOutput
		if served && r.replayFor == id {
			replay = append(replay, r.replay...)
		}
		r.mu.Unlock()
		if !known {
			// A holder knows a lease this exporter has not heard of: its push may have been
			// lost; ask the controller now rather than at the next heartbeat.
			r.heartbeatNow()
		}
		switch {
		case served:
			r.sendReplay(token, id, replay)
			return nil
		case ended:
			return wire.Errorf(wire.PermissionDenied, "lease %s ended on exporter %s: %s", id, r.name, why)
		case !known && time.Since(first) > unknownLeaseWait:
			return wire.Errorf(wire.PermissionDenied, "lease %q is not a lease of exporter %s", id, r.name)
		}
		select {
		case <-ch:
		case <-deadline.C:
			return wire.Errorf(wire.Unavailable, "%s: lease %s is starting on exporter %s (beforeLease hook running)", NotReady, id, r.name)
		case <-time.After(250 * time.Millisecond):
		}
	}
}

func (r *remote) sendReplay(token, id string, replay []api.HookOutput) {
	if token == "" {
		return
	}
	subject := api.ReplaySubject(r.name, id, token)
	for _, o := range append(replay, api.HookOutput{Lease: id, Hook: HookReplayEnd, Done: true}) {
		if b, err := wire.Marshal(o); err == nil {
			_ = r.conn.Publish(subject, nil, b)
		}
	}
}
