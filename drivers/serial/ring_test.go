package serial

import (
	"bytes"
	"testing"
	"time"
)

func TestRing(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	at := func(s float64) time.Time { return t0.Add(time.Duration(s * float64(time.Second))) }
	type write struct {
		t    float64
		data string
	}
	tests := []struct {
		name   string
		max    int
		writes []write
		since  float64 // seconds after t0; <0 = everything
		limit  int
		want   string
	}{
		{"all", 100, []write{{0, "ab"}, {5, "cd"}}, -1, 100, "abcd"},
		{"since drops old chunks", 100, []write{{0, "old"}, {5, "new"}}, 3, 100, "new"},
		{"merged chunk counts by its end", 100, []write{{0, "a"}, {0.5, "b"}}, 0.4, 100, "ab"},
		{"capacity drops oldest bytes", 4, []write{{0, "abc"}, {5, "def"}}, -1, 100, "cdef"},
		{"a write larger than the ring", 4, []write{{0, "xy"}, {5, "abcdefgh"}}, -1, 100, "efgh"},
		{"limit keeps newest", 100, []write{{0, "abc"}, {5, "def"}}, -1, 4, "cdef"},
		{"nothing new", 100, []write{{0, "abc"}}, 10, 100, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newRing(tt.max)
			total := 0
			for _, w := range tt.writes {
				r.write(at(w.t), []byte(w.data))
				total += len(w.data)
			}
			var since time.Time
			if tt.since >= 0 {
				since = at(tt.since)
			}
			if got := r.read(since, tt.limit); string(got) != tt.want {
				t.Fatalf("got %q, want %q", got, tt.want)
			}
			held, all := r.stats()
			if held > tt.max || all != int64(total) {
				t.Fatalf("stats: got %d held, %d total, want at most %d, %d", held, all, tt.max, total)
			}
		})
	}
}

// TestRingBounded: many small writes stay within capacity and keep the newest bytes in order.
func TestRingBounded(t *testing.T) {
	r := newRing(4096)
	var all bytes.Buffer
	now := time.Now()
	for i := range 20000 {
		b := []byte{byte('a' + i%26)}
		all.Write(b)
		r.write(now.Add(time.Duration(i)*time.Millisecond), b)
	}
	got := r.read(time.Time{}, 1<<20)
	if want := all.Bytes()[all.Len()-4096:]; !bytes.Equal(got, want) {
		t.Fatalf("got %d bytes, want the newest 4096 in order", len(got))
	}
	if n := len(r.chunks); n > 25 {
		t.Fatalf("got %d chunks for 20 s of output, want about one a second", n)
	}
}

func TestRingClear(t *testing.T) {
	r := newRing(4096)
	now := time.Now()
	r.write(now, []byte("the previous holder's password\n"))
	r.clear()
	if b := r.read(time.Time{}, MaxLog); len(b) != 0 {
		t.Fatalf("after clear: got %q, want nothing", b)
	}
	held, total := r.stats()
	if held != 0 || total != 31 {
		t.Fatalf("after clear: held %d, total %d; want 0 and the 31 bytes ever written", held, total)
	}
	r.write(now, []byte("new"))
	if b := r.read(time.Time{}, MaxLog); string(b) != "new" {
		t.Fatalf("after clear and a write: got %q", b)
	}
}
