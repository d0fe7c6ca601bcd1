package bus

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"
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
	if err := kv.Delete(ctx, "k", rev); err != nil {
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
