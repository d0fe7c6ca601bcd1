package wire

// Kind says how a method is invoked.
type Kind string

const (
	KindCall         Kind = "call"          // one request, one reply
	KindServerStream Kind = "server-stream" // one request, many msgpack values, then end
	KindByteStream   Kind = "byte-stream"   // one request opens a bidirectional byte stream
)

// Type names an argument or result type in describe. The CLI converts string arguments with it.
type Type string

const (
	TypeNone     Type = ""         // no result
	TypeString   Type = "string"   // Go string
	TypeInt      Type = "int"      // int64
	TypeFloat    Type = "float"    // float64
	TypeBool     Type = "bool"     // bool
	TypeBytes    Type = "bytes"    // []byte
	TypeDuration Type = "duration" // time.Duration; on the wire int64 nanoseconds or a Go duration string
	TypeAny      Type = "any"      // any msgpack value
	// TypeOutput is a process-output item: map{"stream": "stdout"|"stderr", "data": bytes} or
	// map{"exit_code": int}. The CLI writes such items raw to its own stdout/stderr and exits with
	// exit_code.
	TypeOutput Type = "output"
	// TypeReading is a power reading: map{"voltage": float volts, "current": float amperes}.
	TypeReading Type = "reading"
)

// Description is the reply to an exporter's describe request: the whole driver tree. It is
// msgpack on the wire; the same field names are used for the CLI's JSON and YAML output.
type Description struct {
	Exporter string            `msgpack:"exporter" json:"exporter" yaml:"exporter"`
	Labels   map[string]string `msgpack:"labels,omitempty" json:"labels,omitempty" yaml:"labels,omitempty"`
	Drivers  []*NodeDesc       `msgpack:"drivers" json:"drivers" yaml:"drivers"`
}

// NodeDesc describes one node of the tree.
type NodeDesc struct {
	Name      string `msgpack:"name" json:"name" yaml:"name"`
	Path      string `msgpack:"path" json:"path" yaml:"path"` // dotted, "harness.power"
	Type      string `msgpack:"type" json:"type" yaml:"type"` // "power.Mock"
	Interface string `msgpack:"interface,omitempty" json:"interface,omitempty" yaml:"interface,omitempty"`
	Doc       string `msgpack:"doc,omitempty" json:"doc,omitempty" yaml:"doc,omitempty"`
	Ref       string `msgpack:"ref,omitempty" json:"ref,omitempty" yaml:"ref,omitempty"` // path this node proxies to
	// Unavailable is set, with the reason, when the device is absent (its calls fail UNAVAILABLE).
	Unavailable string        `msgpack:"unavailable,omitempty" json:"unavailable,omitempty" yaml:"unavailable,omitempty"`
	Methods     []*MethodDesc `msgpack:"methods,omitempty" json:"methods,omitempty" yaml:"methods,omitempty"`
	Children    []*NodeDesc   `msgpack:"children,omitempty" json:"children,omitempty" yaml:"children,omitempty"`
}

// MethodDesc describes one method.
type MethodDesc struct {
	Name    string     `msgpack:"name" json:"name" yaml:"name"`
	Doc     string     `msgpack:"doc,omitempty" json:"doc,omitempty" yaml:"doc,omitempty"`
	Kind    Kind       `msgpack:"kind" json:"kind" yaml:"kind"`
	Args    []*ArgDesc `msgpack:"args,omitempty" json:"args,omitempty" yaml:"args,omitempty"`
	Returns Type       `msgpack:"returns,omitempty" json:"returns,omitempty" yaml:"returns,omitempty"`
}

// ArgDesc describes one positional argument.
type ArgDesc struct {
	Name     string `msgpack:"name" json:"name" yaml:"name"`
	Type     Type   `msgpack:"type" json:"type" yaml:"type"`
	Doc      string `msgpack:"doc,omitempty" json:"doc,omitempty" yaml:"doc,omitempty"`
	Optional bool   `msgpack:"optional,omitempty" json:"optional,omitempty" yaml:"optional,omitempty"`
}

// Find returns the node at the dotted path, or nil.
func (d *Description) Find(path string) *NodeDesc {
	var walk func(ns []*NodeDesc) *NodeDesc
	walk = func(ns []*NodeDesc) *NodeDesc {
		for _, n := range ns {
			if n.Path == path {
				return n
			}
			if m := walk(n.Children); m != nil {
				return m
			}
		}
		return nil
	}
	return walk(d.Drivers)
}

// WithInterface returns every node implementing iface ("jsn.power.v1"), in tree order.
func (d *Description) WithInterface(iface string) []*NodeDesc {
	var out []*NodeDesc
	var walk func(ns []*NodeDesc)
	walk = func(ns []*NodeDesc) {
		for _, n := range ns {
			if n.Interface == iface {
				out = append(out, n)
			}
			walk(n.Children)
		}
	}
	walk(d.Drivers)
	return out
}

// Method returns the named method of n, or nil.
func (n *NodeDesc) Method(name string) *MethodDesc {
	for _, m := range n.Methods {
		if m.Name == name {
			return m
		}
	}
	return nil
}
