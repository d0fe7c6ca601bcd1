package process

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"jsn.dev/jsn/bus/wire"
	"jsn.dev/jsn/drivers/drivertest"
	"jsn.dev/jsn/internal/testkit"
)

// TestCallReadsItsOwnAnswer drives the reading-token hand-offs of conn: a call alone reads its
// own answer; its context ending wakes it out of that read; calls made while a stream or other
// calls are in flight are answered by the background reader; afterwards a lone call leads again.
func TestCallReadsItsOwnAnswer(t *testing.T) {
	if err := exec.Command("/usr/bin/python3", "-c", "import msgpack").Run(); err != nil {
		if os.Getenv("CI") != "" || os.Getuid() == 0 {
			t.Fatalf("/usr/bin/python3 with msgpack is required: %v", err)
		}
		t.Skip("/usr/bin/python3 with msgpack not installed")
	}
	script, _ := filepath.Abs("testdata/drivers.py")
	p := New(drivertest.Env("relay"))
	p.Command = []string{"/usr/bin/python3", "-m", "jsn_driver", script + ":Relay"}
	p.CallTimeout = time.Minute // only the caller's context ends the call below
	ctx := context.Background()
	if err := p.Open(ctx); err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	echo := func(ctx context.Context, m, s string) error {
		args, _ := wire.Marshal([]any{s})
		got, err := p.call(ctx, m, args)
		if err != nil {
			return err
		}
		want, _ := wire.Marshal(s)
		if string(got) != string(want) {
			return errors.New(m + ": wrong answer")
		}
		return nil
	}

	// Alone: the caller holds the token, then gives it back.
	for range 50 {
		if err := echo(ctx, "echo", "x"); err != nil {
			t.Fatal(err)
		}
	}
	if len(p.conn().rtok) != 1 {
		t.Fatal("the reading token was not given back after lone calls")
	}

	// A lone call whose context ends while it reads: woken, DEADLINE_EXCEEDED, CANCEL sent.
	cctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	_, err := p.call(cctx, "never", nil)
	cancel()
	var we *wire.Error
	if !errors.As(err, &we) || we.Code != wire.DeadlineExceeded || !strings.Contains(we.Message, "context deadline exceeded") {
		t.Fatalf("never() with a 200ms context: %v; want DEADLINE_EXCEEDED from the context (not call_timeout)", err)
	}
	if err := echo(ctx, "echo", "after"); err != nil {
		t.Fatalf("call after a woken reader: %v", err)
	}

	// Calls and a byte stream at once: leaders, followers and the background reader mix.
	args, _ := wire.Marshal([]any{int64(8 << 20)})
	s, err := p.conn().openStream("source", args, true)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.conn().send(frameFin, s.id, nil); err != nil { // nothing to upload
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 32)
	for i := range 32 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			m := "echo"
			if i%3 == 0 {
				m = "slow_echo"
			}
			errs <- echo(ctx, m, "v")
		}()
	}
	var got int
	for {
		f, err := s.next(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if f.typ == frameData {
			got += len(f.body)
			s.consumed(len(f.body))
			continue
		}
		if f.typ == frameFin {
			continue
		}
		if f.typ != frameResult {
			t.Fatalf("stream ended with %s: %s", f.typ, f.body)
		}
		break
	}
	if got != 8<<20 {
		t.Fatalf("stream moved %d bytes; want %d", got, 8<<20)
	}
	s.cancel() // done with it, as serveBytes is when it returns
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if err := echo(ctx, "echo", "last"); err != nil {
		t.Fatal(err)
	}
	// The last answer may have been read by the background reader, which gives the token back
	// as it exits, a moment after delivering it.
	testkit.CheckFor(t, 10*time.Second, func() error {
		if len(p.conn().rtok) != 1 {
			return errors.New("the reading token was not given back once nothing was in flight")
		}
		return nil
	})
}
