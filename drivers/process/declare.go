package process

import (
	"context"
	"fmt"
	"reflect"

	"jsn.dev/jsn/bus/wire"
	"jsn.dev/jsn/drivers/driver"
)

// hello is the body of a HELLO frame: what the program serves.
type hello struct {
	Version   int          `msgpack:"version"`
	Interface string       `msgpack:"interface"`
	Doc       string       `msgpack:"doc"`
	Methods   []methodDecl `msgpack:"methods"`
	// Shm: the program mapped the shared memory INIT offered and writes byte streams into it.
	Shm bool `msgpack:"shm"`
}

type methodDecl struct {
	Name    string    `msgpack:"name"`
	Doc     string    `msgpack:"doc"`
	Kind    string    `msgpack:"kind"`
	Args    []argDecl `msgpack:"args"`
	Returns string    `msgpack:"returns"`
}

type argDecl struct {
	Name     string `msgpack:"name"`
	Type     string `msgpack:"type"`
	Doc      string `msgpack:"doc"`
	Optional bool   `msgpack:"optional"`
}

var knownTypes = map[wire.Type]bool{wire.TypeNone: true, wire.TypeString: true, wire.TypeInt: true,
	wire.TypeFloat: true, wire.TypeBool: true, wire.TypeBytes: true, wire.TypeDuration: true,
	wire.TypeAny: true, wire.TypeOutput: true, wire.TypeReading: true}

// maxMethods bounds a declaration.
const maxMethods = 1000

// decodeHello decodes and checks a HELLO body; errors name the method and field.
func decodeHello(body []byte) (*hello, error) {
	var h hello
	if err := wire.Unmarshal(body, &h); err != nil {
		return nil, fmt.Errorf("HELLO: %v", err)
	}
	if h.Version != 1 {
		return nil, fmt.Errorf("HELLO: protocol version %d; this exporter speaks version 1", h.Version)
	}
	if h.Interface != "" && !wire.ValidPath(h.Interface) {
		return nil, fmt.Errorf("HELLO: invalid interface %q (want dotted names such as jsn.power.v1)", h.Interface)
	}
	if len(h.Methods) > maxMethods {
		return nil, fmt.Errorf("HELLO: %d methods; at most %d", len(h.Methods), maxMethods)
	}
	seen := map[string]bool{}
	for i, m := range h.Methods {
		if !wire.ValidName(m.Name) {
			return nil, fmt.Errorf("HELLO: methods[%d]: invalid method name %q", i, m.Name)
		}
		if seen[m.Name] {
			return nil, fmt.Errorf("HELLO: method %q declared twice", m.Name)
		}
		seen[m.Name] = true
		switch wire.Kind(m.Kind) {
		case wire.KindCall, wire.KindServerStream, wire.KindByteStream:
		default:
			return nil, fmt.Errorf("HELLO: method %s: kind %q: want call, server-stream or byte-stream", m.Name, m.Kind)
		}
		if !knownTypes[wire.Type(m.Returns)] {
			return nil, fmt.Errorf("HELLO: method %s: returns %q: %s", m.Name, m.Returns, typeList())
		}
		optional := false
		for j, a := range m.Args {
			if a.Name == "" {
				return nil, fmt.Errorf("HELLO: method %s: args[%d]: empty name", m.Name, j)
			}
			if a.Type == "" || !knownTypes[wire.Type(a.Type)] {
				return nil, fmt.Errorf("HELLO: method %s: argument %s: type %q: %s", m.Name, a.Name, a.Type, typeList())
			}
			if a.Optional {
				optional = true
			} else if optional {
				return nil, fmt.Errorf("HELLO: method %s: required argument %s after an optional one", m.Name, a.Name)
			}
		}
	}
	return &h, nil
}

func typeList() string {
	return "want string, int, float, bool, bytes, duration, any, output or reading"
}

func sameDeclaration(a, b *hello) bool { return reflect.DeepEqual(a, b) }

// buildMethods turns a declaration into the driver's method table: every handler forwards to
// whichever process is running when it is called.
func (p *Process) buildMethods(h *hello) []driver.Method {
	var out []driver.Method
	for _, d := range h.Methods {
		name := d.Name
		m := driver.Method{Name: name, Doc: d.Doc, Kind: wire.Kind(d.Kind), Returns: wire.Type(d.Returns)}
		for _, a := range d.Args {
			m.Args = append(m.Args, driver.Arg{Name: a.Name, Type: wire.Type(a.Type), Doc: a.Doc, Optional: a.Optional})
		}
		switch m.Kind {
		case wire.KindCall:
			m.Raw = func(ctx context.Context, body []byte) ([]byte, error) { return p.call(ctx, name, body) }
			m.Call = func(ctx context.Context, args driver.Args) (any, error) {
				body, err := encodeArgs(args)
				if err != nil {
					return nil, err
				}
				res, err := p.call(ctx, name, body)
				if err != nil || len(res) == 0 {
					return nil, err
				}
				var v any
				if err := wire.Unmarshal(res, &v); err != nil {
					return nil, wire.Errorf(wire.Internal, "%s.%s: driver process sent a malformed result: %v", p.env.Path, name, err)
				}
				return v, nil
			}
		case wire.KindServerStream:
			m.Stream = func(ctx context.Context, args driver.Args, send func(any) error) error {
				body, err := encodeArgs(args)
				if err != nil {
					return err
				}
				return p.serveItems(ctx, name, body, send)
			}
		case wire.KindByteStream:
			m.Bytes = func(ctx context.Context, args driver.Args, s driver.Stream) error {
				body, err := encodeArgs(args)
				if err != nil {
					return err
				}
				return p.serveBytes(ctx, name, body, s)
			}
		}
		out = append(out, m)
	}
	return out
}

func encodeArgs(args driver.Args) ([]byte, error) {
	if len(args) == 0 {
		return nil, nil
	}
	return wire.Marshal([]any(args))
}

// call forwards one call to the running process.
func (p *Process) call(ctx context.Context, method string, args []byte) ([]byte, error) {
	c, err := p.current(method)
	if err != nil {
		return nil, err
	}
	res, err := c.roundTrip(ctx, method, p.CallTimeout, func(id uint32) error { return c.sendCall(frameCall, id, method, args) })
	if err != nil {
		return nil, err
	}
	if len(res) == 0 {
		return nil, nil
	}
	if err := checkResult(res); err != nil {
		return nil, wire.Errorf(wire.Internal, "%s.%s: driver process sent a malformed result: %v", p.env.Path, method, err)
	}
	return res, nil
}
