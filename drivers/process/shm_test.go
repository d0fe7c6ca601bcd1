package process

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"jsn.dev/jsn/bus/wire"
	"jsn.dev/jsn/drivers/drivertest"
	"jsn.dev/jsn/internal/testkit"
)

// TestShmByteStreams: the Python SDK takes the shared memory INIT offers; byte streams out of
// it use the slots (more streams than slots go through the socket), every byte arrives intact
// through the ring's wrap-arounds, and every slot is free again once its streams have ended,
// cancelled ones included.
func TestShmByteStreams(t *testing.T) {
	if err := exec.Command("/usr/bin/python3", "-c", "import msgpack").Run(); err != nil {
		if os.Getenv("CI") != "" || os.Getuid() == 0 {
			t.Fatalf("/usr/bin/python3 with msgpack is required: %v", err)
		}
		t.Skip("/usr/bin/python3 with msgpack not installed")
	}
	script, _ := filepath.Abs("testdata/drivers.py")
	p := New(drivertest.Env("relay"))
	p.Command = []string{"/usr/bin/python3", "-m", "jsn_driver", script + ":Relay"}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := p.Open(ctx); err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	c := p.conn()
	if !c.hello.Shm || c.shm == nil {
		t.Fatalf("HELLO shm = %v, mapping %d bytes: the SDK did not take the shared memory", c.hello.Shm, len(c.shm))
	}

	// shmSlots+2 source streams at once, each of 2.5 slots (the ring wraps twice).
	const size = 5 * window / 2
	args, _ := wire.Marshal([]any{int64(size)})
	var streams []*stream
	for range shmSlots + 2 {
		s, err := c.openStream("source", args, true)
		if err != nil {
			t.Fatal(err)
		}
		if err := c.send(frameFin, s.id, nil); err != nil { // nothing to upload
			t.Fatal(err)
		}
		streams = append(streams, s)
	}
	for i, s := range streams {
		if got, want := s.slot != 0, i < shmSlots; got != want {
			t.Fatalf("stream %d: has a slot = %v, want %v (%d slots)", i, got, want, shmSlots)
		}
	}
	var wg sync.WaitGroup
	errs := make(chan error, len(streams))
	for i, s := range streams {
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer s.cancel()
			errs <- readSource(ctx, s, size, fmt.Sprintf("stream %d (slot %d)", i, s.slot))
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	slotsFree(t, c)

	// A stream cancelled halfway: its slot comes back once the program has ended it.
	big, _ := wire.Marshal([]any{int64(1 << 40)})
	s, err := c.openStream("source", big, true)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.send(frameFin, s.id, nil); err != nil {
		t.Fatal(err)
	}
	if s.slot == 0 {
		t.Fatal("no slot for a stream while all slots are free")
	}
	for got := 0; got < 3*window; {
		f, err := s.next(ctx)
		if err != nil || f.typ != frameData || !f.shm {
			t.Fatalf("cancelled stream: frame %s (shm %v), %v; want DATA from the slot", f.typ, f.shm, err)
		}
		got += len(f.body)
		s.consumed(len(f.body))
	}
	s.cancel()
	slotsFree(t, c)
	if _, err := p.call(ctx, "on", nil); err != nil {
		t.Fatalf("call after the streams: %v", err)
	}
}

// readSource reads a source stream of the test driver to its end: size bytes, byte i = i%256.
func readSource(ctx context.Context, s *stream, size int, what string) error {
	got := 0
	for {
		f, err := s.next(ctx)
		if err != nil {
			return fmt.Errorf("%s: %v after %d bytes", what, err, got)
		}
		switch f.typ {
		case frameData:
			if f.shm != (s.slot != 0) {
				return fmt.Errorf("%s: DATA from shared memory = %v", what, f.shm)
			}
			for j, b := range f.body {
				if b != byte(got+j) {
					return fmt.Errorf("%s: byte %d = %d, want %d", what, got+j, b, byte(got+j))
				}
			}
			got += len(f.body)
			s.consumed(len(f.body))
		case frameFin:
		case frameResult:
			if got != size {
				return fmt.Errorf("%s: %d bytes, want %d", what, got, size)
			}
			return nil
		default:
			return fmt.Errorf("%s: ended with %s %q", what, f.typ, f.body)
		}
	}
}

func slotsFree(t *testing.T, c *conn) {
	t.Helper()
	testkit.CheckFor(t, 10*time.Second, func() error {
		c.mu.Lock()
		defer c.mu.Unlock()
		for i, sl := range c.slots {
			if sl.id != 0 {
				return fmt.Errorf("slot %d still held by stream %d (%d users)", i, sl.id, sl.refs)
			}
		}
		return nil
	})
}

// TestShmDataErrors: an SHMDATA frame the program had no right to send is a protocol error
// naming what was wrong.
func TestShmDataErrors(t *testing.T) {
	c := &conn{shm: make([]byte, shmSlots*window), streams: map[uint32]*stream{}, pending: map[uint32]*waiter{}}
	s := newStream(c)
	s.id = 7
	c.streams[7] = s
	shmData := func(n uint64) error { return c.route(frame{typ: frameShmData, id: 7, body: encodeUint(n)}) }

	for _, tt := range []struct {
		slot int
		n    uint64
		want string
	}{
		{0, 10, "SHMDATA frame on stream 7, which has no shared memory slot"},
		{2, 0, "SHMDATA frame of 0 bytes on stream 7: its slot has 8388608 bytes left before its end (a write must not wrap)"},
		{2, window + 1, "SHMDATA frame of 8388609 bytes on stream 7: its slot has 8388608 bytes left before its end (a write must not wrap)"},
		{2, 1 << 63, "SHMDATA frame of 9223372036854775808 bytes on stream 7: its slot has 8388608 bytes left before its end (a write must not wrap)"},
	} {
		s.slot = tt.slot
		if err := shmData(tt.n); err == nil || err.Error() != tt.want {
			t.Errorf("SHMDATA %d on slot %d: %v, want %s", tt.n, tt.slot, err, tt.want)
		}
	}
	if err := c.route(frame{typ: frameShmData, id: 7, body: []byte{0xa1, 'x'}}); err == nil || err.Error() != "SHMDATA frame: want a non-negative integer, got x" {
		t.Errorf("SHMDATA with a string body: %v", err)
	}

	// Writes up to the end of the slot, then from its start again.
	s.slot = 2
	binary.BigEndian.PutUint32(c.shm[window+window-4:], 0xdeadbeef)
	if err := shmData(window - 4); err != nil {
		t.Fatal(err)
	}
	if err := shmData(8); err == nil || err.Error() != "SHMDATA frame of 8 bytes on stream 7: its slot has 4 bytes left before its end (a write must not wrap)" {
		t.Errorf("wrapping write: %v", err)
	}
	if err := shmData(4); err != nil {
		t.Fatal(err)
	}
	// Credit still bounds the bytes in flight: the slot is full (window bytes granted).
	if err := shmData(1); err == nil || err.Error() != "DATA frame of 1 bytes on stream 7 exceeds the 0 bytes of credit granted" {
		t.Errorf("SHMDATA beyond the credit: %v", err)
	}
	f1, _ := s.next(context.Background())
	f2, _ := s.next(context.Background())
	if !f1.shm || len(f1.body) != window-4 || cap(f1.body) != window-4 || &f1.body[0] != &c.shm[window] {
		t.Errorf("first write: %d bytes (cap %d) at the wrong place", len(f1.body), cap(f1.body))
	}
	if binary.BigEndian.Uint32(f2.body) != 0xdeadbeef || &f2.body[0] != &c.shm[2*window-4] {
		t.Errorf("second write: %x", f2.body)
	}

	// A stream already gone (cancelled): its late SHMDATA is dropped, not an error.
	delete(c.streams, 7)
	if err := shmData(10); err != nil {
		t.Errorf("SHMDATA on a cancelled stream: %v", err)
	}
}

// TestShmSealed: the program cannot resize the shared memory under the exporter's mapping
// (reads past a shrunk file would fault in the exporter).
func TestShmSealed(t *testing.T) {
	mem, f := newShm()
	if f == nil {
		t.Fatal("no shared memory on this kernel (memfd_create with sealing)")
	}
	defer f.Close()
	defer unix.Munmap(mem)
	if len(mem) != shmSlots*window {
		t.Fatalf("mapping of %d bytes, want %d", len(mem), shmSlots*window)
	}
	for _, size := range []int64{0, shmSlots*window - 1, 2 * shmSlots * window} {
		if err := unix.Ftruncate(int(f.Fd()), size); !errors.Is(err, unix.EPERM) {
			t.Errorf("ftruncate to %d: %v, want EPERM", size, err)
		}
	}
	if _, err := unix.FcntlInt(f.Fd(), unix.F_ADD_SEALS, unix.F_SEAL_WRITE); !errors.Is(err, unix.EPERM) {
		t.Errorf("adding a seal: %v, want EPERM (sealed against more seals)", err)
	}
}

// TestShmCrashMidStream: a program that dies in the middle of a byte stream through its slot
// ends the stream with its error; the exporter unmaps that run's memory once the stream is done,
// and the restarted program gets memory of its own.
func TestShmCrashMidStream(t *testing.T) {
	if err := exec.Command("/usr/bin/python3", "-c", "import msgpack").Run(); err != nil {
		if os.Getenv("CI") != "" || os.Getuid() == 0 {
			t.Fatalf("/usr/bin/python3 with msgpack is required: %v", err)
		}
		t.Skip("/usr/bin/python3 with msgpack not installed")
	}
	script, _ := filepath.Abs("testdata/drivers.py")
	p := New(drivertest.Env("relay"))
	p.Command = []string{"/usr/bin/python3", "-m", "jsn_driver", script + ":Relay"}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := p.Open(ctx); err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	c := p.conn()
	big, _ := wire.Marshal([]any{int64(1 << 40)})
	s, err := c.openStream("source", big, true)
	if err != nil {
		t.Fatal(err)
	}
	if s.slot == 0 {
		t.Fatal("no slot")
	}
	for got := 0; got < window; {
		f, err := s.next(ctx)
		if err != nil || !f.shm {
			t.Fatalf("frame %s (shm %v): %v", f.typ, f.shm, err)
		}
		got += len(f.body)
		s.consumed(len(f.body))
	}
	c.kill("killed by the test")
	for {
		f, err := s.next(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if f.typ == frameError {
			if err := decodeErr(f.body); err.Error() != "killed by the test" {
				t.Fatalf("stream ended with %v", err)
			}
			break
		}
	}
	s.cancel()
	<-c.exited
	testkit.CheckFor(t, 20*time.Second, func() error {
		nc := p.conn()
		if nc == nil || nc == c {
			return errors.New("not restarted yet")
		}
		maps, err := os.ReadFile("/proc/self/maps")
		if err != nil {
			return err
		}
		if n := strings.Count(string(maps), "jsn-driver-streams"); n != 1 {
			return fmt.Errorf("%d mappings of driver stream memory, want 1 (the restarted program's)", n)
		}
		return nil
	})
	if _, err := p.call(ctx, "on", nil); err != nil {
		t.Fatalf("call after the restart: %v", err)
	}
}
