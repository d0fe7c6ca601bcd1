package fileserver

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"sync"

	"jsn.dev/jsn/bus/wire"
)

// MaxNameLen bounds a file name (a path under the root).
const MaxNameLen = 1024

// CleanName checks a file name given by a client or a device and returns it cleaned: a relative,
// slash-separated path without "." or ".." elements, empty elements or control characters. A
// leading "/" is dropped (TFTP clients often send one).
func CleanName(name string) (string, error) {
	n := strings.TrimLeft(name, "/")
	if n == "" {
		return "", fmt.Errorf("empty file name")
	}
	if len(n) > MaxNameLen {
		return "", fmt.Errorf("file name longer than %d bytes", MaxNameLen)
	}
	for _, r := range n {
		if r < 0x20 || r == 0x7f || r == '\\' {
			return "", fmt.Errorf("file name %q: control characters and backslashes are not allowed", name)
		}
	}
	for _, el := range strings.Split(n, "/") {
		switch el {
		case "", ".", "..":
			return "", fmt.Errorf("file name %q: want a relative path without empty, \".\" or \"..\" elements", name)
		}
	}
	return n, nil
}

// Dir is a server's root directory: the files the device reads, the uploads that land there, and
// the record of what uploads created (removed at each lease's end when removeCreated is set).
type Dir struct {
	path          string
	removeCreated bool

	mu      sync.Mutex
	created map[string]bool // files and directories Put created; guarded by mu

	wmu      sync.Mutex
	watchers map[string]map[*Progress]bool // by file name; guarded by wmu
}

// NewDir returns the Dir at path (not opened).
func NewDir(path string, removeCreated bool) *Dir {
	return &Dir{path: path, removeCreated: removeCreated, created: map[string]bool{}, watchers: map[string]map[*Progress]bool{}}
}

// Path is the directory.
func (d *Dir) Path() string { return d.path }

// Open creates the directory when absent.
func (d *Dir) Open() error {
	if err := os.MkdirAll(d.path, 0o755); err != nil {
		return fmt.Errorf("root_dir: %w", err)
	}
	return nil
}

func (d *Dir) root() (*os.Root, error) {
	r, err := os.OpenRoot(d.path)
	if err != nil {
		return nil, wire.Errorf(wire.Unavailable, "root_dir: %v", err)
	}
	return r, nil
}

func bad(op string, err error) error { return wire.Errorf(wire.InvalidArgument, "%s: %v", op, err) }

// Put stores r's bytes as name, atomically (a temporary file renamed into place).
func (d *Dir) Put(ctx context.Context, name string, r io.Reader) (FileInfo, error) {
	n, err := CleanName(name)
	if err != nil {
		return FileInfo{}, bad("put", err)
	}
	root, err := d.root()
	if err != nil {
		return FileInfo{}, err
	}
	defer root.Close()
	// Make the parent directories, recording the ones that did not exist.
	var made []string
	if dir := path.Dir(n); dir != "." {
		els := strings.Split(dir, "/")
		for i := range els {
			p := strings.Join(els[:i+1], "/")
			if err := root.Mkdir(p, 0o755); err == nil {
				made = append(made, p)
			} else if !errors.Is(err, fs.ErrExist) {
				return FileInfo{}, wire.Errorf(wire.FailedPrecondition, "put %s: %v", n, err)
			}
		}
	}
	if st, err := root.Lstat(n); err == nil && !st.Mode().IsRegular() {
		return FileInfo{}, wire.Errorf(wire.FailedPrecondition, "put %s: exists and is not a regular file", n)
	}
	tmp := path.Join(path.Dir(n), fmt.Sprintf(".%s.jsn-upload-%p", path.Base(n), &made))
	f, err := root.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return FileInfo{}, wire.Errorf(wire.FailedPrecondition, "put %s: %v", n, err)
	}
	ok := false
	defer func() {
		if !ok {
			f.Close()
			_ = root.Remove(tmp)
		}
	}()
	if _, err := io.Copy(f, readerCtx{ctx, r}); err != nil {
		if ctx.Err() != nil {
			return FileInfo{}, fmt.Errorf("put %s: %w", n, context.Cause(ctx))
		}
		return FileInfo{}, fmt.Errorf("put %s: %w", n, err)
	}
	if err := f.Sync(); err != nil {
		return FileInfo{}, fmt.Errorf("put %s: %w", n, err)
	}
	if err := f.Close(); err != nil {
		return FileInfo{}, fmt.Errorf("put %s: %w", n, err)
	}
	_, existed := root.Lstat(n)
	if err := root.Rename(tmp, n); err != nil {
		return FileInfo{}, fmt.Errorf("put %s: %w", n, err)
	}
	ok = true
	d.mu.Lock()
	for _, p := range made {
		d.created[p] = true
	}
	if existed != nil {
		d.created[n] = true
	}
	d.mu.Unlock()
	st, err := root.Stat(n)
	if err != nil {
		return FileInfo{}, fmt.Errorf("put %s: %w", n, err)
	}
	return FileInfo{Name: n, Size: st.Size(), Modified: st.ModTime()}, nil
}

// readerCtx stops reading once ctx ends.
type readerCtx struct {
	ctx context.Context
	r   io.Reader
}

func (r readerCtx) Read(p []byte) (int, error) {
	if err := r.ctx.Err(); err != nil {
		return 0, err
	}
	return r.r.Read(p)
}

// OpenFile opens name for reading: a regular file under the root (symlinks leaving the root are
// refused by os.Root).
func (d *Dir) OpenFile(name string) (*os.File, int64, error) {
	n, err := CleanName(name)
	if err != nil {
		return nil, 0, bad("open", err)
	}
	root, err := d.root()
	if err != nil {
		return nil, 0, err
	}
	defer root.Close()
	f, err := root.Open(n)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, 0, wire.Errorf(wire.NotFound, "%s: no such file", n)
		}
		return nil, 0, wire.Errorf(wire.FailedPrecondition, "%s: %v", n, err)
	}
	st, err := f.Stat()
	if err != nil || !st.Mode().IsRegular() {
		f.Close()
		return nil, 0, wire.Errorf(wire.NotFound, "%s: not a regular file", n)
	}
	return f, st.Size(), nil
}

// Get copies the file to w.
func (d *Dir) Get(ctx context.Context, name string, w io.Writer) error {
	f, _, err := d.OpenFile(name)
	if err != nil {
		return err
	}
	defer f.Close()
	if _, err := io.Copy(w, readerCtx{ctx, f}); err != nil {
		return fmt.Errorf("get %s: %w", name, err)
	}
	return nil
}

// List returns the regular files under the root, sorted.
func (d *Dir) List(ctx context.Context) ([]FileInfo, error) {
	var out []FileInfo
	err := filepath.WalkDir(d.path, func(p string, e fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if !e.Type().IsRegular() || strings.Contains(e.Name(), ".jsn-upload-") {
			return nil
		}
		st, err := e.Info()
		if err != nil {
			return nil
		}
		rel, _ := filepath.Rel(d.path, p)
		out = append(out, FileInfo{Name: filepath.ToSlash(rel), Size: st.Size(), Modified: st.ModTime()})
		return nil
	})
	if err != nil {
		return nil, wire.Errorf(wire.Unavailable, "list %s: %v", d.path, err)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// Delete removes a file.
func (d *Dir) Delete(ctx context.Context, name string) error {
	n, err := CleanName(name)
	if err != nil {
		return bad("delete", err)
	}
	root, err := d.root()
	if err != nil {
		return err
	}
	defer root.Close()
	st, err := root.Lstat(n)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return wire.Errorf(wire.NotFound, "delete %s: no such file", n)
		}
		return wire.Errorf(wire.FailedPrecondition, "delete %s: %v", n, err)
	}
	if st.IsDir() {
		return wire.Errorf(wire.FailedPrecondition, "delete %s: is a directory", n)
	}
	if err := root.Remove(n); err != nil {
		return wire.Errorf(wire.FailedPrecondition, "delete %s: %v", n, err)
	}
	d.mu.Lock()
	delete(d.created, n)
	d.mu.Unlock()
	return nil
}

// RemoveCreated removes what uploads created (files, then the directories they made, deepest
// first), when the config asks for it. It is the servers' Reset and Close.
func (d *Dir) RemoveCreated() error {
	if !d.removeCreated {
		return nil
	}
	d.mu.Lock()
	names := make([]string, 0, len(d.created))
	for n := range d.created {
		names = append(names, n)
	}
	d.created = map[string]bool{}
	d.mu.Unlock()
	if len(names) == 0 {
		return nil
	}
	root, err := os.OpenRoot(d.path)
	if err != nil {
		return nil // the directory is gone: nothing left to remove
	}
	defer root.Close()
	// Deepest first, so files go before the directories that hold them.
	sort.Slice(names, func(i, j int) bool {
		di, dj := strings.Count(names[i], "/"), strings.Count(names[j], "/")
		if di != dj {
			return di > dj
		}
		return names[i] > names[j]
	})
	var errs []error
	for _, n := range names {
		if err := root.Remove(n); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// Watch calls fn for every transfer of name to the device until stop is called.
func (d *Dir) Watch(name string, fn Progress) (stop func()) {
	n, err := CleanName(name)
	if err != nil {
		return func() {}
	}
	p := &fn
	d.wmu.Lock()
	if d.watchers[n] == nil {
		d.watchers[n] = map[*Progress]bool{}
	}
	d.watchers[n][p] = true
	d.wmu.Unlock()
	return func() {
		d.wmu.Lock()
		delete(d.watchers[n], p)
		if len(d.watchers[n]) == 0 {
			delete(d.watchers, n)
		}
		d.wmu.Unlock()
	}
}

// progress reports a transfer of name to its watchers.
func (d *Dir) progress(name string, sent, total int64) {
	d.wmu.Lock()
	var fns []Progress
	for p := range d.watchers[name] {
		fns = append(fns, *p)
	}
	d.wmu.Unlock()
	for _, fn := range fns {
		fn(sent, total)
	}
}
