package storage

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"jsn.dev/jsn/drivers/drivertest"
	"jsn.dev/jsn/exporter"
	"jsn.dev/jsn/exporter/exportertest"
)

func TestParseSizeLimit(t *testing.T) {
	const want = "want a number with an optional unit B, KB, MB, GB, TB, KiB, MiB, GiB, TiB"
	tests := []struct {
		in   string
		want int64
		err  string
	}{
		{"0", 0, ""},
		{"4096", 4096, ""},
		{"12B", 12, ""},
		{"20GiB", 20 << 30, ""},
		{"500MB", 500 << 20, ""},
		{"1.5G", 3 << 29, ""},
		{"1.5 gib", 3 << 29, ""},
		{" 2 TiB ", 2 << 40, ""},
		{"1k", 1 << 10, ""},
		{"0.5", 0, ""}, // rounded down to whole bytes
		{"1.1KiB", 1126, ""},
		{"0.00000001T", 10995, ""},
		{"8388607.5TiB", 1<<63 - 1<<39, ""},
		{"12XB", 0, `invalid size "12XB": ` + want},
		{"", 0, `invalid size "": ` + want},
		{"-1", 0, `invalid size "-1": ` + want},
		{"+1", 0, `invalid size "+1": ` + want},
		{"1.", 0, `invalid size "1.": ` + want},
		{".5G", 0, `invalid size ".5G": ` + want},
		{"1e3", 0, `invalid size "1e3": ` + want},
		{"off", 0, `invalid size "off": ` + want},
		{"1 G B", 0, `invalid size "1 G B": ` + want},
		{"0x10", 0, `invalid size "0x10": ` + want},
		{"8388608T", 0, `invalid size "8388608T": too large`},
		{"99999999999999999999", 0, `invalid size "99999999999999999999": too large`},
	}
	for _, tt := range tests {
		got, err := parseSizeLimit(tt.in)
		if got != tt.want || fmt.Sprint(err) != cmpErr(tt.err) {
			t.Errorf("parseSizeLimit(%q): got %d, %v, want %d, %s", tt.in, got, err, tt.want, cmpErr(tt.err))
		}
	}
}

func cmpErr(s string) string {
	if s == "" {
		return "<nil>"
	}
	return s
}

// FuzzParseSizeLimit: cache_max comes from config files. The parser must not panic, and what it
// accepts is a non-negative count that reads back the same when written in plain bytes.
func FuzzParseSizeLimit(f *testing.F) {
	for _, s := range []string{"0", "10GiB", "500MB", "1.5G", "12XB", "", "-1", "1.", "8191.9999T", "9223372036854775807", "1 kib"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, err := parseSizeLimit(s)
		if err != nil {
			if n != 0 || !strings.HasPrefix(err.Error(), "invalid size ") {
				t.Fatalf("parseSizeLimit(%q): got %d, %v", s, n, err)
			}
			return
		}
		if n < 0 {
			t.Fatalf("parseSizeLimit(%q) = %d, negative", s, n)
		}
		if m, err := parseSizeLimit(strconv.FormatInt(n, 10)); m != n || err != nil {
			t.Fatalf("parseSizeLimit(%q) = %d, but %d reads back as %d, %v", s, n, n, m, err)
		}
	})
}

func TestCacheMaxConfigErrors(t *testing.T) {
	const want = "want a number with an optional unit B, KB, MB, GB, TB, KiB, MiB, GiB, TiB"
	head := "apiVersion: jsn.dev/v1alpha1\nkind: ExporterConfig\nmetadata: {name: lab}\nexport:\n  disk:\n"
	tests := []struct {
		name, cfg, want string
	}{
		{"file", "    type: storage.File\n    config:\n      path: disk.img\n      cache_max: 12XB\n",
			`x.yaml:9:7: export.disk.config.cache_max: invalid size "12XB": ` + want},
		{"mockmux", "    type: storage.MockMux\n    config: {cache_max: -5}\n",
			`x.yaml:7:14: export.disk.config.cache_max: invalid size "-5": ` + want},
		{"sdwire", "    type: storage.SDWire\n    config: {storage_device: /dev/null, cache_max: 10 GiBs}\n",
			`x.yaml:7:41: export.disk.config.cache_max: invalid size "10 GiBs": ` + want},
		{"sdwire no device", "    type: storage.SDWire\n    config: {storage_device: '', cache_max: 1.5X}\n",
			`x.yaml:7:14: export.disk.config.storage_device: must not be empty` + "\n" +
				`x.yaml:7:34: export.disk.config.cache_max: invalid size "1.5X": ` + want},
		{"too large", "    type: storage.File\n    config: {path: d.img, cache_max: 9000000TiB}\n",
			`x.yaml:7:27: export.disk.config.cache_max: invalid size "9000000TiB": too large`},
		{"empty", "    type: storage.File\n    config: {path: d.img, cache_max: ''}\n", ""},
		{"zero", "    type: storage.File\n    config: {path: d.img, cache_max: 0}\n", ""},
		{"plain bytes", "    type: storage.MockMux\n    config: {cache_max: 1073741824}\n", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// ParseConfig reports the export tree's errors with the file's own.
			cfg, err := exporter.ParseConfig("x.yaml", []byte(head+tt.cfg))
			if err == nil {
				_, err = cfg.Build(nil)
			}
			if got := fmt.Sprint(err); got != cmpErr(tt.want) {
				t.Fatalf("got\n%s\nwant\n%s", got, cmpErr(tt.want))
			}
		})
	}
}

// blob returns a distinct raw (uncompressed) 4 KiB image for each i.
func blob(i int) []byte {
	b := image(4096)
	copy(b[600:], fmt.Sprintf("image %d", i))
	return b
}

const cacheConfig = `apiVersion: jsn.dev/v1alpha1
kind: ExporterConfig
metadata: {name: lab}
export:
  disk:
    type: storage.File
    config: {path: $DIR/disk.img, cache_dir: $DIR/cache, cache_max: $MAX}
`

// logBuffer collects an exporter's log lines.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// logged reports whether a line of log holds every part.
func logged(log string, parts ...string) bool {
	for line := range strings.Lines(log) {
		if !slices.ContainsFunc(parts, func(p string) bool { return !strings.Contains(line, p) }) {
			return true
		}
	}
	return false
}

// startCache serves cacheConfig with cache_max max and returns the session, its client, the
// cache directory and the exporter's log.
func startCache(t *testing.T, max string) (*session, *Client, string, *logBuffer) {
	t.Helper()
	logs := &logBuffer{}
	s := &session{exportertest.StartWith(t, strings.ReplaceAll(cacheConfig, "$MAX", max),
		exportertest.Options{Log: slog.New(slog.NewTextHandler(logs, nil))})}
	return s, s.storage("disk"), filepath.Join(s.Dir, "cache"), logs
}

// cached lists the cache entries (without asking the exporter, which would count as a use).
func cached(t *testing.T, dir string) []string {
	t.Helper()
	des, err := os.ReadDir(dir)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Fatal(err)
	}
	var out []string
	for _, de := range des {
		out = append(out, de.Name())
	}
	slices.Sort(out)
	return out
}

func sorted(s ...string) []string { slices.Sort(s); return s }

// age sets the mtime (last use) of a cache entry to d ago.
func age(t *testing.T, dir, name string, d time.Duration) {
	t.Helper()
	when := time.Now().Add(-d)
	if err := os.Chtimes(filepath.Join(dir, name), when, when); err != nil {
		t.Fatal(err)
	}
}

func writeCached(t *testing.T, c *Client, img []byte) Result {
	t.Helper()
	res, err := c.Write(context.Background(), bytes.NewReader(img), WriteOptions{Cache: true})
	if err != nil {
		t.Fatalf("write: %v", err)
	}
	return res
}

func TestCacheEvictsLeastRecentlyUsed(t *testing.T) {
	_, c, dir, logs := startCache(t, "12KiB") // three 4 KiB images
	ctx := context.Background()
	var sha []string
	for i := range 7 {
		sha = append(sha, sum(blob(i)))
	}
	for i := range 3 {
		if res := writeCached(t, c, blob(i)); !res.Cached {
			t.Fatalf("image %d: got %+v, want cached", i, res)
		}
	}
	age(t, dir, sha[0], 3*time.Hour)
	age(t, dir, sha[1], 2*time.Hour)
	age(t, dir, sha[2], time.Hour)

	// write_cached uses image 0: image 1 is now the least recently used.
	if _, err := c.WriteCached(ctx, sha[0], nil); err != nil {
		t.Fatal(err)
	}
	writeCached(t, c, blob(3))
	if got, want := cached(t, dir), sorted(sha[0], sha[2], sha[3]); !slices.Equal(got, want) {
		t.Fatalf("after write_cached 0 and write 3: got %v, want %v", got, want)
	}
	if l := logs.String(); !logged(l, `msg="image cache: evicted"`, "sha256="+sha[1], "bytes=4096", "reason=") {
		t.Fatalf("no eviction of %s logged:\n%s", sha[1], l)
	}

	// has_image=true is a use too: image 2 becomes more recent than 0 and 3.
	age(t, dir, sha[0], 3*time.Hour)
	age(t, dir, sha[2], 2*time.Hour)
	age(t, dir, sha[3], time.Hour)
	if has, err := c.HasImage(ctx, sha[2]); err != nil || !has {
		t.Fatalf("has_image: got %v, %v, want true", has, err)
	}
	// Two new images: the two least recently used (0, then 3) go, one per write.
	writeCached(t, c, blob(4))
	if got, want := cached(t, dir), sorted(sha[2], sha[3], sha[4]); !slices.Equal(got, want) {
		t.Fatalf("after has_image 2 and write 4: got %v, want %v", got, want)
	}
	age(t, dir, sha[4], 30*time.Minute)
	writeCached(t, c, blob(5))
	if got, want := cached(t, dir), sorted(sha[2], sha[4], sha[5]); !slices.Equal(got, want) {
		t.Fatalf("after write 5: got %v, want %v", got, want)
	}
	if has, err := c.HasImage(ctx, sha[3]); err != nil || has {
		t.Fatalf("has_image of an evicted image: got %v, %v, want false", has, err)
	}
	// An evicted image is gone for write_cached too, and can come back.
	if _, err := c.WriteCached(ctx, sha[0], nil); err == nil {
		t.Fatal("write_cached of an evicted image succeeded")
	}
	writeCached(t, c, blob(0))
	if got := cached(t, dir); len(got) != 3 || !slices.Contains(got, sha[0]) {
		t.Fatalf("after writing 0 again: got %v, want three entries with %s", got, sha[0])
	}
}

// blockingSend blocks the first progress item of a flash until release is closed.
type blockingSend struct {
	entered, release chan struct{}
	n                int
}

func (b *blockingSend) send(any) error {
	if b.n++; b.n == 1 {
		close(b.entered)
		<-b.release
	}
	return nil
}

func TestCacheKeepsEntryInUse(t *testing.T) {
	s, c, dir, _ := startCache(t, "8KiB") // two 4 KiB images
	a, b := blob(1), blob(2)
	writeCached(t, c, a)
	writeCached(t, c, b)
	age(t, dir, sum(a), 2*time.Hour)
	age(t, dir, sum(b), time.Hour)

	// A second driver on the same cache flashes image a and stalls mid-flash.
	env := drivertest.Env("")
	env.Dir = s.Dir
	other := NewFile(env).(*File)
	other.Path, other.CacheDir, other.CacheMax = "other.img", "cache", "8KiB"
	if err := other.Validate(); err != nil {
		t.Fatal(err)
	}
	if err := other.Open(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	bs := &blockingSend{entered: make(chan struct{}), release: make(chan struct{})}
	unblock := sync.OnceFunc(func() { close(bs.release) })
	defer unblock() // before other.Close, which waits for the flash
	done := make(chan error, 1)
	go func() {
		_, err := other.st.WriteCached(context.Background(), sum(a), func(n, total int64) {
			_ = bs.send(map[string]any{"bytes": n, "total": total})
		})
		done <- err
	}()
	select {
	case <-bs.entered:
	case err := <-done:
		t.Fatalf("flash from cache ended early: %v", err)
	}
	// Keep a the least recently used even though the flash touched it.
	age(t, dir, sum(a), 2*time.Hour)

	d := blob(3)
	writeCached(t, c, d)
	if got, want := cached(t, dir), sorted(sum(a), sum(d)); !slices.Equal(got, want) {
		t.Fatalf("while a is being flashed: got %v, want %v (b evicted, a kept)", got, want)
	}
	unblock()
	if err := <-done; err != nil {
		t.Fatalf("flash from cache: %v", err)
	}
	got, err := os.ReadFile(filepath.Join(s.Dir, "other.img"))
	if err != nil || !bytes.Equal(got, a) {
		t.Fatalf("flash from cache: read back %d bytes, %v; want image a", len(got), err)
	}

	// Once the flash is over, a is fair game again.
	age(t, dir, sum(a), 2*time.Hour)
	e := blob(4)
	writeCached(t, c, e)
	if got, want := cached(t, dir), sorted(sum(d), sum(e)); !slices.Equal(got, want) {
		t.Fatalf("after the flash: got %v, want %v", got, want)
	}
}

func TestCacheTooLargeImageNotKept(t *testing.T) {
	_, c, dir, logs := startCache(t, "6000")
	small, big := blob(1), append(blob(2), blob(3)...)
	writeCached(t, c, small)
	res := writeCached(t, c, big)
	if res.Cached || res.Written != int64(len(big)) || res.SHA256 != sum(big) {
		t.Fatalf("got %+v, want written %d, sha256 %s, not cached", res, len(big), sum(big))
	}
	if got, want := cached(t, dir), []string{sum(small)}; !slices.Equal(got, want) {
		t.Fatalf("cache holds %v, want %v (the small image only, no temporaries)", got, want)
	}
	if l := logs.String(); !logged(l, `msg="image not cached: larger than cache_max"`, "sha256="+sum(big), "cache_max=6000") {
		t.Fatalf("too-large image not logged:\n%s", l)
	}
	if got := readBack(t, c); !bytes.Equal(got, big) {
		t.Fatal("the too-large image was not flashed")
	}
}

func TestCacheMaxZeroIsUnlimited(t *testing.T) {
	_, c, dir, _ := startCache(t, "0")
	var want []string
	for i := range 5 {
		img := blob(i)
		if res := writeCached(t, c, img); !res.Cached {
			t.Fatalf("image %d: got %+v, want cached", i, res)
		}
		want = append(want, sum(img))
		age(t, dir, sum(img), time.Duration(10-i)*time.Hour)
	}
	if got := cached(t, dir); !slices.Equal(got, sorted(want...)) {
		t.Fatalf("got %v, want all of %v", got, want)
	}
}

func TestCacheTrimmedOnOpen(t *testing.T) {
	dir := t.TempDir()
	cdir := filepath.Join(dir, "cache")
	if err := os.MkdirAll(cdir, 0o755); err != nil {
		t.Fatal(err)
	}
	put := func(name string, size int, ago time.Duration) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(cdir, name), make([]byte, size), 0o644); err != nil {
			t.Fatal(err)
		}
		age(t, cdir, name, ago)
	}
	old, mid, young := strings.Repeat("a", 64), strings.Repeat("b", 64), strings.Repeat("c", 64)
	put(old, 4096, 5*time.Hour)
	put(mid, 4096, 3*time.Hour)
	put(young, 4096, time.Hour)
	put(".upload-stale", 100000, 25*time.Hour)
	put(".upload-live", 100000, 23*time.Hour) // an upload in progress: not counted, not removed
	put("README", 100000, 100*time.Hour)      // not an entry: left alone
	put(strings.Repeat("D", 64), 100000, 100*time.Hour)

	cfg := strings.ReplaceAll(strings.ReplaceAll(cacheConfig, "$MAX", "8KiB"), "$DIR", dir)
	c, err := exporter.ParseConfig(filepath.Join(dir, "exporter.yaml"), []byte(cfg))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	l, err := exporter.StartLocal(ctx, c, exporter.LocalOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	want := sorted(mid, young, ".upload-live", "README", strings.Repeat("D", 64))
	if got := cached(t, cdir); !slices.Equal(got, want) {
		t.Fatalf("after open: got %v, want %v", got, want)
	}
}
