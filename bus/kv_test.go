package bus

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"jsn.dev/jsn/bus/wire"
)

func runJetStream(t *testing.T) *Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := StartServer(ctx, ServerOptions{JetStreamDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Shutdown)
	c, err := s.Connect(ctx, "kvtest")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

func TestKVCreateRaceAndTTL(t *testing.T) {
	c := runJetStream(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	kv, err := c.KeyValue(ctx, KVConfig{Bucket: "t", LimitMarkerTTL: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	wins := 0
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := kv.Create(ctx, "k", []byte("v"), time.Hour)
			if err == nil {
				mu.Lock()
				wins++
				mu.Unlock()
			} else if !errors.Is(err, ErrKeyExists) {
				t.Errorf("create: %v", err)
			}
		}()
	}
	wg.Wait()
	if wins != 1 {
		t.Fatalf("racing creates: got %d winners, want 1", wins)
	}
	e, err := kv.Get(ctx, "k")
	if err != nil {
		t.Fatal(err)
	}
	if ttl, err := kv.TTL(ctx, "k"); err != nil || ttl != time.Hour {
		t.Fatalf("ttl after create: got %v, %v, want 1h", ttl, err)
	}
	rev, err := kv.Update(ctx, "k", []byte("w"), e.Revision, 2*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if ttl, err := kv.TTL(ctx, "k"); err != nil || ttl != 2*time.Hour {
		t.Fatalf("ttl after update: got %v, %v, want 2h", ttl, err)
	}
	if _, err := kv.Update(ctx, "k", []byte("x"), e.Revision, time.Hour); !errors.Is(err, ErrKeyChanged) {
		t.Fatalf("stale update: got %v, want ErrKeyChanged", err)
	}
	if _, err := kv.Delete(ctx, "k", rev); err != nil {
		t.Fatal(err)
	}
	if _, err := kv.Get(ctx, "k"); !errors.Is(err, ErrKeyNotFound) {
		t.Fatalf("get after delete: got %v, want ErrKeyNotFound", err)
	}

	// A key with a short TTL expires on its own; a watcher sees it go.
	gone := make(chan struct{}, 1)
	wctx, wcancel := context.WithCancel(ctx)
	defer wcancel()
	if err := kv.Watch(wctx, "short", func(e *KVEntry) {
		if e.Deleted {
			select {
			case gone <- struct{}{}:
			default:
			}
		}
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := kv.Create(ctx, "short", []byte("v"), time.Second); err != nil {
		t.Fatal(err)
	}
	select {
	case <-gone:
	case <-ctx.Done():
		t.Fatal("no expiry seen")
	}
	if _, err := kv.Get(ctx, "short"); !errors.Is(err, ErrKeyNotFound) {
		t.Fatalf("get after expiry: got %v, want ErrKeyNotFound", err)
	}
	if _, err := kv.Create(ctx, "short", []byte("again"), time.Hour); err != nil {
		t.Fatalf("create after expiry: %v", err)
	}
	keys, err := kv.Keys(ctx)
	if err != nil || len(keys) != 1 || keys[0] != "short" {
		t.Fatalf("keys: got %v, %v, want [short]", keys, err)
	}
	ents, err := kv.Entries(ctx)
	if err != nil || len(ents) != 1 || string(ents[0].Value) != "again" {
		t.Fatalf("entries: got %v, %v", ents, err)
	}
}

func TestServiceHandle(t *testing.T) {
	c := runJetStream(t)
	svc, err := c.AddService(ServiceConfig{Name: "t-svc", QueueGroup: "t"})
	if err != nil {
		t.Fatal(err)
	}
	defer svc.Stop()
	if err := svc.Handle("echo", "t.*.echo", func(m *Msg) { _ = m.Respond(nil, []byte(m.Subject)) }); err != nil {
		t.Fatal(err)
	}
	r, err := c.Request(context.Background(), "t.x.echo", nil, nil)
	if err != nil || string(r.Data) != "t.x.echo" {
		t.Fatalf("echo: got %v, %v", r, err)
	}
}

// TestKVCreateOnceAndSync: a create with a message id is stored at most once whichever key it
// names; deletes return their revision; Sync delivers the live values and then every change in
// revision order, telling a TTL expiry (Expired) from a Delete.
func TestKVCreateOnceAndSync(t *testing.T) {
	c := runJetStream(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	kv, err := c.KeyValue(ctx, KVConfig{Bucket: "once", LimitMarkerTTL: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kv.Put(ctx, "old", []byte("v")); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var got []*KVEntry
	sctx, scancel := context.WithCancel(ctx)
	defer scancel()
	if err := kv.Sync(sctx, ">", func(e *KVEntry) {
		mu.Lock()
		got = append(got, e)
		mu.Unlock()
	}); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	if len(got) != 1 || got[0].Key != "old" || string(got[0].Value) != "v" {
		t.Fatalf("initial entries: got %+v, want old=v", got)
	}
	mu.Unlock()

	rev, dup, err := kv.CreateOnce(ctx, "a", []byte("1"), time.Hour, "grant-x")
	if err != nil || dup {
		t.Fatalf("first create: got rev %d dup %v err %v", rev, dup, err)
	}
	rev2, dup, err := kv.CreateOnce(ctx, "b", []byte("1"), time.Hour, "grant-x")
	if err != nil || !dup || rev2 != rev {
		t.Fatalf("second create with the same id: got rev %d dup %v err %v, want rev %d dup", rev2, dup, err, rev)
	}
	if _, err := kv.Get(ctx, "b"); !errors.Is(err, ErrKeyNotFound) {
		t.Fatalf("key of the duplicate: got %v, want ErrKeyNotFound", err)
	}
	drev, err := kv.Delete(ctx, "a", rev)
	if err != nil || drev <= rev {
		t.Fatalf("delete: got rev %d, %v, want a revision after %d", drev, err, rev)
	}
	if _, err := kv.Delete(ctx, "old", rev); !errors.Is(err, ErrKeyChanged) {
		t.Fatalf("delete at a wrong revision: got %v, want ErrKeyChanged", err)
	}
	// A create on a deleted key succeeds; one on a live key does not.
	if _, err := kv.Create(ctx, "a", []byte("2"), 0); err != nil {
		t.Fatalf("create after delete: %v", err)
	}
	if _, err := kv.Create(ctx, "a", []byte("3"), 0); !errors.Is(err, ErrKeyExists) {
		t.Fatalf("create of a live key: got %v, want ErrKeyExists", err)
	}
	erev, err := kv.Create(ctx, "short", []byte("v"), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	var last []*KVEntry
	for end := time.Now().Add(15 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		mu.Lock()
		last = append(last[:0], got...)
		mu.Unlock()
		if e := last[len(last)-1]; e.Key == "short" && e.Deleted {
			break
		}
		if time.Now().After(end) {
			t.Fatalf("no expiry of short seen; got %d entries", len(last))
		}
	}
	type ev struct {
		key              string
		deleted, expired bool
	}
	var evs []ev
	for i, e := range last {
		if i > 0 && e.Revision <= last[i-1].Revision {
			t.Errorf("entry %d: revision %d after %d, want increasing", i, e.Revision, last[i-1].Revision)
		}
		evs = append(evs, ev{e.Key, e.Deleted, e.Expired})
	}
	want := []ev{{"old", false, false}, {"a", false, false}, {"a", true, false}, {"a", false, false}, {"short", false, false}, {"short", true, true}}
	if fmt.Sprint(evs) != fmt.Sprint(want) {
		t.Errorf("entries: got %v, want %v", evs, want)
	}
	if last[4].Revision != erev {
		t.Errorf("short: got revision %d, want %d", last[4].Revision, erev)
	}
}

// TestKVUnavailable: a bucket that cannot answer fails with code Unavailable (worth repeating),
// not Internal.
func TestKVUnavailable(t *testing.T) {
	c := runJetStream(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	kv, err := c.KeyValue(ctx, KVConfig{Bucket: "gone"})
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	for name, op := range map[string]func() error{
		"put":    func() error { _, err := kv.Put(ctx, "k", nil); return err },
		"get":    func() error { _, err := kv.Get(ctx, "k"); return err },
		"create": func() error { _, err := kv.Create(ctx, "k", nil, 0); return err },
		"delete": func() error { _, err := kv.Delete(ctx, "k", 0); return err },
	} {
		if err := op(); !errors.Is(err, wire.ErrUnavailable) {
			t.Errorf("%s on a closed connection: got %v, want code %s", name, err, wire.Unavailable)
		}
	}
}

// TestKVWatchStuckConsumer: a watch whose consumer is lost (its server died, it was deleted) goes
// on with a new one from where it was: every later change arrives, in order, once.
func TestKVWatchStuckConsumer(t *testing.T) {
	c := runJetStream(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	kv, err := c.KeyValue(ctx, KVConfig{Bucket: "stuck"})
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var got []uint64
	w, err := kv.follow(ctx, ">", jetstream.DeliverLastPerSubjectPolicy, func(e *KVEntry) {
		mu.Lock()
		got = append(got, e.Revision)
		mu.Unlock()
	})
	if err != nil {
		t.Fatal(err)
	}
	first, err := kv.Put(ctx, "a", []byte("1"))
	if err != nil {
		t.Fatal(err)
	}
	for end := time.Now().Add(30 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		mu.Lock()
		n := len(got)
		mu.Unlock()
		if n == 1 {
			break
		}
		if time.Now().After(end) {
			t.Fatal("first change not delivered")
		}
	}
	name, _ := w.consumer.Load().(string)
	if err := kv.js.DeleteConsumer(ctx, "KV_stuck", name); err != nil {
		t.Fatal(err)
	}
	var want []uint64
	want = append(want, first)
	for i := range 5 {
		rev, err := kv.Put(ctx, fmt.Sprintf("k%d", i), []byte("v"))
		if err != nil {
			t.Fatal(err)
		}
		want = append(want, rev)
	}
	for end := time.Now().Add(45 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		mu.Lock()
		g := fmt.Sprint(got)
		mu.Unlock()
		if g == fmt.Sprint(want) {
			return
		}
		if time.Now().After(end) {
			t.Fatalf("delivered %s, want %v", g, want)
		}
	}
}
