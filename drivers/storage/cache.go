package storage

import (
	"cmp"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"jsn.dev/jsn/bus/wire"
)

// DefaultCacheDir returns where exporters keep cached images when cache_dir is not set:
// $XDG_CACHE_HOME/jsn/images (os.UserCacheDir), or /var/cache/jsn/images when the user has no
// cache directory (a system service without a home).
func DefaultCacheDir() string {
	if d, err := os.UserCacheDir(); err == nil && d != "" {
		return filepath.Join(d, "jsn", "images")
	}
	return "/var/cache/jsn/images"
}

// DefaultCacheMax is the cache_max of a driver that does not set it.
const DefaultCacheMax = "10GiB"

// staleTemp is the age after which a temporary upload file in the cache is abandoned and removed.
const staleTemp = 24 * time.Hour

// tempPrefix starts the name of the temporary file of an upload in progress.
const tempPrefix = ".upload-"

// cache is a content-addressed image store: one file per image, named by the lower-case hex
// SHA-256 of its bytes as uploaded (compressed). It is created on first use. When its entries
// hold more than max bytes, evict removes the least recently used ones (by mtime, which use
// refreshes), sparing the entries being read (see acquire).
type cache struct {
	dir string
	max int64 // most bytes the entries may hold; 0 = unlimited
	log *slog.Logger
}

// inUse counts the readers of each cache entry (by file path) in this process, across every
// driver: eviction spares them. Eviction itself is serialised by the same lock, per process.
var inUse = struct {
	sync.Mutex
	n map[string]int
}{n: map[string]int{}}

// normSHA checks that s is a hex SHA-256 and returns it in lower case.
func normSHA(op, s string) (string, error) {
	s = strings.ToLower(strings.TrimSpace(s))
	if b, err := hex.DecodeString(s); err != nil || len(b) != 32 {
		return "", wire.Errorf(wire.InvalidArgument, "%s: sha256 %q is not 64 hex digits", op, s)
	}
	return s, nil
}

// isEntryName reports whether name is a cache entry's: 64 lower-case hex digits.
func isEntryName(name string) bool {
	if len(name) != 64 {
		return false
	}
	for i := 0; i < len(name); i++ {
		if c := name[i]; (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// key names the cache entry of the image sha (normalised) for holder (driver.Holder): the image's
// sha itself for "" (a local session, the lab's hooks), else a hash of holder and sha. So one
// lease holder can neither find (has_image) nor use (write_cached, then read) an image another
// holder uploaded, even knowing its SHA-256; the same holder finds it again in a later lease.
// The content is verified against sha whenever an entry is used.
func key(holder, sha string) string {
	if holder == "" {
		return sha
	}
	h := sha256.Sum256([]byte("jsn image cache\x00" + holder + "\x00" + sha))
	return hex.EncodeToString(h[:])
}

// path returns the file of the entry with the given key.
func (c *cache) path(key string) string { return filepath.Join(c.dir, key) }

// has reports whether the cache holds a regular file for sha.
func (c *cache) has(sha string) bool {
	st, err := os.Stat(c.path(sha))
	return err == nil && st.Mode().IsRegular()
}

// touch marks the entry sha as used now, for eviction order.
func (c *cache) touch(sha string) {
	now := time.Now()
	if err := os.Chtimes(c.path(sha), now, now); err != nil && !errors.Is(err, os.ErrNotExist) {
		c.logger().Warn("image cache: mark entry used", "sha256", sha, "err", err)
	}
}

// acquire marks the entry sha as being read, so that eviction keeps it until release is called.
func (c *cache) acquire(sha string) (release func()) {
	p := c.path(sha)
	inUse.Lock()
	inUse.n[p]++
	inUse.Unlock()
	var once sync.Once
	return func() {
		once.Do(func() {
			inUse.Lock()
			if inUse.n[p]--; inUse.n[p] <= 0 {
				delete(inUse.n, p)
			}
			inUse.Unlock()
		})
	}
}

func (c *cache) logger() *slog.Logger {
	if c.log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return c.log
}

// create returns a new temporary file (0600) in the cache directory, creating the directory
// (0700: what lease holders upload is theirs).
func (c *cache) create() (*os.File, error) {
	if err := os.MkdirAll(c.dir, 0o700); err != nil {
		return nil, fmt.Errorf("cache: %w", err)
	}
	c.private()
	f, err := os.CreateTemp(c.dir, tempPrefix+"*")
	if err != nil {
		return nil, fmt.Errorf("cache: %w", err)
	}
	return f, nil
}

// commit syncs and closes tmp and renames it to the entry of sha. On failure tmp is removed.
func (c *cache) commit(tmp *os.File, sha string) error {
	err := tmp.Sync()
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), c.path(sha))
	}
	if err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("cache: store %s: %w", sha, err)
	}
	return nil
}

// discard closes and removes tmp.
func discard(tmp *os.File) {
	if tmp != nil {
		tmp.Close()
		os.Remove(tmp.Name())
	}
}

// private makes the cache directory 0700 if it is not (one made by an older jsn was 0755).
func (c *cache) private() {
	if st, err := os.Stat(c.dir); err == nil && st.IsDir() && st.Mode().Perm() != 0o700 {
		if err := os.Chmod(c.dir, 0o700); err != nil {
			c.logger().Warn("image cache: make the directory private (0700)", "dir", c.dir, "err", err)
		}
	}
}

// entry is one cache file as eviction sees it.
type entry struct {
	name string
	size int64
	used time.Time // mtime
}

// evict removes temporary uploads older than staleTemp and then, while the entries hold more
// than max bytes, the least recently used entry that is neither keep (the one just written; may
// be "") nor being read. A missing cache directory is an empty cache. Each removal is logged.
func (c *cache) evict(keep string) error {
	c.private()
	inUse.Lock()
	defer inUse.Unlock()
	des, err := os.ReadDir(c.dir)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil
		}
		return fmt.Errorf("cache: %w", err)
	}
	log := c.logger()
	now := time.Now()
	var entries []entry
	var total int64
	var errs []error
	for _, de := range des {
		name := de.Name()
		isTemp := strings.HasPrefix(name, tempPrefix)
		if !isTemp && !isEntryName(name) {
			continue // not ours
		}
		info, err := de.Info()
		if err != nil {
			if !errors.Is(err, os.ErrNotExist) {
				errs = append(errs, fmt.Errorf("cache: %w", err))
			}
			continue
		}
		if !info.Mode().IsRegular() {
			continue
		}
		if info.Mode().Perm() != 0o600 { // made by an older jsn
			if err := os.Chmod(filepath.Join(c.dir, name), 0o600); err != nil && !errors.Is(err, os.ErrNotExist) {
				errs = append(errs, fmt.Errorf("cache: make %s private: %w", name, err))
			}
		}
		if isTemp {
			if age := now.Sub(info.ModTime()); age > staleTemp {
				if err := os.Remove(filepath.Join(c.dir, name)); err != nil && !errors.Is(err, os.ErrNotExist) {
					errs = append(errs, fmt.Errorf("cache: remove stale temporary: %w", err))
					continue
				}
				log.Info("image cache: removed stale temporary upload", "file", name, "bytes", info.Size(),
					"reason", fmt.Sprintf("unchanged for %s (more than %s)", age.Round(time.Minute), staleTemp))
			}
			continue
		}
		entries = append(entries, entry{name: name, size: info.Size(), used: info.ModTime()})
		total += info.Size()
	}
	if c.max <= 0 || total <= c.max {
		return errors.Join(errs...)
	}
	slices.SortFunc(entries, func(a, b entry) int {
		return cmp.Or(a.used.Compare(b.used), strings.Compare(a.name, b.name))
	})
	for _, e := range entries {
		if total <= c.max {
			break
		}
		p := filepath.Join(c.dir, e.name)
		if e.name == keep || inUse.n[p] > 0 {
			continue
		}
		if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, fmt.Errorf("cache: evict %s: %w", e.name, err))
			continue
		}
		log.Info("image cache: evicted", "sha256", e.name, "bytes", e.size,
			"reason", fmt.Sprintf("least recently used (last used %s) while the cache holds %d bytes, more than cache_max %d",
				e.used.UTC().Format(time.RFC3339), total, c.max))
		total -= e.size
	}
	if total > c.max {
		log.Info("image cache: over cache_max; the remaining entries are in use", "bytes", total, "cache_max", c.max)
	}
	return errors.Join(errs...)
}

// capWriter writes to w until more than max bytes (max > 0) have come, then drops the rest and
// sets over: an image larger than the whole cache is not worth the disk writes.
type capWriter struct {
	w    io.Writer
	max  int64
	n    int64
	over bool
}

func (c *capWriter) Write(p []byte) (int, error) {
	c.n += int64(len(p))
	if c.over || (c.max > 0 && c.n > c.max) {
		c.over = true
		return len(p), nil
	}
	return c.w.Write(p)
}

// sizeUnits are the units of cache_max, upper case, as powers of 1024.
var sizeUnits = map[string]uint{
	"": 0, "B": 0,
	"K": 10, "KB": 10, "KIB": 10,
	"M": 20, "MB": 20, "MIB": 20,
	"G": 30, "GB": 30, "GIB": 30,
	"T": 40, "TB": 40, "TIB": 40,
}

// parseSizeLimit parses a byte count written as a number (decimals allowed) with an optional
// unit: B, K/KB/KiB, M/MB/MiB, G/GB/GiB, T/TB/TiB, in any case, all powers of 1024 as in
// ParseSize. A fractional count of bytes is rounded down.
func parseSizeLimit(s string) (int64, error) {
	bad := fmt.Errorf("invalid size %q: want a number with an optional unit B, KB, MB, GB, TB, KiB, MiB, GiB, TiB", s)
	t := strings.TrimSpace(s)
	if len(t) > 64 {
		return 0, bad
	}
	i := 0
	for i < len(t) && t[i] >= '0' && t[i] <= '9' {
		i++
	}
	if i == 0 {
		return 0, bad
	}
	if i < len(t) && t[i] == '.' {
		j := i + 1
		for j < len(t) && t[j] >= '0' && t[j] <= '9' {
			j++
		}
		if j == i+1 {
			return 0, bad // "1." or "1.G"
		}
		i = j
	}
	shift, ok := sizeUnits[strings.ToUpper(strings.TrimLeft(t[i:], " "))]
	if !ok {
		return 0, bad
	}
	r, ok := new(big.Rat).SetString(t[:i])
	if !ok {
		return 0, bad
	}
	r.Mul(r, new(big.Rat).SetInt(new(big.Int).Lsh(big.NewInt(1), shift)))
	n := new(big.Int).Quo(r.Num(), r.Denom())
	if !n.IsInt64() {
		return 0, fmt.Errorf("invalid size %q: too large", s)
	}
	return n.Int64(), nil
}
