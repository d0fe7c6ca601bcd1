package storage

import (
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"jsn.dev/jsn/bus"
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

// cache is a content-addressed image store: one file per image, named by the lower-case hex
// SHA-256 of its bytes as uploaded (compressed). It is created on first use; nothing evicts.
type cache struct {
	dir string
}

// normSHA checks that s is a hex SHA-256 and returns it in lower case.
func normSHA(op, s string) (string, error) {
	s = strings.ToLower(strings.TrimSpace(s))
	if b, err := hex.DecodeString(s); err != nil || len(b) != 32 {
		return "", bus.Errorf(bus.InvalidArgument, "%s: sha256 %q is not 64 hex digits", op, s)
	}
	return s, nil
}

// path returns the file of the image with the given (normalised) sha256.
func (c *cache) path(sha string) string { return filepath.Join(c.dir, sha) }

// has reports whether the cache holds a regular file for sha.
func (c *cache) has(sha string) bool {
	st, err := os.Stat(c.path(sha))
	return err == nil && st.Mode().IsRegular()
}

// create returns a new temporary file in the cache directory, creating the directory.
func (c *cache) create() (*os.File, error) {
	if err := os.MkdirAll(c.dir, 0o755); err != nil {
		return nil, fmt.Errorf("cache: %w", err)
	}
	f, err := os.CreateTemp(c.dir, ".upload-*")
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
