package bus

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// KV errors callers branch on.
var (
	ErrKeyNotFound = errors.New("key not found")
	ErrKeyExists   = errors.New("key exists")        // Create of a live key
	ErrKeyChanged  = errors.New("revision mismatch") // CAS update or delete lost a race
)

// KVConfig configures a JetStream key-value bucket.
type KVConfig struct {
	Bucket   string
	History  uint8         // revisions kept per key (default 1)
	Replicas int           // stream replicas (default 1; 3 on a cluster)
	TTL      time.Duration // maximum age of every entry; 0 = none
	// LimitMarkerTTL enables per-key TTLs (Create/Update with a ttl) and keeps the marker a TTL
	// expiry leaves for this long, so watchers see the expiry as a delete.
	LimitMarkerTTL time.Duration
}

// KV is a JetStream key-value bucket.
type KV struct {
	js     jetstream.JetStream
	kv     jetstream.KeyValue
	stream jetstream.Stream
	bucket string
}

// KVEntry is one value of a bucket.
type KVEntry struct {
	Key      string
	Value    []byte
	Revision uint64
	Created  time.Time
	Deleted  bool // a delete, purge or TTL-expiry marker (only from Watch)
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
	return &KV{js: js, kv: kv, stream: st, bucket: cfg.Bucket}, nil
}

func (k *KV) wrap(op, key string, err error) error {
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

func isWrongLastSeq(err error) bool {
	var api *jetstream.APIError
	return errors.As(err, &api) && (api.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence ||
		api.ErrorCode == 10164)
}

// Get returns the live value of key, or an error wrapping ErrKeyNotFound.
func (k *KV) Get(ctx context.Context, key string) (*KVEntry, error) {
	e, err := k.kv.Get(ctx, key)
	if err != nil {
		return nil, k.wrap("get", key, err)
	}
	return &KVEntry{Key: e.Key(), Value: e.Value(), Revision: e.Revision(), Created: e.Created()}, nil
}

// Put stores value under key unconditionally and returns the new revision.
func (k *KV) Put(ctx context.Context, key string, value []byte) (uint64, error) {
	rev, err := k.kv.Put(ctx, key, value)
	if err != nil {
		return 0, k.wrap("put", key, err)
	}
	return rev, nil
}

// Create stores value under key only if key has no live value (atomic: of two racing Creates
// exactly one wins; the other gets ErrKeyExists). ttl > 0 makes the key expire (the bucket needs
// LimitMarkerTTL).
func (k *KV) Create(ctx context.Context, key string, value []byte, ttl time.Duration) (uint64, error) {
	var opts []jetstream.KVCreateOpt
	if ttl > 0 {
		opts = append(opts, jetstream.KeyTTL(ttl))
	}
	rev, err := k.kv.Create(ctx, key, value, opts...)
	if err != nil {
		return 0, k.wrap("create", key, err)
	}
	return rev, nil
}

// Update stores value under key if its revision is still rev (compare and set); otherwise it
// returns ErrKeyChanged. ttl > 0 sets a fresh per-key TTL: kv.Update would drop it (nats.go issue
// 1994), so this publishes to $KV.<bucket>.<key> with Nats-Expected-Last-Subject-Sequence and
// Nats-TTL headers itself.
func (k *KV) Update(ctx context.Context, key string, value []byte, rev uint64, ttl time.Duration) (uint64, error) {
	if ttl <= 0 {
		r, err := k.kv.Update(ctx, key, value, rev)
		if err != nil {
			return 0, k.wrap("update", key, err)
		}
		return r, nil
	}
	m := &nats.Msg{Subject: "$KV." + k.bucket + "." + key, Header: nats.Header{}, Data: value}
	ack, err := k.js.PublishMsg(ctx, m, jetstream.WithExpectLastSequencePerSubject(rev), jetstream.WithMsgTTL(ttl))
	if err != nil {
		return 0, k.wrap("update", key, err)
	}
	return ack.Sequence, nil
}

// Delete removes key. rev > 0 makes it conditional on key's revision still being rev.
func (k *KV) Delete(ctx context.Context, key string, rev uint64) error {
	var opts []jetstream.KVDeleteOpt
	if rev > 0 {
		opts = append(opts, jetstream.LastRevision(rev))
	}
	if err := k.kv.Delete(ctx, key, opts...); err != nil {
		return k.wrap("delete", key, err)
	}
	return nil
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

// Watch calls fn for every change of keys matching pattern (">" for all) from now on, including
// deletes and TTL expiries (Deleted set), until ctx ends. It returns when the watch is set up.
func (k *KV) Watch(ctx context.Context, pattern string, fn func(*KVEntry)) error {
	w, err := k.kv.Watch(ctx, pattern, jetstream.UpdatesOnly())
	if err != nil {
		return k.wrap("watch", pattern, err)
	}
	go func() {
		defer w.Stop()
		for {
			select {
			case e, ok := <-w.Updates():
				if !ok {
					return
				}
				if e == nil {
					continue
				}
				fn(&KVEntry{Key: e.Key(), Value: e.Value(), Revision: e.Revision(), Created: e.Created(),
					Deleted: e.Operation() != jetstream.KeyValuePut})
			case <-ctx.Done():
				return
			}
		}
	}()
	return nil
}

// Sync calls fn for every live entry matching pattern, then returns, and goes on calling fn for
// every later change (Deleted set for deletes and TTL expiries) until ctx ends.
func (k *KV) Sync(ctx context.Context, pattern string, fn func(*KVEntry)) error {
	w, err := k.kv.Watch(ctx, pattern)
	if err != nil {
		return k.wrap("watch", pattern, err)
	}
	deliver := func(e jetstream.KeyValueEntry) {
		fn(&KVEntry{Key: e.Key(), Value: e.Value(), Revision: e.Revision(), Created: e.Created(),
			Deleted: e.Operation() != jetstream.KeyValuePut})
	}
	for initial := true; initial; {
		select {
		case e, ok := <-w.Updates():
			if !ok {
				return k.wrap("watch", pattern, errors.New("watch ended"))
			}
			if e == nil {
				initial = false
				continue
			}
			deliver(e)
		case <-ctx.Done():
			_ = w.Stop()
			return k.wrap("watch", pattern, ctx.Err())
		}
	}
	go func() {
		defer w.Stop()
		for {
			select {
			case e, ok := <-w.Updates():
				if !ok {
					return
				}
				if e != nil {
					deliver(e)
				}
			case <-ctx.Done():
				return
			}
		}
	}()
	return nil
}
