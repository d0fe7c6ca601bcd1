package fileserver

import (
	"context"
	"fmt"
	"io"
	"time"

	"jsn.dev/jsn/bus/wire"
	"jsn.dev/jsn/drivers/driver"
)

// Interface is the name of the interface in describe.
const Interface = "jsn.fileserver.v1"

// FileInfo is one file of a server's directory.
type FileInfo struct {
	Name     string    // slash-separated path relative to the root
	Size     int64     // bytes
	Modified time.Time // last write
}

// Map is the wire form of f: {name, size, modified (RFC 3339)}.
func (f FileInfo) Map() map[string]any {
	return map[string]any{"name": f.Name, "size": f.Size, "modified": f.Modified.UTC().Format(time.RFC3339Nano)}
}

// ParseFileInfo decodes the wire form of a FileInfo.
func ParseFileInfo(item any) (FileInfo, error) {
	m, ok := item.(map[string]any)
	if !ok {
		return FileInfo{}, fmt.Errorf("parse file info: want a map, got %T", item)
	}
	var f FileInfo
	if f.Name, ok = m["name"].(string); !ok || f.Name == "" {
		return FileInfo{}, fmt.Errorf("parse file info: missing name")
	}
	switch n := m["size"].(type) {
	case int64:
		f.Size = n
	case uint64:
		f.Size = int64(n)
	case int8, int16, int32, uint8, uint16, uint32:
		f.Size = toInt64(n)
	default:
		return FileInfo{}, fmt.Errorf("parse file info %q: size: want an integer, got %T", f.Name, m["size"])
	}
	if f.Size < 0 {
		return FileInfo{}, fmt.Errorf("parse file info %q: negative size %d", f.Name, f.Size)
	}
	if s, ok := m["modified"].(string); ok && s != "" {
		t, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			return FileInfo{}, fmt.Errorf("parse file info %q: modified: %w", f.Name, err)
		}
		f.Modified = t
	}
	return f, nil
}

func toInt64(v any) int64 {
	switch n := v.(type) {
	case int8:
		return int64(n)
	case int16:
		return int64(n)
	case int32:
		return int64(n)
	case uint8:
		return int64(n)
	case uint16:
		return int64(n)
	case uint32:
		return int64(n)
	}
	return 0
}

// Device is what a file server driver implements.
type Device interface {
	// Put stores what r yields as name (atomically: readers see the old file or the whole new one).
	Put(ctx context.Context, name string, r io.Reader) (FileInfo, error)
	// Get writes the file's content to w.
	Get(ctx context.Context, name string, w io.Writer) error
	// List returns every regular file under the root, sorted by name.
	List(ctx context.Context) ([]FileInfo, error)
	// Delete removes the file.
	Delete(ctx context.Context, name string) error
	// URL is how the device fetches name: tftp://host:port/name, http://host:port/name.
	URL(name string) (string, error)
}

// Progress is called as a server sends a file to the device: bytes sent so far and the file's size.
type Progress func(sent, total int64)

// Watcher is implemented by servers that report transfers to the device as they happen (the
// flasher shows them as its progress).
type Watcher interface {
	// Watch calls fn for every transfer of name until stop is called.
	Watch(name string, fn Progress) (stop func())
}

// Options tune the method table; none yet.
type Options struct{}

// Methods is the method table of jsn.fileserver.v1:
//
//	put(name string) <=> bytes   upload; after the client half-closes, one msgpack map {name, size, modified}
//	get(name string) <=> bytes   download
//	list() -> [{name, size, modified}…]
//	delete(name string)
//	url(name string) -> string   how the device fetches it
func Methods(d Device, o Options) []driver.Method {
	return []driver.Method{
		{
			Name: "put", Kind: driver.KindByteStream,
			Doc:  "upload a file to serve; after the client half-closes, the reply is one msgpack map {name, size, modified}",
			Args: []driver.Arg{{Name: "name", Type: driver.TypeString, Doc: "path under the server's root (a/b.img)"}},
			Bytes: func(ctx context.Context, args driver.Args, s driver.Stream) error {
				fi, err := d.Put(ctx, args.String(0), s)
				if err != nil {
					return err
				}
				b, err := wire.Marshal(fi.Map())
				if err != nil {
					return wire.Errorf(wire.Internal, "put: %v", err)
				}
				_, err = s.Write(b)
				return err
			},
		},
		{
			Name: "get", Kind: driver.KindByteStream, Doc: "download a served file",
			Args: []driver.Arg{{Name: "name", Type: driver.TypeString}},
			Bytes: func(ctx context.Context, args driver.Args, s driver.Stream) error {
				return d.Get(ctx, args.String(0), s)
			},
		},
		{
			Name: "list", Kind: driver.KindCall, Returns: driver.TypeAny,
			Doc: "the served files: [{name, size, modified}…]",
			Call: func(ctx context.Context, _ driver.Args) (any, error) {
				fs, err := d.List(ctx)
				if err != nil {
					return nil, err
				}
				out := make([]any, 0, len(fs))
				for _, f := range fs {
					out = append(out, f.Map())
				}
				return out, nil
			},
		},
		{
			Name: "delete", Kind: driver.KindCall, Doc: "remove a served file",
			Args: []driver.Arg{{Name: "name", Type: driver.TypeString}},
			Call: func(ctx context.Context, args driver.Args) (any, error) { return nil, d.Delete(ctx, args.String(0)) },
		},
		{
			Name: "url", Kind: driver.KindCall, Returns: driver.TypeString,
			Doc:  "the URL the device fetches a file from (tftp://… or http://…)",
			Args: []driver.Arg{{Name: "name", Type: driver.TypeString}},
			Call: func(ctx context.Context, args driver.Args) (any, error) { return d.URL(args.String(0)) },
		},
	}
}
