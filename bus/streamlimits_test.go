package bus

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"jsn.dev/jsn/bus/wire"
)

// TestStreamOversizedDataFrameResets: a DATA frame above the bus limit (128 KiB; a 512 KiB one
// here, as a client written from the docs sent) resets the stream with INVALID_ARGUMENT naming
// the sizes, rather than being accepted.
func TestStreamOversizedDataFrameResets(t *testing.T) {
	s := runServer(t)
	_, es, _ := streamPair(t, s)
	raw := dial(t, s, "client")
	big := make([]byte, 512<<10)
	if err := raw.Publish(wire.StreamSubject("e1", wire.NoLease, es.ID()), nil, wire.AppendFrame(nil, wire.Frame{Type: wire.FrameData, Data: big})); err != nil {
		t.Fatal(err)
	}
	select {
	case <-es.Context().Done():
	case <-time.After(10 * time.Second):
		t.Fatal("the exporter side accepted a 512 KiB DATA frame")
	}
	got := context.Cause(es.Context())
	if !errors.Is(got, wire.ErrInvalidArgument) || !strings.Contains(got.Error(), "524288 bytes exceeds the limit of 131072") {
		t.Fatalf("got %v, want INVALID_ARGUMENT naming 524288 and 131072", got)
	}
	// 128 KiB exactly is fine.
	_, es2, _ := streamPair(t, s)
	if err := raw.Publish(wire.StreamSubject("e1", wire.NoLease, es2.ID()), nil, wire.AppendFrame(nil, wire.Frame{Type: wire.FrameData, Data: big[:128<<10]})); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 128<<10)
	n := 0
	for n < len(buf) {
		k, err := es2.Read(buf[n:])
		if err != nil {
			t.Fatalf("a 128 KiB frame: read after %d bytes: %v", n, err)
		}
		n += k
	}
}

// TestStreamCloseSendsCancelled: a side that closes a stream before its end tells the peer with
// RST CANCELLED (the code a client sends to stop a stream early).
func TestStreamCloseSendsCancelled(t *testing.T) {
	s := runServer(t)
	cs, es, _ := streamPair(t, s)
	cs.Close()
	select {
	case <-es.Context().Done():
	case <-time.After(5 * time.Second):
		t.Fatal("exporter side not cancelled after client Close")
	}
	if got := context.Cause(es.Context()); !errors.Is(got, wire.ErrCancelled) {
		t.Fatalf("got %v, want CANCELLED", got)
	}
}

// TestDirectUnixSocketMode: the direct stream socket of a local session is 0600, like bus.sock.
func TestDirectUnixSocketMode(t *testing.T) {
	path := filepath.Join(t.TempDir(), "streams.sock")
	d, err := ListenDirect("unix:"+path, "")
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if m := fi.Mode().Perm(); m != 0o600 {
		t.Fatalf("streams.sock mode %o, want 600", m)
	}
}
