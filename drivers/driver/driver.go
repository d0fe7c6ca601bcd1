package driver

import (
	"context"
	"io"
	"log/slog"
	"time"

	"jsn.dev/jsn/bus/wire"
)

// Driver is one node of an exporter's driver tree: the server side of one device interface.
//
// Life cycle: the registered constructor builds it with no side effects; the framework decodes the
// node's `config:` mapping strictly into the exported, yaml-tagged fields of the value the
// constructor returned; then Validate (if implemented), Open, Reset at the start and end of every
// lease, and finally Close. Close must work even if Open failed or never ran.
type Driver interface {
	// Open acquires the resources the driver needs (ports, sockets, processes).
	Open(ctx context.Context) error
	// Reset brings the device back to its safe, inert state (power off, streams closed, mux off).
	// It is called before a lease's first call and after the lease ends.
	Reset(ctx context.Context) error
	// Close releases everything Open acquired.
	Close() error
}

// Validator is implemented by drivers whose config needs checks beyond field types. Return
// FieldErrorf errors to point at the offending key in the config file.
type Validator interface {
	Validate() error
}

// Methoder is implemented by drivers that export methods. Composite-only drivers export none.
type Methoder interface {
	Methods() []Method
}

// Declarer is implemented by drivers that learn their interface and methods only once opened: an
// out-of-process driver asks its process. Tree.Open calls Declared after the driver's Open
// succeeds and serves what it returns (checked like Methods) from then on; describe shows it.
type Declarer interface {
	Declared() (iface string, methods []Method)
}

// Parent is implemented by drivers that build their own children (a QEMU board has power, console,
// storage). Children listed in the config under `children:` are attached by the framework and are
// not returned here.
type Parent interface {
	Children() []Child
}

// AutoParent is implemented by drivers that make a built-in child only when the config writes no
// child of that name under `children:` (a Jumpstarter flasher makes its own `tftp` and `http`
// servers unless they are given). Build calls AutoChildren once, after the node's config is decoded
// and validated, with the names of its config children; the children it returns are attached and
// described like Parent's (after them). A ChildUser is not passed them in UseChildren: it keeps
// the drivers it made.
type AutoParent interface {
	AutoChildren(given map[string]bool) []Child
}

// ChildUser is implemented by drivers that work through the children written under their
// `children:` in the config (a U-Boot console drives its `serial` child; a flasher its `uboot`
// and `tftp` children). Build calls UseChildren once the whole tree is built and its refs are
// resolved, before anything is opened, with every config child by name: a `ref:` child is passed
// as the driver it points to. Built-in children (Parent) are not passed. An error is reported as a
// config error of the node's children, so name the child and what it must be ("child \"serial\"
// must be a jsn.serial.v1 driver, got power.Mock"). The children may not be open yet: use them in
// calls, not in Open.
type ChildUser interface {
	UseChildren(children map[string]Driver) error
}

// Child is a built-in child of a Parent driver.
type Child struct {
	Name   string
	Type   string // registered type, for describe
	Driver Driver
}

// Env is what a constructor receives: the driver's place in the tree, its logger and its tap.
// Log, Tap and Child are never nil: Build makes every Env (Child too), and tests that call a
// constructor directly use drivertest.Env. Constructors use them without checking.
type Env struct {
	Path string       // dotted driver path, "harness.power"
	Log  *slog.Logger // already carries "driver"=Path
	Dir  string       // directory of the config file, to resolve relative paths
	// Tap broadcasts device output (console bytes, readings) on the driver's read-only tap
	// subject, for observers and dashboards. It drops data while the exporter is not connected
	// and never blocks.
	Tap func(data []byte)
	// Child returns the Env of a built-in child called name (see Parent): its own path, logger
	// and tap subject.
	Child func(name string) Env
}

// Availability is implemented by drivers whose device can be absent (a USB serial adapter not
// plugged in yet). Unavailable returns "" when the device is usable, else the reason; describe
// shows it and calls fail with UNAVAILABLE until the device is back.
type Availability interface {
	Unavailable() string
}

// Constructor builds a driver value without side effects.
type Constructor func(env Env) Driver

// Info describes a registered driver type.
type Info struct {
	Type      string      // jsn type name, "power.Mock"
	Interface string      // interface it implements, "jsn.power.v1"; "" for pure composites
	Doc       string      // one line, shown by describe
	New       Constructor // required
	// Aliases are other names accepted in configs, e.g. Jumpstarter class names
	// ("jumpstarter_driver_power.driver.MockPower").
	Aliases []string
	// Ref marks a proxy type such as Jumpstarter's jumpstarter_driver_composite.driver.Proxy: a
	// node of this type takes `config: {ref: path}` and Build turns it into a ref node, exactly
	// like a node written `ref: path`. New is never called for it and may be nil.
	Ref bool
}

// Kind says how a method is invoked (see wire.Kind).
type Kind = wire.Kind

const (
	KindCall         = wire.KindCall
	KindServerStream = wire.KindServerStream
	KindByteStream   = wire.KindByteStream
)

// Type names an argument or result type in describe (see wire.Type).
type Type = wire.Type

const (
	TypeNone     = wire.TypeNone
	TypeString   = wire.TypeString
	TypeInt      = wire.TypeInt
	TypeFloat    = wire.TypeFloat
	TypeBool     = wire.TypeBool
	TypeBytes    = wire.TypeBytes
	TypeDuration = wire.TypeDuration
	TypeAny      = wire.TypeAny
	TypeOutput   = wire.TypeOutput
	TypeReading  = wire.TypeReading
)

// Arg is one positional argument of a method.
type Arg struct {
	Name     string
	Type     Type
	Doc      string
	Optional bool // trailing optional arguments may be omitted; absent ones are nil in Args
}

// Method is one exported operation. Exactly one of Call, Stream or Bytes is set, matching Kind.
type Method struct {
	Name    string
	Doc     string
	Kind    Kind
	Args    []Arg
	Returns Type // result of a call, or the type of each item of a server stream

	Call   func(ctx context.Context, args Args) (any, error)
	Stream func(ctx context.Context, args Args, send func(item any) error) error
	Bytes  func(ctx context.Context, args Args, s Stream) error
	// Raw is an optional fast path of a KindCall method whose Call is also set: body is the
	// call's msgpack argument array exactly as received (already checked against Args), the
	// result is the msgpack reply exactly as sent. The exporter uses it instead of Call, so a
	// driver that forwards calls elsewhere (an out-of-process driver) re-encodes nothing.
	Raw func(ctx context.Context, body []byte) ([]byte, error)

	path string // driver path, set on the copies held by a Tree's method tables, for errors
}

// Stream is the exporter's end of a byte stream opened by a client.
//
// Read returns io.EOF once the client has half-closed its sending side (FIN) and every byte before
// it has been read. CloseWrite sends FIN: the client reads EOF. Close ends the stream in both
// directions (a reset if it was not finished cleanly). The context given to a Bytes handler is
// cancelled when the stream is reset or the lease ends.
type Stream interface {
	io.Reader
	io.Writer
	CloseWrite() error
	Close() error
}

// Args are a call's arguments, already checked against the method's Arg list and converted to the
// Go types named by each Type. Accessors therefore do not fail; an absent optional argument yields
// the zero value.
type Args []any

func (a Args) value(i int) any {
	if i < 0 || i >= len(a) {
		return nil
	}
	return a[i]
}

// Has reports whether optional argument i was given.
func (a Args) Has(i int) bool { return a.value(i) != nil }

// String returns argument i of type string.
func (a Args) String(i int) string { s, _ := a.value(i).(string); return s }

// Int returns argument i of type int.
func (a Args) Int(i int) int64 { n, _ := a.value(i).(int64); return n }

// Float returns argument i of type float.
func (a Args) Float(i int) float64 { f, _ := a.value(i).(float64); return f }

// Bool returns argument i of type bool.
func (a Args) Bool(i int) bool { b, _ := a.value(i).(bool); return b }

// Bytes returns argument i of type bytes.
func (a Args) Bytes(i int) []byte { b, _ := a.value(i).([]byte); return b }

// Duration returns argument i of type duration.
func (a Args) Duration(i int) time.Duration { d, _ := a.value(i).(time.Duration); return d }

// Any returns argument i as decoded from msgpack.
func (a Args) Any(i int) any { return a.value(i) }
