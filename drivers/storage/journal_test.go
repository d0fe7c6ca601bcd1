package storage

import (
	"bytes"
	"context"
	"errors"

	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"jsn.dev/jsn/drivers/drivertest"
)

// inPlaceFile returns a storage.File on a regular file written in place, as a block device is.
func inPlaceFile(t *testing.T, dir string) *File {
	t.Helper()
	env := drivertest.Env("")
	env.Dir = dir
	f := NewFile(env).(*File)
	f.Path, f.CacheDir = "card.img", "cache"
	if err := f.Validate(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(f.st.path); err != nil { // a device is there before anything is written
		if err := os.WriteFile(f.st.path, make([]byte, 16<<20), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	f.st.inPlace = true
	if err := f.Open(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = f.Close() })
	return f
}

// brokenUpload gives n bytes, then fails as a client that vanished.
type brokenUpload struct{ n int }

func (b *brokenUpload) Read(p []byte) (int, error) {
	if b.n == 0 {
		return 0, errors.New("upload broke")
	}
	k := min(len(p), b.n)
	clear(p[:k])
	b.n -= k
	return k, nil
}

// TestInterruptedFlashInPlace: a flash written in place that does not finish leaves state()
// saying the content is incomplete, also for a new driver on the same target (an exporter
// restarted), and the next flash says it replaced that; once a flash completes, state() is
// "complete" again.
func TestInterruptedFlashInPlace(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	f := inPlaceFile(t, dir)
	if st, err := f.st.State(ctx); err != nil || st != "complete" {
		t.Fatalf("state before any flash: got %q, %v, want complete", st, err)
	}
	_, err := f.st.Write(ctx, &brokenUpload{n: 3 << 20}, Upload{Size: 8 << 20})
	if err == nil || !strings.Contains(err.Error(), "incomplete") {
		t.Fatalf("broken flash: got %v, want an error saying the content is incomplete", err)
	}
	again := inPlaceFile(t, dir) // the exporter restarted
	st, err := again.st.State(ctx)
	if err != nil || !strings.HasPrefix(st, "incomplete: ") || !strings.Contains(st, "upload broke") || !strings.Contains(st, "from an upload of "+Bytes(8<<20)) {
		t.Fatalf("state after a broken flash: got %q, %v, want incomplete, with the size and why", st, err)
	}
	res, err := again.st.Write(ctx, bytes.NewReader(make([]byte, 1<<20)), Upload{Size: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(res.Note, "replaced the incomplete content") {
		t.Errorf("next flash: note %q, want it to say it replaced incomplete content", res.Note)
	}
	if got := res.Map()["note"]; got != res.Note {
		t.Errorf("result on the wire: note %v, want %q", got, res.Note)
	}
	if st, err := again.st.State(ctx); err != nil || st != "complete" {
		t.Fatalf("state after a complete flash: got %q, %v, want complete", st, err)
	}
	res, err = again.st.Write(ctx, bytes.NewReader(make([]byte, 1<<20)), Upload{Size: 1 << 20})
	if err != nil || res.Note != "" {
		t.Fatalf("flash after a complete one: note %q, %v, want none", res.Note, err)
	}
}

// TestInterruptedFlashState: a journal left by an exporter killed mid-flash (no error recorded)
// reads as a flash that did not finish; the state method is served.
func TestInterruptedFlashState(t *testing.T) {
	dir := t.TempDir()
	f := inPlaceFile(t, dir)
	j := f.st.startJournal(200 << 20)
	j.progress(86 << 20)
	// killed here: no failed, no complete
	st, err := inPlaceFile(t, dir).st.State(context.Background())
	want := Bytes(86<<20) + " written, from an upload of " + Bytes(200<<20)
	if err != nil || !strings.Contains(st, want) || !strings.Contains(st, "did not finish") {
		t.Fatalf("state: got %q, %v, want %q, did not finish", st, err, want)
	}
	found := false
	for _, m := range f.Methods() {
		found = found || m.Name == "state"
	}
	if !found {
		t.Error("storage.File serves no state method")
	}
}

// TestStaleFlashTempsRemoved: opening a file target removes the temporary files of flashes
// that no writer holds any more (an exporter stopped during a flash), not those being written.
func TestStaleFlashTempsRemoved(t *testing.T) {
	dir := t.TempDir()
	stale := filepath.Join(dir, ".card.img.jsn-1234")
	busy := filepath.Join(dir, ".card.img.jsn-5678")
	other := filepath.Join(dir, ".other.img.jsn-1")
	for _, p := range []string{stale, busy, other} {
		if err := os.WriteFile(p, []byte("part of an image"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	held, err := os.Open(busy)
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	if err := syscall.Flock(int(held.Fd()), syscall.LOCK_EX); err != nil {
		t.Fatal(err)
	}
	env := drivertest.Env("")
	env.Dir = dir
	f := NewFile(env).(*File)
	f.Path, f.CacheDir = "card.img", "cache"
	if err := f.Open(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for p, want := range map[string]bool{stale: false, busy: true, other: true} {
		_, err := os.Stat(p)
		if got := err == nil; got != want {
			t.Errorf("%s: exists %v, want %v", filepath.Base(p), got, want)
		}
	}

}
