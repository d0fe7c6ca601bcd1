package controller

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"jsn.dev/jsn/bus"
	"jsn.dev/jsn/bus/wire"
	"jsn.dev/jsn/controller/api"
)

// Bucket names.
const (
	BucketExporters  = "jsn-exporters"
	BucketLeases     = "jsn-leases"
	BucketQueue      = "jsn-queue"
	BucketIdentities = "jsn-identities"
	BucketLeader     = "jsn-leader"
	// BucketWeb holds dashboard login tokens and the keys of browser credentials, so that any
	// replica can exchange a token another issued and revoke what another minted.
	BucketWeb = "jsn-web"
)

// Options configure a controller.
type Options struct {
	Data   string // data directory written by Init
	Listen string // embedded server's client address (default "127.0.0.1:4222")
	HTTP   string // /healthz and /metrics address; "" = none
	// HTTPTLS serves HTTP over TLS (https://) with the NATS listener's certificate (the data
	// directory's CA, or TLSCert/TLSKey): the dashboard's login exchange then carries the
	// browser credential encrypted without a reverse proxy.
	HTTPTLS bool
	NatsURL string // external NATS instead of the embedded server
	// CredsFile is no longer used: the controller mints its own users (with the least rights
	// each part needs) from the signing key at every start. Kept so that old callers compile.
	CredsFile   string
	Endpoint    string        // URL written into issued configs (default the server's URL)
	MaxDuration time.Duration // longest lease (default 24h)
	MaxQueued   int           // most queued requests per client (default 16)
	// NATS limits. MaxConnections bounds the connections of the whole LAB account (default
	// 10000); MaxSubscriptions the subscriptions of one connection of every identity and lease
	// credential issued (default DefaultMaxSubscriptions); MaxPending the bytes the embedded
	// server buffers for a connection that does not read before dropping it (default 64 MiB).
	MaxConnections   int
	MaxSubscriptions int64
	MaxPending       int64
	// MaxConnsPerCredential bounds the connections of one credential (an identity or a lease
	// credential), which NATS does not: the controller closes the newest beyond it (default 256).
	MaxConnsPerCredential int
	Replicas              int // KV bucket replicas on an external cluster (default 1; needs NatsURL when > 1)
	// TLS of the embedded server's listener. By default the controller signs its own server
	// certificate with the data directory's CA (made on first use) for the names it is reached by
	// (Listen, Endpoint, the init endpoint, the host name, loopback, TLSHosts); issued configs
	// carry that CA. TLSCert and TLSKey give a certificate instead, and TLSCA the CA configs
	// carry then ("" for none: clients use their system's roots). With NatsURL, TLSCA is what the
	// NATS servers' certificates chain to (for the controller's own connections too).
	TLSCert, TLSKey, TLSCA string
	TLSHosts               []string // further names for the controller's own certificate
	NoTLS                  bool     // a plain listener: credentials cross the network in clear
	Log                    *slog.Logger
	Audit                  AuditOptions // the audit log (audit.go)

	// The browser path (controller/web.go). WebSocket is the embedded server's NATS WebSocket
	// address ("" none): wss:// with the listener's TLS, or with WebSocketNoTLS (or NoTLS) plain
	// ws://, allowed only on loopback (behind a TLS-terminating reverse proxy). WebSocketURL is
	// the URL browsers use (default the listener's). Dashboard, when set, is the page the HTTP
	// listener serves at / (client/web's files), DashboardURL its public URL (default
	// http://<HTTP>/), BrowserTTL the life of a browser credential (DefaultBrowserTTL).
	WebSocket      string
	WebSocketNoTLS bool
	WebSocketURL   string
	Dashboard      fs.FS
	DashboardURL   string
	BrowserTTL     time.Duration

	// Tuning, mainly for tests: zero means the documented default.
	Reconcile    time.Duration // scheduler period (1s)
	Heartbeat    time.Duration // exporter heartbeat period (3s)
	OfflineAfter time.Duration // offline after this long without a heartbeat (10s)
	// KeepaliveWindow is how long a keepalive lease lives after its holder's last renewal (5s);
	// holders renew every third of it.
	KeepaliveWindow time.Duration
	// HookFailures is how many afterLease hook failures in a row put an exporter in
	// maintenance (3; negative: never).
	HookFailures int
}

// Controller is a running controller replica.
type Controller struct {
	o      Options
	log    *slog.Logger
	auth   *Authority
	srv    *bus.Server // nil with NatsURL
	lock   *os.File    // DATA/controller.lock, held with the embedded server
	conn   *bus.Conn   // API user in LAB: serves jsn.ctl.>, publishes replies and lease pushes
	state  *bus.Conn   // state user in LAB: the KV buckets, nothing else
	sys    *bus.Conn   // system user: pushes account updates
	svc    *bus.Service
	httpS  *http.Server
	httpT  *tls.Config // the HTTP listener's TLS (Options.HTTPTLS)
	id     string      // replica id (leader election)
	cancel context.CancelFunc
	wg     sync.WaitGroup

	exporters, leases, queue, identities, leader *bus.KV
	web                                          *bus.KV // BucketWeb

	fileMu sync.Mutex // serialises writes of DATA/lab.jwt

	revMu      sync.Mutex
	revKeys    map[string]time.Time // revocations waiting for the next batch
	revDone    []chan error         // revokeWait callers of the next batch
	revStopped bool
	revWake    chan struct{}
	revokes    atomic.Int64                   // batches applied
	served     atomic.Int64                   // API requests this replica answered
	reqs       chan struct{}                  // one token per API request being served (bounds them)
	reqWG      sync.WaitGroup                 // API requests being served
	closeMu    sync.Mutex                     // guards closing
	closing    bool                           // Close began: no new API request is counted in reqWG
	connSub    *bus.Subscription              // LAB's connect and disconnect events
	connMu     sync.Mutex                     // guards conns, kicked, kickLogAt
	conns      map[string]map[connID]struct{} // user public key → its connections
	kicked     int
	kickLogAt  time.Time
	refusedMu  sync.Mutex
	refusedAt  time.Time // last log line about dropped requests; guarded by refusedMu
	refusedN   int       // dropped since then; guarded by refusedMu
	acctMu     sync.Mutex
	acct       *accountCache // guarded by acctMu
	acctWarned time.Time     // last warning about the account's size; guarded by acctMu

	mu        sync.Mutex
	exps      map[string]*exporterRecord // by exporter name
	names     []string                   // keys of exps, sorted; nil when it needs rebuilding
	active    map[string]*leaseEntry     // by exporter name
	pending   map[string]*leaseEntry     // queued and ended requests by lease id
	ids       map[string]*api.Identity   // by kind.name
	maint     map[string]*maintRecord    // by exporter name (identities bucket, key maint.<name>)
	policies  map[string]*api.Policy     // by name (identities bucket, key policy.<name>)
	revs      map[string]uint64          // last revision seen per bucket/key
	seen      [2]uint64                  // revisions of jsn-leases and jsn-queue the watches delivered
	wrote     [2]uint64                  // newest revisions of jsn-leases and jsn-queue this replica wrote
	seenCh    chan struct{}              // closed and replaced when seen moves
	expired   []*leaseRecord             // leases gone by their TTL, for the scheduler to close
	isLeader  bool
	leafSeen  time.Time      // a leaf node linked to the cluster (the account is pushed again)
	leafLinks map[string]int // LAB leaf node links per server id, as the servers announce them
	kick      chan struct{}
	endpoint  string
	ca        []byte // PEM of the CA issued configs carry; nil for none

	lastRevive, lastRepush time.Time // the scheduler's upkeep (maintain); only its goroutine

	dashMu   sync.Mutex
	dashSeq  uint64 // guarded by dashMu
	httpAddr string // the HTTP listener's address

	// groupRounds counts the scheduling rounds that checked groups (group.go; tests wait on it).
	groupRounds atomic.Uint64
	groupMu     sync.Mutex // one group grant at a time on this replica (group.go)
}

// exporterRecord is the value of jsn-exporters.
type exporterRecord struct {
	Name       string            `msgpack:"name"`
	Labels     map[string]string `msgpack:"labels"`   // the admin's: what selectors match
	Reported   map[string]string `msgpack:"reported"` // the exporter's own, checked, for display only
	Describe   *wire.Description `msgpack:"describe"`
	Version    string            `msgpack:"version"`
	Registered time.Time         `msgpack:"registered"`
	LastSeen   time.Time         `msgpack:"last_seen"`
	// AfterLease is the exporter's afterLease hook timeout (0: none): how long an ended lease may
	// keep it from being granted again while it finishes (see leaseRecord.Finishing).
	AfterLease time.Duration `msgpack:"after_lease,omitempty"`
}

// leaseRecord is the value of jsn-leases (active) and jsn-queue (queued or ended).
type leaseRecord struct {
	Lease api.Lease `msgpack:"lease"`
	// Finishing marks, in jsn-leases, a lease that has ended while its exporter finishes it
	// (runs its afterLease hook): the key stays, so the exporter is not granted again, until the
	// exporter says it is done (lease.done, or a heartbeat no longer busy with it) or the key's
	// TTL (the hook's timeout plus finishMargin) runs out. It is not a lease any more.
	Finishing  bool                 `msgpack:"finishing,omitempty"`
	Credential *api.Credential      `msgpack:"credential,omitempty"` // current one (the KV is readable only by the controller)
	Keys       map[string]time.Time `msgpack:"keys,omitempty"`       // every credential key of the lease → its expiry
	// Shares are the credentials of the clients the lease is shared with, by client name.
	Shares map[string]*shareCred `msgpack:"shares,omitempty"`
	// Web maps the keys of browser credentials that may type into the lease's consoles (they
	// are in Keys too) to the client that logged in (unsharing revokes that client's).
	Web map[string]string `msgpack:"web,omitempty"`
	// Parts, on a multi-exporter lease's record in jsn-queue (key = the group id), are what it
	// asks for, one entry per part (group.go). Siblings, on that record once granted and on
	// every part's record in jsn-leases, are its parts: exporter and lease id of each.
	Parts    []api.LeasePart `msgpack:"parts,omitempty"`
	Siblings []groupPart     `msgpack:"siblings,omitempty"`
	// Renewed is, in jsn-queue, when the holder of a queued keepalive request last renewed it
	// (lease.keepalive): a request nobody renews for a keepalive window is dropped (keepalive.go).
	Renewed time.Time `msgpack:"renewed,omitempty"`
}

// shareCred is the credential of a client a lease is shared with.
type shareCred struct {
	Credential *api.Credential `msgpack:"credential"`
	Pub        string          `msgpack:"pub"`
	Allow      []string        `msgpack:"allow,omitempty"` // the client's allow list its credential has
}

type leaseEntry struct {
	rec *leaseRecord
	rev uint64
}

// live reports whether the entry is an active lease (not an ended one being finished).
func (le *leaseEntry) live() bool { return le != nil && !le.rec.Finishing }

// accountRecord is the live LAB account.
type accountRecord struct {
	JWT     string               `msgpack:"jwt"`
	Revoked map[string]time.Time `msgpack:"revoked"` // revoked key → expiry of its JWT (zero: none)
}

func (o *Options) defaults() {
	if o.Listen == "" {
		o.Listen = "127.0.0.1:4222"
	}
	if o.MaxDuration == 0 {
		o.MaxDuration = 24 * time.Hour
	}
	if o.BrowserTTL == 0 {
		o.BrowserTTL = DefaultBrowserTTL
	}
	if o.MaxQueued == 0 {
		o.MaxQueued = 16
	}
	if o.MaxConnections == 0 {
		o.MaxConnections = 10000
	}
	if o.MaxSubscriptions == 0 {
		o.MaxSubscriptions = DefaultMaxSubscriptions
	}
	if o.MaxPending == 0 {
		o.MaxPending = 64 << 20
	}
	if o.MaxConnsPerCredential == 0 {
		o.MaxConnsPerCredential = 256
	}
	if o.Reconcile == 0 {
		o.Reconcile = time.Second
	}
	if o.Heartbeat == 0 {
		o.Heartbeat = 3 * time.Second
	}
	if o.OfflineAfter == 0 {
		o.OfflineAfter = 10 * time.Second
	}
	if o.Replicas == 0 {
		o.Replicas = 1
	}
	if o.KeepaliveWindow == 0 {
		o.KeepaliveWindow = 5 * time.Second
	}
	if o.HookFailures == 0 {
		o.HookFailures = 3
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
}

// Run runs a controller until ctx ends.
func Run(ctx context.Context, o Options) error {
	c, err := Start(ctx, o)
	if err != nil {
		return err
	}
	<-ctx.Done()
	c.Close()
	return nil
}

// Start starts a controller replica: the embedded server (unless o.NatsURL), buckets, the API
// service, the scheduler and the HTTP endpoint. Close stops it.
func Start(ctx context.Context, o Options) (_ *Controller, err error) {
	o.defaults()
	if o.Replicas < 1 || o.Replicas > 5 {
		return nil, fmt.Errorf("controller: %d bucket replicas: want 1 to 5", o.Replicas)
	}
	if o.Replicas > 1 && o.NatsURL == "" {
		return nil, fmt.Errorf("controller: %d bucket replicas need a NATS cluster (--nats-url); the embedded server is one node", o.Replicas)
	}
	auth, err := LoadAuthority(o.Data)
	if err != nil {
		return nil, err
	}
	auth.MaxSubs = o.MaxSubscriptions
	c := &Controller{o: o, log: o.Log, auth: auth, id: randomID(),
		exps: map[string]*exporterRecord{}, active: map[string]*leaseEntry{}, pending: map[string]*leaseEntry{},
		ids: map[string]*api.Identity{}, maint: map[string]*maintRecord{}, policies: map[string]*api.Policy{}, revs: map[string]uint64{}, seenCh: make(chan struct{}), leafLinks: map[string]int{}, kick: make(chan struct{}, 1), reqs: make(chan struct{}, maxRequests),
		conns:   map[string]map[connID]struct{}{},
		revKeys: map[string]time.Time{}, revWake: make(chan struct{}, 1),
	}
	if err := checkWebSocket(&o); err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			c.Close()
		}
	}()
	sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	// How long each step of the start took, for the log: an operator restarting a controller
	// wants the API back in a moment, and this says where the time went.
	began := time.Now()
	var steps []any
	step := func(name string) {
		steps = append(steps, name, time.Since(began).Round(time.Millisecond))
	}
	apiCreds, stateCreds, err := auth.controllerUsers()
	if err != nil {
		return nil, fmt.Errorf("controller: %w", err)
	}
	dial := func(o bus.ConnectOptions) (*bus.Conn, error) {
		if c.srv != nil {
			return c.srv.ConnectWith(sctx, o)
		}
		o.CA = c.ca
		return bus.ConnectWith(sctx, c.o.NatsURL, o)
	}
	if o.NatsURL == "" {
		// One embedded server per data directory: two would share (and corrupt) the store.
		if c.lock, err = lockDir(o.Data); err != nil {
			return nil, err
		}
		var tlsCfg *tls.Config
		if !o.NoTLS {
			if tlsCfg, c.ca, err = listenerTLS(&o); err != nil {
				return nil, fmt.Errorf("controller: %w", err)
			}
		}
		c.httpT = tlsCfg
		c.srv, err = bus.StartServer(sctx, bus.ServerOptions{
			TCP: o.Listen, Log: o.Log, Operator: auth.OperatorJWT, SystemAccount: auth.SysPub,
			Accounts:     map[string]string{auth.SysPub: auth.SysJWT, auth.LabPub: auth.LabJWT},
			JetStreamDir: filepath.Join(o.Data, dirJetStream), TLS: tlsCfg,
			MaxPending: o.MaxPending, MaxConnections: o.MaxConnections + 100, // + the controller's own, tools
			WebSocket: o.WebSocket, WebSocketTLS: wsTLS(tlsCfg, o.WebSocketNoTLS),
		})
		if err != nil {
			return nil, fmt.Errorf("controller: %w", err)
		}
		c.endpoint = c.srv.TCPURL()
	} else {
		if o.TLSCA != "" {
			if c.ca, err = os.ReadFile(o.TLSCA); err != nil {
				return nil, fmt.Errorf("controller: tls: %w", err)
			}
		}
		if o.CredsFile != "" {
			c.log.Warn("--creds is no longer used: the controller mints its own users from the signing key", "creds", o.CredsFile)
		}
		c.endpoint = o.NatsURL
	}
	if c.conn, err = dial(bus.ConnectOptions{Name: ControllerName, Creds: apiCreds}); err != nil {
		return nil, fmt.Errorf("controller: %w", err)
	}
	if c.state, err = dial(bus.ConnectOptions{Name: stateName, Creds: stateCreds}); err != nil {
		return nil, fmt.Errorf("controller: %w", err)
	}
	if c.sys, err = dial(bus.ConnectOptions{Name: "jsn-sys", Creds: auth.SysCreds}); err != nil {
		return nil, fmt.Errorf("controller: %w", err)
	}
	if o.Endpoint != "" {
		c.endpoint = o.Endpoint
	}
	step("connected")
	if err := c.trackConnections(); err != nil {
		return nil, err
	}
	if err := c.sys.Flush(sctx); err != nil {
		return nil, fmt.Errorf("controller: %w", err)
	}
	if err := c.openBuckets(sctx); err != nil {
		return nil, err
	}
	step("buckets")
	lctx, lcancel := context.WithCancel(context.Background())
	c.cancel = lcancel
	if err := c.syncCaches(lctx); err != nil {
		return nil, err
	}
	step("caches")
	if err := c.bootstrap(sctx); err != nil {
		return nil, err
	}
	step("account")
	// Leaf nodes linking (again) missed the account updates pushed meanwhile. Servers announce
	// every change of an account's connections, leaf node links included.
	if _, err := c.sys.Subscribe("$SYS.ACCOUNT."+c.auth.LabPub+".SERVER.CONNS", "", func(m *bus.Msg) {
		c.mu.Lock()
		if leafLinked(c.leafLinks, m.Data) {
			c.leafSeen = time.Now()
			c.kickScheduler()
		}
		c.mu.Unlock()
	}); err != nil {
		return nil, fmt.Errorf("controller: %w", err)
	}
	if err := c.serveAPI(); err != nil {
		return nil, err
	}
	// The API's subscriptions must reach the server before Start returns: a client that
	// connects right after would otherwise be told that nobody serves it.
	if err := c.conn.Flush(sctx); err != nil {
		return nil, fmt.Errorf("controller: %w", err)
	}
	if o.HTTP != "" {
		if err := c.serveHTTP(); err != nil {
			return nil, err
		}
	}
	if err := c.startDash(lctx); err != nil {
		return nil, err
	}
	c.wg.Add(2)
	go c.scheduler(lctx)
	go c.revoker(lctx)
	step("api")
	c.log.Info("controller running", append([]any{"endpoint", c.endpoint, "replica", c.id}, steps...)...)
	return c, nil
}

// URL is the endpoint written into issued configs.
func (c *Controller) URL() string { return c.endpoint }

// CA is the PEM of the certificate authority the controller's TLS certificate chains to, as its
// issued configs carry it; nil if they carry none.
func (c *Controller) CA() []byte { return c.ca }

// Server is the embedded server, nil with an external NATS.
func (c *Controller) Server() *bus.Server { return c.srv }

// Close stops the replica (and its embedded server).
func (c *Controller) Close() {
	if c.svc != nil {
		_ = c.svc.Stop()
	}
	c.closeMu.Lock()
	c.closing = true
	c.closeMu.Unlock()
	c.reqWG.Wait()
	if c.httpS != nil {
		_ = c.httpS.Close() // before Wait: its Serve goroutine is in wg
	}
	if c.cancel != nil {
		c.cancel()
	}
	c.wg.Wait()
	if c.conn != nil {
		c.conn.Close()
	}
	if c.state != nil {
		c.state.Close()
	}
	if c.sys != nil {
		c.sys.Close()
	}
	if c.srv != nil {
		c.srv.Shutdown()
	}
	if c.lock != nil {
		_ = c.lock.Close()
	}
}

func (c *Controller) openBuckets(ctx context.Context) error {
	var err error
	r := c.o.Replicas
	if c.exporters, err = c.state.KeyValue(ctx, bus.KVConfig{Bucket: BucketExporters, Replicas: r, Log: c.log}); err != nil {
		return fmt.Errorf("controller: %w", err)
	}
	if c.leases, err = c.state.KeyValue(ctx, bus.KVConfig{Bucket: BucketLeases, Replicas: r, LimitMarkerTTL: time.Minute, Log: c.log}); err != nil {
		return fmt.Errorf("controller: %w", err)
	}
	if c.queue, err = c.state.KeyValue(ctx, bus.KVConfig{Bucket: BucketQueue, Replicas: r, LimitMarkerTTL: time.Minute, Log: c.log}); err != nil {
		return fmt.Errorf("controller: %w", err)
	}
	if c.identities, err = c.state.KeyValue(ctx, bus.KVConfig{Bucket: BucketIdentities, Replicas: r, Log: c.log}); err != nil {
		return fmt.Errorf("controller: %w", err)
	}
	if c.leader, err = c.state.KeyValue(ctx, bus.KVConfig{Bucket: BucketLeader, Replicas: r, LimitMarkerTTL: time.Minute, Log: c.log}); err != nil {
		return fmt.Errorf("controller: %w", err)
	}
	if c.web, err = c.state.KeyValue(ctx, bus.KVConfig{Bucket: BucketWeb, Replicas: r, LimitMarkerTTL: time.Minute, Log: c.log}); err != nil {
		return fmt.Errorf("controller: %w", err)
	}
	return c.openAudit(ctx)
}

// setExp caches rec; c.mu must be held.
func (c *Controller) setExp(rec *exporterRecord) {
	if _, ok := c.exps[rec.Name]; !ok {
		c.names = nil
	}
	c.exps[rec.Name] = rec
}

// delExp drops exporter name from the cache; c.mu must be held.
func (c *Controller) delExp(name string) {
	if _, ok := c.exps[name]; ok {
		c.names = nil
	}
	delete(c.exps, name)
}

// sortedNames returns the cached exporter names in order; c.mu must be held.
func (c *Controller) sortedNames() []string {
	if c.names == nil {
		c.names = make([]string, 0, len(c.exps))
		for n := range c.exps {
			c.names = append(c.names, n)
		}
		sort.Strings(c.names)
	}
	return c.names
}

// fresh reports whether rev is newer than what the cache holds for key, and records it.
// c.mu must be held.
func (c *Controller) fresh(key string, rev uint64) bool {
	if b := bucketOf(key); b >= 0 {
		c.wrote[b] = max(c.wrote[b], rev)
	}
	if rev <= c.revs[key] {
		return false
	}
	c.revs[key] = rev
	return true
}

func (c *Controller) syncCaches(ctx context.Context) error {
	err := c.exporters.Sync(ctx, ">", func(e *bus.KVEntry) {
		c.mu.Lock()
		defer c.mu.Unlock()
		if !c.fresh("e/"+e.Key, e.Revision) {
			return
		}
		if e.Deleted {
			c.delExp(e.Key)
			return
		}
		var r exporterRecord
		if wire.Unmarshal(e.Value, &r) == nil {
			c.setExp(&r)
		}
	})
	if err != nil {
		return fmt.Errorf("controller: %w", err)
	}
	err = c.leases.Sync(ctx, ">", func(e *bus.KVEntry) {
		c.mu.Lock()
		defer c.mu.Unlock()
		c.see(syncLeases, e.Revision)
		if !c.fresh("l/"+e.Key, e.Revision) {
			return
		}
		old := c.active[e.Key]
		var l *api.Lease
		if e.Deleted {
			delete(c.active, e.Key)
		} else {
			var r leaseRecord
			if wire.Unmarshal(e.Value, &r) != nil {
				return
			}
			c.active[e.Key] = &leaseEntry{rec: &r, rev: e.Revision}
			if !r.Finishing {
				l = &r.Lease
			}
		}
		if !c.isLeader {
			return
		}
		// The scheduling replica tells the exporter every change it sees, with its revision:
		// the push of the replica that made the change may be lost, or overtaken by an older
		// one; the exporter keeps the newest.
		c.push(e.Key, l, e.Revision)
		if e.Deleted {
			c.kickScheduler() // an exporter may be free: grant what waits for it now
		}
		if e.Expired && old.live() {
			// Gone by its TTL: the scheduler records why and revokes what is left.
			c.expired = append(c.expired, old.rec)
		}
	})
	if err != nil {
		return fmt.Errorf("controller: %w", err)
	}
	err = c.queue.Sync(ctx, ">", func(e *bus.KVEntry) {
		c.mu.Lock()
		defer c.mu.Unlock()
		c.see(syncQueue, e.Revision)
		if !c.fresh("q/"+e.Key, e.Revision) {
			return
		}
		if e.Deleted {
			delete(c.pending, e.Key)
			return
		}
		var r leaseRecord
		if wire.Unmarshal(e.Value, &r) == nil {
			c.pending[e.Key] = &leaseEntry{rec: &r, rev: e.Revision}
		}
	})
	if err != nil {
		return fmt.Errorf("controller: %w", err)
	}
	err = c.identities.Sync(ctx, ">", func(e *bus.KVEntry) {
		if e.Key == accountKey {
			return
		}
		c.mu.Lock()
		defer c.mu.Unlock()
		if !c.fresh("i/"+e.Key, e.Revision) {
			return
		}
		if c.syncExtra(e) {
			return // a maintenance state or a policy
		}
		if e.Deleted {
			delete(c.ids, e.Key)
			return
		}
		var id api.Identity
		if wire.Unmarshal(e.Value, &id) == nil {
			c.ids[e.Key] = &id
		}
	})
	if err != nil {
		return fmt.Errorf("controller: %w", err)
	}
	return nil
}

// bootstrap stores the admin identity and the LAB account on first start, and pushes the live
// account (with its revocations) to the server.
func (c *Controller) bootstrap(ctx context.Context) error {
	// Init leaves the admin identity in a file for the first start: import it, then remove it
	// (the bucket is the only place identities live; a deleted admin must stay deleted).
	idFile := filepath.Join(c.o.Data, fileAdminIdentity)
	if b, err := os.ReadFile(idFile); err == nil {
		key := api.KindClient + "." + AdminName
		rev, err := c.identities.Create(ctx, key, b, 0)
		if err != nil && !errors.Is(err, bus.ErrKeyExists) {
			return fmt.Errorf("controller: %w", err)
		}
		var id api.Identity
		if err == nil && wire.Unmarshal(b, &id) == nil {
			c.cacheIdentity(key, rev, &id)
		}
		if err := os.Remove(idFile); err != nil {
			c.log.Warn("remove imported admin identity", "file", idFile, "err", err)
		}
	}
	rec, err := wire.Marshal(accountRecord{JWT: c.auth.LabJWT, Revoked: map[string]time.Time{}})
	if err != nil {
		return err
	}
	if _, err := c.identities.Create(ctx, accountKey, rec, 0); err != nil && !errors.Is(err, bus.ErrKeyExists) {
		return fmt.Errorf("controller: %w", err)
	}
	e, err := c.identities.Get(ctx, accountKey)
	if err != nil {
		return fmt.Errorf("controller: %w", err)
	}
	var ar accountRecord
	if err := wire.Unmarshal(e.Value, &ar); err != nil {
		return fmt.Errorf("controller: account record: %w", err)
	}
	if err := c.pushAccount(ctx, ar.JWT); err != nil {
		return err
	}
	if err := c.applyAccountLimits(ctx); err != nil {
		return fmt.Errorf("controller: %w", err)
	}
	if err := c.applyAdminReset(ctx); err != nil {
		return err
	}
	if err := c.retireOldIdentities(ctx); err != nil {
		return err
	}
	return c.reviveRevocations(ctx, &ar)
}

// retireOldIdentities revokes and deletes the identities issued under an older permission
// scheme (api.IdentityScheme): their credentials may subscribe to inboxes that now belong to
// other principals, so they must not stay valid. Each is logged; the admin re-issues them.
func (c *Controller) retireOldIdentities(ctx context.Context) error {
	c.mu.Lock()
	old := map[string]*api.Identity{}
	for key, id := range c.ids {
		if id.Scheme < api.IdentityScheme {
			old[key] = id
		}
	}
	c.mu.Unlock()
	if len(old) == 0 {
		return nil
	}
	keys := map[string]time.Time{}
	for _, id := range old {
		if id.PublicKey != "" {
			keys[id.PublicKey] = time.Time{}
		}
	}
	if err := c.revokeNow(ctx, keys); err != nil {
		return fmt.Errorf("controller: revoke identities of an older scheme: %w", err)
	}
	for key, id := range old {
		if _, err := c.identities.Delete(ctx, key, 0); err != nil && !errors.Is(err, bus.ErrKeyNotFound) {
			return fmt.Errorf("controller: delete identity of an older scheme: %w", err)
		}
		c.mu.Lock()
		delete(c.ids, key)
		c.mu.Unlock()
		hint := "issue it again with jsn admin create " + id.Kind + " " + id.Name
		if id.Kind == api.KindClient && id.Name == AdminName {
			hint = "run jsn controller reset-admin and restart the controller"
		}
		c.log.Warn("identity issued by an older jsn revoked and deleted: its credentials could reach other principals' replies",
			"kind", id.Kind, "name", id.Name, "fix", hint)
	}
	return nil
}

// applyAdminReset installs the admin identity ResetAdmin left in the data directory, replacing
// the current one, and revokes the previous admin key.
func (c *Controller) applyAdminReset(ctx context.Context) error {
	file := filepath.Join(c.o.Data, fileAdminReset)
	b, err := os.ReadFile(file)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("controller: admin reset: %w", err)
	}
	var reset adminReset
	if err := wire.Unmarshal(b, &reset); err != nil || reset.Identity.PublicKey == "" || !reset.Identity.Admin {
		return fmt.Errorf("controller: admin reset: %s is not an admin identity (write it again with jsn controller reset-admin)", file)
	}
	id := reset.Identity
	if b, err = wire.Marshal(id); err != nil {
		return fmt.Errorf("controller: admin reset: %w", err)
	}
	key := api.KindClient + "." + AdminName
	var old api.Identity
	if e, err := c.identities.Get(ctx, key); err == nil {
		_ = wire.Unmarshal(e.Value, &old)
	} else if !errors.Is(err, bus.ErrKeyNotFound) {
		return fmt.Errorf("controller: admin reset: %w", err)
	}
	rev, err := c.identities.Put(ctx, key, b)
	if err != nil {
		return fmt.Errorf("controller: admin reset: %w", err)
	}
	c.cacheIdentity(key, rev, &id)
	revoke := map[string]time.Time{}
	for _, k := range append(reset.Revoke, old.PublicKey) {
		if k != "" && k != id.PublicKey {
			revoke[k] = time.Time{}
		}
	}
	if err := c.revokeNow(ctx, revoke); err != nil {
		return fmt.Errorf("controller: admin reset: revoke the previous admin key: %w", err)
	}
	if err := os.Remove(file); err != nil {
		return fmt.Errorf("controller: admin reset: %w", err)
	}
	c.log.Warn("admin credentials reset: the previous admin key is revoked", "key", id.PublicKey)
	return nil
}

func randomID() string {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// serveHTTP serves /healthz and /metrics.
func (c *Controller) serveHTTP() error {
	if c.o.HTTPTLS && c.httpT == nil {
		if c.o.TLSCert == "" || c.o.TLSKey == "" {
			return errors.New("controller: --http-tls serves the NATS listener's certificate: the controller has none (--no-tls, or --nats-url without --tls-cert and --tls-key)")
		}
		cert, err := tls.LoadX509KeyPair(c.o.TLSCert, c.o.TLSKey)
		if err != nil {
			return fmt.Errorf("controller: --http-tls: %w", err)
		}
		c.httpT = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	}
	ln, err := net.Listen("tcp", c.o.HTTP)
	if err != nil {
		return fmt.Errorf("controller: http: %w", err)
	}
	c.httpAddr = ln.Addr().String()
	if c.o.HTTPTLS {
		ln = tls.NewListener(ln, c.httpT.Clone())
	} else if host, _, _ := net.SplitHostPort(c.o.HTTP); c.o.Dashboard != nil && !isLoopback(host) {
		c.log.Warn("the dashboard's HTTP listener is plain and not on loopback: its login exchange sends browser credentials unencrypted; use --http-tls or a TLS-terminating reverse proxy", "http", c.o.HTTP)
	}
	mux := http.NewServeMux()
	if c.o.Dashboard != nil {
		files := http.FileServerFS(c.o.Dashboard)
		mux.Handle("/", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Cache-Control", "no-store")
			w.Header().Set("X-Content-Type-Options", "nosniff")
			w.Header().Set("Referrer-Policy", "no-referrer")
			files.ServeHTTP(w, r)
		}))
		mux.HandleFunc("/api/exchange", c.exchange)
	}
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("/metrics", func(w http.ResponseWriter, r *http.Request) {
		m := c.Metrics()
		w.Header().Set("Content-Type", "text/plain; version=0.0.4")
		var b strings.Builder
		gauge := func(name, help string, v int) {
			fmt.Fprintf(&b, "# HELP %s %s\n# TYPE %s gauge\n%s %d\n", name, help, name, name, v)
		}
		gauge("jsn_exporters_registered", "Exporters registered with the controller.", m.Registered)
		gauge("jsn_exporters_online", "Exporters that heartbeat recently.", m.Online)
		gauge("jsn_leases_active", "Active leases.", m.Active)
		gauge("jsn_leases_queued", "Queued lease requests.", m.Queued)
		gauge("jsn_controller_leader", "1 if this replica schedules.", m.Leader)
		gauge("jsn_account_revocations", "Revoked credentials the LAB account lists (until they expire); as of this replica's last write of it.", m.Revocations)
		gauge("jsn_account_jwt_bytes", "Size of the LAB account JWT; as of this replica's last write of it.", m.AccountBytes)
		_, _ = w.Write([]byte(b.String()))
	})
	c.httpS = &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		_ = c.httpS.Serve(ln)
	}()
	return nil
}

// Metrics are the controller's gauges.
type Metrics struct {
	Registered, Online, Active, Queued, Leader int
	// Revocations and AccountBytes describe the LAB account as this replica last wrote it (0
	// before it wrote any): every lease released before its end adds a revocation until the
	// credential expires.
	Revocations, AccountBytes int
}

// Metrics returns the current gauges.
func (c *Controller) Metrics() Metrics {
	m := c.leaseMetrics()
	c.acctMu.Lock()
	if c.acct != nil {
		m.Revocations, m.AccountBytes = len(c.acct.rec.Revoked), len(c.acct.rec.JWT)
	}
	c.acctMu.Unlock()
	return m
}

// NatsConfig returns a nats-server configuration snippet that makes an existing NATS deployment
// trust this controller's operator: operator JWT, system account and a memory resolver preloaded
// with the SYS and LAB accounts.
func NatsConfig(dir string) (string, error) {
	a, err := LoadAuthority(dir)
	if err != nil {
		return "", err
	}
	lab := a.LabJWT
	return fmt.Sprintf(`# jsn controller: trust its operator and accounts (generated by jsn controller nats-config).
# Enable JetStream on the servers too, e.g.  jetstream: {store_dir: "/var/lib/nats/jetstream"}
operator: %s
system_account: %s
resolver: MEMORY
resolver_preload: {
  %s: %s
  %s: %s
}

`, a.OperatorJWT, a.SysPub, a.SysPub, a.SysJWT, a.LabPub, lab), nil

}

const (
	maxRequests  = 256           // API requests a replica serves at once
	accountKey   = "account.lab" // in jsn-identities: the live LAB account JWT and revocations
	leaderKey    = "scheduler"
	endedKeepFor = 10 * time.Minute // how long ended leases stay visible to lease.get
)

// Indexes of seen and wrote.
const (
	syncLeases = 0
	syncQueue  = 1
)

func bucketOf(key string) int {
	switch {
	case strings.HasPrefix(key, "l/"):
		return syncLeases
	case strings.HasPrefix(key, "q/"):
		return syncQueue
	}
	return -1
}

// see records that a watch delivered revision rev of bucket b; c.mu must be held.
func (c *Controller) see(b int, rev uint64) {
	if rev > c.seen[b] {
		c.seen[b] = rev
		close(c.seenCh)
		c.seenCh = make(chan struct{})
	}
}

// syncToken is the read-your-writes token of replies (api.HeaderSync): the newest revisions of
// the lease and queue buckets this replica knows of.
func (c *Controller) syncToken() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return fmt.Sprintf("%d.%d", max(c.seen[0], c.wrote[0]), max(c.seen[1], c.wrote[1]))
}

// parseSyncToken decodes a syncToken; "" is the zero token.
func parseSyncToken(s string) (want [2]uint64, err error) {
	if s == "" {
		return want, nil
	}
	a, b, ok := strings.Cut(s, ".")
	if ok {
		if want[0], err = strconv.ParseUint(a, 10, 64); err == nil {
			want[1], err = strconv.ParseUint(b, 10, 64)
		}
	}
	if !ok || err != nil {
		return want, wire.Errorf(wire.InvalidArgument, "header %s: %q is not a token this controller issued", api.HeaderSync, s)
	}
	return want, nil
}

// syncWait is how long a request waits for this replica's caches to catch up with its sync
// token, or with the buckets after a cache miss, before it is answered Unavailable.
const syncWait = 3 * time.Second

// waitSeen waits until the watches have delivered the revisions in want.
func (c *Controller) waitSeen(ctx context.Context, want [2]uint64) error {
	t := time.NewTimer(syncWait)
	defer t.Stop()
	for {
		c.mu.Lock()
		ok := c.seen[0] >= want[0] && c.seen[1] >= want[1]
		ch := c.seenCh
		c.mu.Unlock()
		if ok {
			return nil
		}
		select {
		case <-ch:
		case <-t.C:
			return wire.Errorf(wire.Unavailable, "controller replica %s: its view of the buckets is behind (%d.%d wanted); try again", c.id, want[0], want[1])
		case <-ctx.Done():
			return wire.Errorf(wire.Unavailable, "controller replica %s: %v", c.id, ctx.Err())
		}
	}
}

// catchUp waits until the caches hold every write made to the lease and queue buckets before
// the call: a replica that does not find a lease asks this before saying it does not exist.
func (c *Controller) catchUp(ctx context.Context) error {
	var want [2]uint64
	var err error
	if want[0], err = c.leases.LastRevision(ctx); err != nil {
		return err
	}
	if want[1], err = c.queue.LastRevision(ctx); err != nil {
		return err
	}
	return c.waitSeen(ctx, want)
}

// leaseMetrics returns the gauges of the caches.
func (c *Controller) leaseMetrics() Metrics {
	c.mu.Lock()
	defer c.mu.Unlock()
	m := Metrics{Registered: len(c.exps)}
	for _, le := range c.active {
		if le.live() {
			m.Active++
		}
	}
	now := time.Now()
	for _, e := range c.exps {
		if now.Sub(e.LastSeen) < c.o.OfflineAfter {
			m.Online++
		}
	}
	for _, p := range c.pending {
		if p.rec.Lease.Status == api.StatusQueued {
			m.Queued++
		}
	}
	if c.isLeader {
		m.Leader = 1
	}
	return m
}

// leafLinked reads a server's account connections announcement ($SYS.ACCOUNT.<acc>.SERVER.CONNS)
// and reports whether it has more leaf node links for the account than it had (links, by server
// id, is updated): a leaf node (re)linked. Anything else, malformed announcements included, is no.
func leafLinked(links map[string]int, data []byte) bool {
	var a struct {
		Server struct {
			ID string `json:"id"`
		} `json:"server"`
		LeafNodes int `json:"leafnodes"`
	}
	if json.Unmarshal(data, &a) != nil || a.Server.ID == "" || a.LeafNodes < 0 {
		return false
	}
	before, known := links[a.Server.ID]
	if !known && len(links) >= 1024 {
		clear(links) // servers come and go; a fresh count only costs a push
	}
	links[a.Server.ID] = a.LeafNodes
	return a.LeafNodes > before
}
