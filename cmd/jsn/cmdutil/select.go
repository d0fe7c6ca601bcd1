package cmdutil

import (
	"context"
	"strings"

	"github.com/spf13/cobra"

	"jsn.dev/jsn/bus/wire"
	"jsn.dev/jsn/client/remote"
)

// SelectDriver describes ex and picks the driver implementing iface ("jsn.power.v1"): the one
// at path if path is not empty, else the only one. See Select.
func SelectDriver(ctx context.Context, ex remote.Exporter, iface, path string) (*wire.NodeDesc, error) {
	desc, err := ex.Describe(ctx)
	if err != nil {
		return nil, err
	}
	return Select(desc, iface, path)
}

// Select picks the driver implementing iface from desc: the node at path if path is not empty
// (it must implement iface), else the only such node. Several and no path → an invalid-argument
// error listing them; none → a not-found error. Ref nodes count only when no real driver does,
// so an alias does not make the choice ambiguous.
func Select(desc *wire.Description, iface, path string) (*wire.NodeDesc, error) {
	noun := InterfaceNoun(iface)
	if path != "" {
		n := desc.Find(path)
		if n == nil {
			return nil, NotFoundf("no driver %q%s", path, listing(" "+noun+" drivers", paths(candidates(desc, iface))))
		}
		if n.Interface != iface {
			what := n.Interface
			if what == "" {
				what = "no interface"
			}
			return nil, InvalidArgf("driver %q is not a %s driver (it has %s)%s", path, noun, what,
				listing(" "+noun+" drivers", paths(candidates(desc, iface))))
		}
		return n, nil
	}
	ns := candidates(desc, iface)
	switch len(ns) {
	case 0:
		return nil, NotFoundf("no %s driver on exporter %q", noun, desc.Exporter)
	case 1:
		return ns[0], nil
	}
	return nil, InvalidArgf("several %s drivers: %s; choose one with -d PATH", noun, strings.Join(paths(ns), ", "))
}

func candidates(desc *wire.Description, iface string) []*wire.NodeDesc {
	var real, refs []*wire.NodeDesc
	for _, n := range desc.WithInterface(iface) {
		if n.Ref != "" {
			refs = append(refs, n)
		} else {
			real = append(real, n)
		}
	}
	if len(real) > 0 {
		return real
	}
	return refs
}

func paths(ns []*wire.NodeDesc) []string {
	out := make([]string, len(ns))
	for i, n := range ns {
		out[i] = n.Path
	}
	return out
}

func listing(label string, items []string) string {
	if len(items) == 0 {
		return ""
	}
	return ";" + label + ": " + strings.Join(items, ", ")
}

// InterfaceNoun turns "jsn.power.v1" into "power" for messages.
func InterfaceNoun(iface string) string {
	s := strings.TrimPrefix(iface, "jsn.")
	if i := strings.LastIndex(s, ".v"); i > 0 {
		s = s[:i]
	}
	return s
}

// AllPaths lists the path of every node of desc in tree order.
func AllPaths(desc *wire.Description) []string {
	var out []string
	var walk func([]*wire.NodeDesc)
	walk = func(ns []*wire.NodeDesc) {
		for _, n := range ns {
			out = append(out, n.Path)
			walk(n.Children)
		}
	}
	walk(desc.Drivers)
	return out
}

// AddDriverFlag adds to the verb group cmd the persistent flag -d/--driver PATH, stored in path:
// which driver of the group's interface (noun, "power") to use; "" for the only one.
func AddDriverFlag(cmd *cobra.Command, path *string, noun string) {
	cmd.PersistentFlags().StringVarP(path, "driver", "d", "", "path of the "+noun+" driver to use")
}

// WithDriver connects to f's exporter, selects the driver implementing iface (the one at path, or
// the only one: see SelectDriver) and runs fn with it. The connection ends when fn returns.
func WithDriver(ctx context.Context, f *Factory, iface, path string, fn func(ctx context.Context, d remote.Driver) error) error {
	ex, err := f.Exporter(ctx)
	if err != nil {
		return err
	}
	defer ex.Close()
	node, err := SelectDriver(ctx, ex, iface, path)
	if err != nil {
		return err
	}
	return fn(ctx, ex.Driver(node.Path))
}
