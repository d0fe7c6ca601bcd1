package cmdutil

import (
	"context"
	"strings"

	"jsn.dev/jsn/client"
	"jsn.dev/jsn/drivers/driver"
)

// SelectDriver describes ex and picks the driver implementing iface ("jsn.power.v1"): the one
// at path if path is not empty, else the only one. See Select.
func SelectDriver(ctx context.Context, ex *client.Exporter, iface, path string) (*driver.NodeDesc, error) {
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
func Select(desc *driver.Description, iface, path string) (*driver.NodeDesc, error) {
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

func candidates(desc *driver.Description, iface string) []*driver.NodeDesc {
	var real, refs []*driver.NodeDesc
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

func paths(ns []*driver.NodeDesc) []string {
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
func AllPaths(desc *driver.Description) []string {
	var out []string
	var walk func([]*driver.NodeDesc)
	walk = func(ns []*driver.NodeDesc) {
		for _, n := range ns {
			out = append(out, n.Path)
			walk(n.Children)
		}
	}
	walk(desc.Drivers)
	return out
}
