package storage

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"

	"jsn.dev/jsn/drivers/driver"
)

func init() {
	driver.MustRegister(driver.Info{
		Type:      "storage.File",
		Interface: Interface,
		Doc:       "flashes images onto a disk image file or a block device",
		New:       NewFile,
	})
}

// File is the storage.File driver: images are written to a disk image file or a block device on
// the exporter.
//
// Config:
//
//	path: /var/lib/jsn/disk.img  # required: a file (replaced atomically) or a block device (written in place)
//	cache_dir: /var/cache/jsn    # image cache (default DefaultCacheDir())
//	cache_max: 10GiB             # most bytes the cache keeps, least recently used evicted; 0 = unlimited
//	size: 8GiB                   # optional: create a sparse file this big if path is absent,
//	                             # and keep a flashed file at least this big
//	url_allow: [images.lab.example, 10.1.0.0/16]  # where write_url may download from (default:
//	                             # anywhere but loopback and link-local addresses; see urlPolicy)
type File struct {
	Path     string   `yaml:"path" jsn:"required"`
	CacheDir string   `yaml:"cache_dir"`
	CacheMax string   `yaml:"cache_max"`
	Size     string   `yaml:"size"`
	URLAllow []string `yaml:"url_allow"`

	dir string // config file directory, for relative paths
	st  store
}

// NewFile is the storage.File constructor: defaults only, no side effects.
func NewFile(env driver.Env) driver.Driver {
	return &File{dir: env.Dir, st: store{log: env.Log}}
}

// configure checks path, cache_dir, cache_max, size and url_allow and sets up st; shared by the
// drivers here.
func configure(st *store, dir, path, cacheDir, cacheMax, size string, urlAllow []string) error {
	var errs []error
	urls, err := parseURLAllow(urlAllow)
	if err != nil {
		errs = append(errs, driver.FieldErrorf("url_allow", "%v", err))
	}
	st.urls = urls
	if path == "" {
		errs = append(errs, driver.FieldErrorf("path", "must not be empty"))
	}
	st.path = absIn(dir, path)
	if cacheDir == "" {
		cacheDir = DefaultCacheDir()
	}
	st.cache.dir = absIn(dir, cacheDir)
	st.cache.log = st.log
	if cacheMax == "" {
		cacheMax = DefaultCacheMax
	}
	n, err := parseSizeLimit(cacheMax)
	if err != nil {
		errs = append(errs, driver.FieldErrorf("cache_max", "%v", err))
	}
	st.cache.max = n
	if size != "" {
		n, err := ParseSize(size)
		if err != nil {
			errs = append(errs, driver.FieldErrorf("size", "%v", err))
		}
		st.size = n
	}
	return errors.Join(errs...)
}

func absIn(dir, p string) string {
	if p == "" || filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(dir, p)
}

// Validate checks the config.
func (f *File) Validate() error {
	return configure(&f.st, f.dir, f.Path, f.CacheDir, f.CacheMax, f.Size, f.URLAllow)
}

// Open creates the file, sparse, when size is set and it does not exist, and trims the image
// cache to cache_max.
func (f *File) Open(ctx context.Context) error {
	if f.st.path == "" { // Validate not run (direct use)
		if err := f.Validate(); err != nil {
			return err
		}
	}
	f.st.trimCache()
	if f.st.size > 0 {
		if err := f.st.ensure(); err != nil {
			return fmt.Errorf("open %s: %w", f.st.path, err)
		}
	}
	return nil
}

// Reset stops a running transfer.
func (f *File) Reset(ctx context.Context) error { return f.st.cancel(ctx) }

// Close stops a running transfer.
func (f *File) Close() error { return f.st.cancel(context.Background()) }

// Methods returns the jsn.storage.v1 method table.
func (f *File) Methods() []driver.Method { return Methods(&f.st, Options{}) }

// ParseSize parses a byte count: a plain number of bytes, or a number with a unit K, M, G, T
// (powers of 1024, also written KiB, MiB…, or KB, MB… which jsn reads as powers of 1024 too).
func ParseSize(s string) (int64, error) {
	t := strings.TrimSpace(s)
	i := 0
	for i < len(t) && t[i] >= '0' && t[i] <= '9' {
		i++
	}
	num, unit := t[:i], strings.ToUpper(strings.TrimSpace(t[i:]))
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("size %q: want a number of bytes, optionally with K, M, G or T", s)
	}
	unit = strings.TrimSuffix(strings.TrimSuffix(unit, "B"), "I")
	shift := map[string]uint{"": 0, "K": 10, "M": 20, "G": 30, "T": 40}
	sh, ok := shift[unit]
	if !ok {
		return 0, fmt.Errorf("size %q: unknown unit %q", s, t[i:])
	}
	if n > (1<<63-1)>>sh {
		return 0, fmt.Errorf("size %q: too large", s)
	}
	return n << sh, nil
}

var (
	_ driver.Driver    = (*File)(nil)
	_ driver.Validator = (*File)(nil)
	_ driver.Methoder  = (*File)(nil)
)
