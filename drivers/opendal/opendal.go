package opendal

import (
	"context"
	"crypto/md5"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"sync"

	"jsn.dev/jsn/bus/wire"
	"jsn.dev/jsn/drivers/driver"
)

// Interface is the name of the interface file storage drivers implement.
const Interface = "jsn.opendal.v1"

// MaxCall bounds the bytes read or written by one call; larger files go through the
// read_stream and write_stream byte streams.
const MaxCall = 896 << 10

func init() {
	driver.MustRegister(driver.Info{
		Type:      "opendal.Opendal",
		Interface: Interface,
		Doc:       "files in a directory of the exporter (OpenDAL scheme fs)",
		New:       New,
		Aliases:   []string{"jumpstarter_driver_opendal.driver.Opendal"},
	})
}

// Opendal is the opendal.Opendal driver.
//
// Config (Jumpstarter's Opendal keys; only the fs scheme):
//
//	scheme: fs                      # required; the only one jsn supports
//	kwargs: {root: /srv/lab/files}  # required: root, the directory (created if absent)
//	remove_created_on_close: false  # remove what the sessions created when the driver closes
type Opendal struct {
	Scheme               string            `yaml:"scheme" jsn:"required"`
	Kwargs               map[string]string `yaml:"kwargs" jsn:"required"`
	RemoveCreatedOnClose bool              `yaml:"remove_created_on_close"`

	dir string

	mu      sync.Mutex
	root    *os.Root
	created map[string]bool // paths written or made, for remove_created_on_close
}

// New is the opendal.Opendal constructor: defaults only, no side effects.
func New(env driver.Env) driver.Driver { return &Opendal{dir: env.Dir, created: map[string]bool{}} }

// Validate checks the scheme and the root.
func (o *Opendal) Validate() error {
	var errs []error
	if o.Scheme != "fs" {
		errs = append(errs, driver.FieldErrorf("scheme", "jsn supports only the fs scheme (a directory of the exporter), got %q", o.Scheme))
	}
	for k := range o.Kwargs {
		if k != "root" {
			errs = append(errs, driver.FieldErrorf("kwargs", "unknown fs option %q: the fs scheme takes root", k))
		}
	}
	if o.Kwargs["root"] == "" {
		errs = append(errs, driver.FieldErrorf("kwargs", "root is required: the directory the files live in"))
	}
	return errors.Join(errs...)
}

func (o *Opendal) rootPath() string {
	r := o.Kwargs["root"]
	if !filepath.IsAbs(r) {
		r = filepath.Join(o.dir, r)
	}
	return r
}

// Open creates the root directory if needed and opens it.
func (o *Opendal) Open(ctx context.Context) error {
	if err := os.MkdirAll(o.rootPath(), 0o755); err != nil {
		return fmt.Errorf("open: root: %w", err)
	}
	r, err := os.OpenRoot(o.rootPath())
	if err != nil {
		return fmt.Errorf("open: root: %w", err)
	}
	o.mu.Lock()
	o.root = r
	o.mu.Unlock()
	return nil
}

// Reset does nothing: files stay between leases unless remove_created_on_close.
func (o *Opendal) Reset(ctx context.Context) error { return nil }

// Close removes the created files (remove_created_on_close) and closes the root.
func (o *Opendal) Close() error {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.root == nil {
		return nil
	}
	var errs []error
	if o.RemoveCreatedOnClose {
		var ps []string
		for p := range o.created {
			ps = append(ps, p)
		}
		sort.Sort(sort.Reverse(sort.StringSlice(ps))) // children before their directories
		for _, p := range ps {
			if err := o.root.RemoveAll(p); err != nil {
				errs = append(errs, err)
			}
		}
	}
	errs = append(errs, o.root.Close())
	o.root = nil
	return errors.Join(errs...)
}

// clean turns a client path into one relative to the root; "" and "/" are the root itself.
func clean(p string) (string, error) {
	if strings.ContainsRune(p, 0) {
		return "", wire.Errorf(wire.InvalidArgument, "path %q contains a NUL byte", p)
	}
	c := path.Clean("/" + p)[1:]
	if c == "" {
		return ".", nil
	}
	return c, nil
}

func (o *Opendal) use(op, p string) (*os.Root, string, error) {
	c, err := clean(p)
	if err != nil {
		return nil, "", err
	}
	o.mu.Lock()
	r := o.root
	o.mu.Unlock()
	if r == nil {
		return nil, "", wire.Errorf(wire.Unavailable, "%s: driver not open", op)
	}
	return r, c, nil
}

func (o *Opendal) track(p string) {
	o.mu.Lock()
	o.created[p] = true
	o.mu.Unlock()
}

func (o *Opendal) untrack(p string) {
	o.mu.Lock()
	for q := range o.created {
		if q == p || strings.HasPrefix(q, p+"/") {
			delete(o.created, q)
		}
	}
	o.mu.Unlock()
}

// fsErr maps a file system error to a wire error naming op and path.
func fsErr(op, p string, err error) error {
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return wire.Errorf(wire.NotFound, "%s %s: no such file or directory", op, p)
	case errors.Is(err, fs.ErrExist):
		return wire.Errorf(wire.FailedPrecondition, "%s %s: already exists", op, p)
	case errors.Is(err, fs.ErrPermission):
		return wire.Errorf(wire.PermissionDenied, "%s %s: permission denied", op, p)
	}
	var pe *fs.PathError
	if errors.As(err, &pe) && strings.Contains(pe.Err.Error(), "escapes") {
		return wire.Errorf(wire.InvalidArgument, "%s %s: the path leaves the storage root", op, p)
	}
	return wire.Errorf(wire.Internal, "%s %s: %v", op, p, err)
}

// Entry describes a file or directory (list, stat).
type Entry struct {
	Path  string `msgpack:"path" json:"path"`
	Mode  string `msgpack:"mode" json:"mode"` // "file" or "dir"
	Size  int64  `msgpack:"size" json:"size"`
	MTime int64  `msgpack:"mtime" json:"mtime"` // Unix seconds
}

func entry(p string, fi fs.FileInfo) Entry {
	mode := "file"
	if fi.IsDir() {
		mode = "dir"
	}
	return Entry{Path: p, Mode: mode, Size: fi.Size(), MTime: fi.ModTime().Unix()}
}

func entryMap(e Entry) map[string]any {
	return map[string]any{"path": e.Path, "mode": e.Mode, "size": e.Size, "mtime": e.MTime}
}

// Methods returns the jsn.opendal.v1 method table.
func (o *Opendal) Methods() []driver.Method {
	pathArg := driver.Arg{Name: "path", Type: driver.TypeString, Doc: "relative to the storage root"}
	return []driver.Method{
		{Name: "write_bytes", Doc: fmt.Sprintf("write a file (at most %d bytes; larger: write_stream), making its directories", MaxCall),
			Kind: driver.KindCall, Args: []driver.Arg{pathArg, {Name: "data", Type: driver.TypeBytes}},
			Call: func(ctx context.Context, a driver.Args) (any, error) {
				return nil, o.write(a.String(0), a.Bytes(1))
			}},
		{Name: "read_bytes", Doc: fmt.Sprintf("read a file (at most %d bytes; larger: read_stream)", MaxCall),
			Kind: driver.KindCall, Args: []driver.Arg{pathArg}, Returns: driver.TypeBytes,
			Call: func(ctx context.Context, a driver.Args) (any, error) { return o.read(a.String(0)) }},
		{Name: "list", Doc: "the entries of a directory: path, mode (file|dir), size, mtime",
			Kind: driver.KindCall, Args: []driver.Arg{{Name: "path", Type: driver.TypeString, Optional: true, Doc: "a directory; default the root"}},
			Returns: driver.TypeAny,
			Call:    func(ctx context.Context, a driver.Args) (any, error) { return o.list(a.String(0)) }},
		{Name: "stat", Doc: "path, mode (file|dir), size and mtime of a file or directory",
			Kind: driver.KindCall, Args: []driver.Arg{pathArg}, Returns: driver.TypeAny,
			Call: func(ctx context.Context, a driver.Args) (any, error) {
				e, err := o.stat(a.String(0))
				if err != nil {
					return nil, err
				}
				return entryMap(e), nil
			}},
		{Name: "exists", Doc: "whether the path exists", Kind: driver.KindCall, Args: []driver.Arg{pathArg}, Returns: driver.TypeBool,
			Call: func(ctx context.Context, a driver.Args) (any, error) {
				_, err := o.stat(a.String(0))
				if errors.Is(err, wire.ErrNotFound) {
					return false, nil
				}
				return err == nil, err
			}},
		{Name: "delete", Doc: "delete a file or an empty directory", Kind: driver.KindCall, Args: []driver.Arg{pathArg},
			Call: func(ctx context.Context, a driver.Args) (any, error) { return nil, o.remove(a.String(0), false) }},
		{Name: "remove_all", Doc: "delete a directory and everything in it", Kind: driver.KindCall, Args: []driver.Arg{pathArg},
			Call: func(ctx context.Context, a driver.Args) (any, error) { return nil, o.remove(a.String(0), true) }},
		{Name: "create_dir", Doc: "make a directory and its parents", Kind: driver.KindCall, Args: []driver.Arg{pathArg},
			Call: func(ctx context.Context, a driver.Args) (any, error) { return nil, o.mkdir(a.String(0)) }},
		{Name: "hash", Doc: "the hex digest of a file: md5, sha1, sha256 or sha512", Kind: driver.KindCall,
			Args: []driver.Arg{pathArg, {Name: "algo", Type: driver.TypeString, Optional: true, Doc: "default sha256"}}, Returns: driver.TypeString,
			Call: func(ctx context.Context, a driver.Args) (any, error) { return o.hash(a.String(0), a.String(1)) }},
		{Name: "read_stream", Doc: "the content of a file as a byte stream", Kind: driver.KindByteStream, Args: []driver.Arg{pathArg},
			Bytes: func(ctx context.Context, a driver.Args, s driver.Stream) error { return o.readStream(a.String(0), s) }},
		{Name: "write_stream", Doc: "write a file from a byte stream (until the client half-closes), making its directories",
			Kind: driver.KindByteStream, Args: []driver.Arg{pathArg},
			Bytes: func(ctx context.Context, a driver.Args, s driver.Stream) error { return o.writeStream(a.String(0), s) }},
	}
}

func (o *Opendal) write(p string, data []byte) error {
	r, c, err := o.use("write_bytes", p)
	if err != nil {
		return err
	}
	if c == "." {
		return wire.Errorf(wire.InvalidArgument, "write_bytes: want a file path, not the root")
	}
	if d := path.Dir(c); d != "." {
		if err := r.MkdirAll(d, 0o755); err != nil {
			return fsErr("write_bytes", p, err)
		}
	}
	if err := r.WriteFile(c, data, 0o644); err != nil {
		return fsErr("write_bytes", p, err)
	}
	o.track(c)
	return nil
}

func (o *Opendal) read(p string) ([]byte, error) {
	r, c, err := o.use("read_bytes", p)
	if err != nil {
		return nil, err
	}
	f, err := r.Open(c)
	if err != nil {
		return nil, fsErr("read_bytes", p, err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, MaxCall+1))
	if err != nil {
		return nil, fsErr("read_bytes", p, err)
	}
	if len(b) > MaxCall {
		return nil, wire.Errorf(wire.FailedPrecondition, "read_bytes %s: more than %d bytes: use read_stream", p, MaxCall)
	}
	return b, nil
}

func (o *Opendal) list(p string) ([]any, error) {
	r, c, err := o.use("list", p)
	if err != nil {
		return nil, err
	}
	f, err := r.Open(c)
	if err != nil {
		return nil, fsErr("list", p, err)
	}
	defer f.Close()
	ents, err := f.ReadDir(-1)
	if err != nil {
		return nil, fsErr("list", p, err)
	}
	out := []any{}
	for _, e := range ents {
		fi, err := e.Info()
		if err != nil {
			continue
		}
		out = append(out, entryMap(entry(path.Join(c, e.Name()), fi)))
	}
	return out, nil
}

func (o *Opendal) stat(p string) (Entry, error) {
	r, c, err := o.use("stat", p)
	if err != nil {
		return Entry{}, err
	}
	fi, err := r.Stat(c)
	if err != nil {
		return Entry{}, fsErr("stat", p, err)
	}
	return entry(c, fi), nil
}

func (o *Opendal) remove(p string, all bool) error {
	op := "delete"
	if all {
		op = "remove_all"
	}
	r, c, err := o.use(op, p)
	if err != nil {
		return err
	}
	if c == "." {
		return wire.Errorf(wire.InvalidArgument, "%s: refusing to delete the storage root", op)
	}
	if all {
		err = r.RemoveAll(c)
	} else {
		err = r.Remove(c)
	}
	if err != nil {
		return fsErr(op, p, err)
	}
	o.untrack(c)
	return nil
}

func (o *Opendal) mkdir(p string) error {
	r, c, err := o.use("create_dir", p)
	if err != nil {
		return err
	}
	if err := r.MkdirAll(c, 0o755); err != nil {
		return fsErr("create_dir", p, err)
	}
	o.track(c)
	return nil
}

func (o *Opendal) hash(p, algo string) (string, error) {
	var h hash.Hash
	switch strings.ToLower(algo) {
	case "md5":
		h = md5.New()
	case "sha1":
		h = sha1.New()
	case "", "sha256":
		h = sha256.New()
	case "sha512":
		h = sha512.New()
	default:
		return "", wire.Errorf(wire.InvalidArgument, "hash: algo must be md5, sha1, sha256 or sha512, got %q", algo)
	}
	r, c, err := o.use("hash", p)
	if err != nil {
		return "", err
	}
	f, err := r.Open(c)
	if err != nil {
		return "", fsErr("hash", p, err)
	}
	defer f.Close()
	if _, err := io.Copy(h, f); err != nil {
		return "", fsErr("hash", p, err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

func (o *Opendal) readStream(p string, s driver.Stream) error {
	r, c, err := o.use("read_stream", p)
	if err != nil {
		return err
	}
	f, err := r.Open(c)
	if err != nil {
		return fsErr("read_stream", p, err)
	}
	defer f.Close()
	if _, err := io.Copy(s, f); err != nil {
		return wire.Errorf(wire.Unavailable, "read_stream %s: %v", p, err)
	}
	return nil
}

func (o *Opendal) writeStream(p string, s driver.Stream) error {
	r, c, err := o.use("write_stream", p)
	if err != nil {
		return err
	}
	if c == "." {
		return wire.Errorf(wire.InvalidArgument, "write_stream: want a file path, not the root")
	}
	if d := path.Dir(c); d != "." {
		if err := r.MkdirAll(d, 0o755); err != nil {
			return fsErr("write_stream", p, err)
		}
	}
	f, err := r.OpenFile(c, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return fsErr("write_stream", p, err)
	}
	o.track(c)
	if _, err := io.Copy(f, s); err != nil {
		f.Close()
		return wire.Errorf(wire.Unavailable, "write_stream %s: %v", p, err)
	}
	if err := f.Close(); err != nil {
		return fsErr("write_stream", p, err)
	}
	return nil
}

var (
	_ driver.Validator = (*Opendal)(nil)
	_ driver.Methoder  = (*Opendal)(nil)
)
