package bus

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"jsn.dev/jsn/bus/wire"
)

// KV errors callers branch on.
var (
	ErrKeyNotFound = errors.New("key not found")
	ErrKeyExists   = errors.New("key exists")        // Create of a live key
	ErrKeyChanged  = errors.New("revision mismatch") // CAS update or delete lost a race
)

// A bucket that cannot answer for a moment (a cluster electing a stream leader, a server that
// died under a request, a lost quorum) fails with an *Error of code Unavailable wrapping the
// cause: the operation may or may not have been applied, and is worth trying again (writes
// that must not happen twice carry a message id, see CreateOnce).

// KVConfig configures a JetStream key-value bucket.
type KVConfig struct {
	Bucket   string
	History  uint8         // revisions kept per key (default 1)
	Replicas int           // stream replicas (default 1; 3 on a cluster)
	TTL      time.Duration // maximum age of every entry; 0 = none
	// LimitMarkerTTL enables per-key TTLs (Create/Update with a ttl) and keeps the marker a TTL
	// expiry leaves for this long, so watchers see the expiry as a delete.
	LimitMarkerTTL time.Duration
	// Log receives what watches go through (a consumer lost and recreated); nil discards it.
	Log *slog.Logger
}

// KV is a JetStream key-value bucket.
type KV struct {
	js     jetstream.JetStream
	kv     jetstream.KeyValue
	stream jetstream.Stream
	bucket string
	log    *slog.Logger
}

// KVEntry is one value of a bucket.
type KVEntry struct {
	Key      string
	Value    []byte
	Revision uint64
	Created  time.Time
	Deleted  bool // a delete, purge or TTL-expiry marker (only from Watch and Sync)
	Expired  bool // with Deleted: the key went by its TTL (or a purge), not by Delete
}

// KeyValue creates the bucket, or updates its configuration if it exists.
func (c *Conn) KeyValue(ctx context.Context, cfg KVConfig) (*KV, error) {
	js, err := jetstream.New(c.nc)
	if err != nil {
		return nil, fmt.Errorf("kv %s: %w", cfg.Bucket, err)
	}
	if cfg.History == 0 {
		cfg.History = 1
	}
	kv, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket:         cfg.Bucket,
		History:        cfg.History,
		Replicas:       cfg.Replicas,
		TTL:            cfg.TTL,
		LimitMarkerTTL: cfg.LimitMarkerTTL,
		Storage:        jetstream.FileStorage,
	})
	if err != nil {
		return nil, fmt.Errorf("kv %s: %w", cfg.Bucket, err)
	}
	st, err := js.Stream(ctx, "KV_"+cfg.Bucket)
	if err != nil {
		return nil, fmt.Errorf("kv %s: %w", cfg.Bucket, err)
	}
	log := cfg.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &KV{js: js, kv: kv, stream: st, bucket: cfg.Bucket, log: log.With("bucket", cfg.Bucket)}, nil
}

func (k *KV) wrap(op, key string, err error) error {
	if transient(err) {
		return wire.NewError(wire.Unavailable, fmt.Sprintf("kv %s %s %s: %v (the bucket is not answering for now; try again)", op, k.bucket, key, err), err)
	}
	switch {
	case errors.Is(err, jetstream.ErrKeyNotFound), errors.Is(err, jetstream.ErrKeyDeleted):
		err = ErrKeyNotFound
	case op == "create" && (errors.Is(err, jetstream.ErrKeyExists) || isWrongLastSeq(err)):
		err = ErrKeyExists
	case isWrongLastSeq(err), errors.Is(err, jetstream.ErrKeyExists):
		err = ErrKeyChanged
	}
	return fmt.Errorf("kv %s %s %s: %w", op, k.bucket, key, err)
}

// errUnknownOutcome: a write whose acknowledgement was lost, and whose repeat found the key
// changed, perhaps by the write itself.
var errUnknownOutcome = errors.New("write acknowledgement lost; the key changed meanwhile, perhaps by this write")

// transient reports whether err says the bucket could not answer now, rather than no.
func transient(err error) bool {
	if errors.Is(err, errUnknownOutcome) {
		return true
	}
	var api *jetstream.APIError
	if errors.As(err, &api) {
		switch api.ErrorCode {
		case 10008, // JetStream system temporarily unavailable
			10118, 10194, // stream is offline
			10163: // expected last sequence per subject temporarily unavailable
			return true
		}
		return false
	}
	return errors.Is(err, jetstream.ErrNoStreamResponse) || errors.Is(err, nats.ErrTimeout) ||
		errors.Is(err, context.DeadlineExceeded) || errors.Is(err, nats.ErrNoResponders) ||
		errors.Is(err, jetstream.ErrNoHeartbeat) || errors.Is(err, nats.ErrConnectionClosed) ||
		errors.Is(err, nats.ErrConnectionReconnecting) || errors.Is(err, nats.ErrDisconnected)
}

func isWrongLastSeq(err error) bool {
	var api *jetstream.APIError
	return errors.As(err, &api) && (api.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence ||
		api.ErrorCode == 10164)
}

// kvAttempt bounds one attempt of a bucket operation: a request lost with the server or stream
// leader that got it (a new leader is elected within seconds) is sent again instead of waiting
// out the caller's whole deadline.
const kvAttempt = 2 * time.Second

// attempt runs op with a per-attempt deadline until it succeeds, fails for good, or ctx ends.
func attempt(ctx context.Context, op func(ctx context.Context) error) error {
	for {
		actx, cancel := context.WithTimeout(ctx, kvAttempt)
		err := op(actx)
		cancel()
		if err == nil || !transient(err) || ctx.Err() != nil || errors.Is(err, errUnknownOutcome) || errors.Is(err, nats.ErrConnectionClosed) {
			return err
		}
		t := time.NewTimer(100 * time.Millisecond)
		select {
		case <-ctx.Done():
			t.Stop()
			return err
		case <-t.C:
		}
	}
}

// Get returns the live value of key, or an error wrapping ErrKeyNotFound.
func (k *KV) Get(ctx context.Context, key string) (*KVEntry, error) {
	var e jetstream.KeyValueEntry
	err := attempt(ctx, func(ctx context.Context) (err error) {
		e, err = k.kv.Get(ctx, key)
		return err
	})
	if err != nil {
		return nil, k.wrap("get", key, err)
	}
	return &KVEntry{Key: e.Key(), Value: e.Value(), Revision: e.Revision(), Created: e.Created()}, nil
}

// write is one write of key: value with the operation header op ("" for a value), conditional
// on key's last revision being expect (expect < 0: unconditional; 0: no value), with a per-key
// TTL and a message id (id "" gets a random one when the write is conditional). An attempt whose
// acknowledgement is lost is repeated: with the same message id it is stored at most once, and a
// repeat that finds the key changed checks whether the change is its own.
func (k *KV) write(ctx context.Context, key string, value []byte, op string, expect int64, ttl time.Duration, id string) (rev uint64, dup bool, err error) {
	subject := "$KV." + k.bucket + "." + key
	if id == "" && expect >= 0 {
		// Conditional: a repeat must recognise its own first attempt. (An unconditional write
		// repeated is harmless, and ids cost the stream memory for its duplicate window.)
		id = randomToken(12)
	}
	unsure := false // an earlier attempt may have been stored
	err = attempt(ctx, func(ctx context.Context) error {
		m := &nats.Msg{Subject: subject, Header: nats.Header{}, Data: value}
		if op != "" {
			m.Header.Set("KV-Operation", op)
		}
		var opts []jetstream.PublishOpt
		if id != "" {
			opts = append(opts, jetstream.WithMsgID(id))
		}
		if expect >= 0 {
			opts = append(opts, jetstream.WithExpectLastSequencePerSubject(uint64(expect)))
		}
		if ttl > 0 {
			opts = append(opts, jetstream.WithMsgTTL(ttl))
		}
		ack, err := k.js.PublishMsg(ctx, m, opts...)
		if err == nil {
			rev, dup = ack.Sequence, ack.Duplicate
			return nil
		}
		if isWrongLastSeq(err) && unsure {
			if lm, gerr := k.stream.GetLastMsgForSubject(ctx, subject); gerr == nil && lm.Header.Get(jetstream.MsgIDHeader) == id {
				rev = lm.Sequence
				return nil
			}
			// Not ours as far as this (possibly stale) read says: the outcome is unknown.
			return errUnknownOutcome
		}
		unsure = unsure || transient(err)
		return err
	})
	return rev, dup, err
}

// Put stores value under key unconditionally and returns the new revision.
func (k *KV) Put(ctx context.Context, key string, value []byte) (uint64, error) {
	rev, _, err := k.write(ctx, key, value, "", -1, 0, "")
	if err != nil {
		return 0, k.wrap("put", key, err)
	}
	return rev, nil
}

// Create stores value under key only if key has no live value (atomic: of two racing Creates
// exactly one wins; the other gets ErrKeyExists). ttl > 0 makes the key expire (the bucket needs
// LimitMarkerTTL).
func (k *KV) Create(ctx context.Context, key string, value []byte, ttl time.Duration) (uint64, error) {
	rev, _, err := k.CreateOnce(ctx, key, value, ttl, "")
	return rev, err
}

// CreateOnce is Create with a message id: within the bucket's duplicate window (two minutes) a
// second write with the same id, to any key, is not stored, and CreateOnce returns the revision
// of the first one with dup set. So one operation (granting a lease id) happens at most once
// however many replicas attempt it. id "" means a random one.
func (k *KV) CreateOnce(ctx context.Context, key string, value []byte, ttl time.Duration, id string) (rev uint64, dup bool, err error) {
	rev, dup, err = k.write(ctx, key, value, "", 0, ttl, id)
	if err != nil && isWrongLastSeq(err) {
		// The key exists; a delete or expiry marker counts as no value.
		var m *jetstream.RawStreamMsg
		gerr := attempt(ctx, func(ctx context.Context) (err error) {
			m, err = k.stream.GetLastMsgForSubject(ctx, "$KV."+k.bucket+"."+key)
			return err
		})
		if gerr == nil && isMarker(m.Header) {
			rev, dup, err = k.write(ctx, key, value, "", int64(m.Sequence), ttl, id)
		}
	}
	if err != nil {
		if isWrongLastSeq(err) {
			err = fmt.Errorf("%w: %w", err, ErrKeyExists)
		}
		return 0, false, k.wrap("create", key, err)
	}
	return rev, dup, nil
}

// isMarker reports whether a stored KV message is a delete, purge or TTL-expiry marker.
func isMarker(h nats.Header) bool {
	switch h.Get("KV-Operation") {
	case "DEL", "PURGE":
		return true
	}
	return h.Get(jetstream.MarkerReasonHeader) != ""
}

// Update stores value under key if its revision is still rev (compare and set); otherwise it
// returns ErrKeyChanged. ttl > 0 sets a fresh per-key TTL (kv.Update would drop it: nats.go
// issue 1994).
func (k *KV) Update(ctx context.Context, key string, value []byte, rev uint64, ttl time.Duration) (uint64, error) {
	nrev, _, err := k.write(ctx, key, value, "", int64(rev), ttl, "")
	if err != nil {
		return 0, k.wrap("update", key, err)
	}
	return nrev, nil
}

// Delete removes key and returns the revision of its delete marker. rev > 0 makes it
// conditional on key's revision still being rev (ErrKeyChanged otherwise).
func (k *KV) Delete(ctx context.Context, key string, rev uint64) (uint64, error) {
	expect := int64(rev)
	if rev == 0 {
		expect = -1
	}
	nrev, _, err := k.write(ctx, key, nil, "DEL", expect, 0, "")
	if err != nil {
		return 0, k.wrap("delete", key, err)
	}
	return nrev, nil
}

// LastRevision returns the revision of the bucket's newest write (of any key): a cache fed by
// Sync that has seen it has seen everything written before the call.
func (k *KV) LastRevision(ctx context.Context) (uint64, error) {
	var last uint64
	err := attempt(ctx, func(ctx context.Context) error {
		info, err := k.stream.Info(ctx)
		if err == nil {
			last = info.State.LastSeq
		}
		return err
	})
	if err != nil {
		return 0, k.wrap("info", "", err)
	}
	return last, nil
}

// Keys lists the live keys.
func (k *KV) Keys(ctx context.Context) ([]string, error) {
	lister, err := k.kv.ListKeys(ctx)
	if err != nil {
		return nil, k.wrap("keys", "", err)
	}
	var keys []string
	for key := range lister.Keys() {
		keys = append(keys, key)
	}
	return keys, nil
}

// Entries returns every live entry.
func (k *KV) Entries(ctx context.Context) ([]*KVEntry, error) {
	w, err := k.kv.WatchAll(ctx, jetstream.IgnoreDeletes())
	if err != nil {
		return nil, k.wrap("entries", "", err)
	}
	defer w.Stop()
	var out []*KVEntry
	for {
		select {
		case e := <-w.Updates():
			if e == nil {
				return out, nil
			}
			out = append(out, &KVEntry{Key: e.Key(), Value: e.Value(), Revision: e.Revision(), Created: e.Created()})
		case <-ctx.Done():
			return nil, k.wrap("entries", "", ctx.Err())
		}
	}
}

// TTL returns the per-key TTL the live value of key was stored with (the Nats-TTL header), 0 if
// none.
func (k *KV) TTL(ctx context.Context, key string) (time.Duration, error) {
	m, err := k.stream.GetLastMsgForSubject(ctx, "$KV."+k.bucket+"."+key)
	if err != nil {
		return 0, k.wrap("ttl", key, err)
	}
	v := m.Header.Get("Nats-TTL")
	if v == "" {
		return 0, nil
	}
	if strings.IndexFunc(v, func(r rune) bool { return r < '0' || r > '9' }) < 0 {
		s, _ := strconv.Atoi(v)
		return time.Duration(s) * time.Second, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		return 0, fmt.Errorf("kv ttl %s %s: header %q: %w", k.bucket, key, v, err)
	}
	return d, nil
}

// watchHeartbeat is how often the server tells an idle watch it is alive: a watch whose
// consumer vanished (its server died, the stream moved) is recreated, from where it was, within
// about two of these.
const watchHeartbeat = time.Second

// Watch calls fn for every change of keys matching pattern (">" for all) from now on, including
// deletes and TTL expiries (Deleted set), until ctx ends. It returns when the watch is set up.
func (k *KV) Watch(ctx context.Context, pattern string, fn func(*KVEntry)) error {
	_, err := k.follow(ctx, pattern, jetstream.DeliverNewPolicy, fn)
	return err
}

// Sync calls fn for every live entry matching pattern (and the delete markers still kept),
// then returns, and goes on calling fn for every later change (Deleted set for deletes and TTL
// expiries) until ctx ends. fn is called from one goroutine, in revision order. The watch
// survives the loss of the server or stream leader it reads from.
func (k *KV) Sync(ctx context.Context, pattern string, fn func(*KVEntry)) error {
	w, err := k.follow(ctx, pattern, jetstream.DeliverLastPerSubjectPolicy, fn)
	if err != nil {
		return err
	}
	select {
	case <-w.initial:
		return nil
	case <-ctx.Done():
		return k.wrap("watch", pattern, ctx.Err())
	}
}

// watch is one Watch or Sync. It reads the bucket with a consumer of its own (ephemeral, in
// memory, no acks) and, whenever that consumer fails — missing heartbeats (its server died), a
// gap in its delivery, an error — makes a new one starting after the last revision delivered.
// (It does not use nats.go's ordered consumer: that holds a lock for as long as it retries
// recreating its consumer, and after a server was killed one retried for minutes while the
// replica using it saw every exporter go offline and granted nothing.)
type watch struct {
	k       *KV
	pattern string
	prefix  string
	fn      func(*KVEntry)
	initial chan struct{}
	once    sync.Once

	last uint64 // revision of the last entry delivered; only the run goroutine

	consumer atomic.Value // name of the consumer read now (string)
}

// follow calls fn for the messages of keys matching pattern from policy on, in revision order,
// one at a time; the watch's initial is closed once the messages there were when it started
// have been delivered.
func (k *KV) follow(ctx context.Context, pattern string, policy jetstream.DeliverPolicy, fn func(*KVEntry)) (*watch, error) {
	w := &watch{k: k, pattern: pattern, prefix: "$KV." + k.bucket + ".", fn: fn, initial: make(chan struct{})}
	it, err := w.consume(ctx, policy, 0)
	if err != nil {
		return nil, k.wrap("watch", pattern, err)
	}
	go w.run(ctx, policy, it)
	return w, nil
}

// consume creates a consumer from policy, or from revision from when not 0, and returns its
// messages.
func (w *watch) consume(ctx context.Context, policy jetstream.DeliverPolicy, from uint64) (jetstream.MessagesContext, error) {
	cfg := jetstream.ConsumerConfig{
		FilterSubject: w.prefix + w.pattern, DeliverPolicy: policy,
		AckPolicy: jetstream.AckNonePolicy, MemoryStorage: true, Replicas: 1,
		InactiveThreshold: 30 * time.Second, // a watch whose process died leaves nothing behind
	}
	if from > 0 {
		cfg.DeliverPolicy, cfg.OptStartSeq = jetstream.DeliverByStartSequencePolicy, from
	}
	var cons jetstream.Consumer
	err := attempt(ctx, func(ctx context.Context) (err error) {
		cons, err = w.k.js.CreateConsumer(ctx, "KV_"+w.k.bucket, cfg)
		return err
	})
	if err != nil {
		return nil, err
	}
	if info := cons.CachedInfo(); info != nil {
		w.consumer.Store(info.Name)
		if info.NumPending == 0 {
			w.once.Do(func() { close(w.initial) })
		}
	}
	it, err := cons.Messages(jetstream.PullHeartbeat(watchHeartbeat), jetstream.WithMessagesErrOnMissingHeartbeat(true))
	if err != nil {
		w.drop(cons)
		return nil, err
	}
	return &consumerMessages{MessagesContext: it, w: w, cons: cons}, nil
}

// consumerMessages is a consumer's messages, deleting the consumer when stopped.
type consumerMessages struct {
	jetstream.MessagesContext
	w    *watch
	cons jetstream.Consumer
}

func (c *consumerMessages) Stop() {
	c.MessagesContext.Stop()
	c.w.drop(c.cons)
}

// drop deletes a consumer the watch no longer reads (its inactivity threshold would, later).
func (w *watch) drop(cons jetstream.Consumer) {
	info := cons.CachedInfo()
	if info == nil {
		return
	}
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), kvAttempt)
		defer cancel()
		_ = w.k.js.DeleteConsumer(ctx, "KV_"+w.k.bucket, info.Name)
	}()
}

// run delivers its messages, replacing the consumer when it fails, until ctx ends.
func (w *watch) run(ctx context.Context, policy jetstream.DeliverPolicy, it jetstream.MessagesContext) {
	stop := context.AfterFunc(ctx, it.Stop)
	var dseq uint64 // consumer sequence of the last message, to find gaps
	wait := 100 * time.Millisecond
	for {
		err := w.read(it, &dseq)
		stop()
		it.Stop()
		if ctx.Err() != nil {
			return
		}
		w.k.log.Warn("kv watch: consumer lost, starting a new one", "pattern", w.pattern, "after", w.last, "err", err)
		for {
			t := time.NewTimer(wait)
			select {
			case <-ctx.Done():
				t.Stop()
				return
			case <-t.C:
			}
			wait = min(wait*2, 2*time.Second)
			from := w.last + 1
			if w.last == 0 {
				from = 0 // nothing delivered yet: start as asked
			}
			if it, err = w.consume(ctx, policy, from); err == nil {
				break
			}
			if ctx.Err() != nil {
				return
			}
			w.k.log.Warn("kv watch: new consumer", "pattern", w.pattern, "err", err)
		}
		wait = 100 * time.Millisecond
		dseq = 0
		stop = context.AfterFunc(ctx, it.Stop)
	}
}

// read delivers messages of it until it fails (or is stopped), and says why.
func (w *watch) read(it jetstream.MessagesContext, dseq *uint64) error {
	for {
		m, err := it.Next()
		if err != nil {
			return err
		}
		md, err := m.Metadata()
		if err != nil {
			return err
		}
		if *dseq != 0 && md.Sequence.Consumer != *dseq+1 {
			return fmt.Errorf("lost messages: consumer sequence %d after %d", md.Sequence.Consumer, *dseq)
		}
		*dseq = md.Sequence.Consumer
		w.deliver(m, md)
	}
}

// deliver passes a message on, unless it was delivered already.
func (w *watch) deliver(m jetstream.Msg, md *jetstream.MsgMetadata) {
	e := &KVEntry{Key: strings.TrimPrefix(m.Subject(), w.prefix), Value: m.Data(), Revision: md.Sequence.Stream, Created: md.Timestamp}
	h := m.Headers()
	switch h.Get("KV-Operation") {
	case "DEL":
		e.Deleted = true
	case "PURGE":
		e.Deleted, e.Expired = true, true
	default:
		switch h.Get(jetstream.MarkerReasonHeader) {
		case "":
		case "MaxAge", "Purge":
			e.Deleted, e.Expired = true, true
		default:
			e.Deleted = true
		}
	}
	if e.Deleted {
		e.Value = nil
	}
	if e.Revision > w.last {
		w.last = e.Revision
		w.fn(e)
	}
	if md.NumPending == 0 {
		w.once.Do(func() { close(w.initial) })
	}
}
