package cmdutil

import (
	"errors"
	"testing"

	"jsn.dev/jsn/bus/wire"
)

const powerIface = "jsn.power.v1"

func node(path, iface string, children ...*wire.NodeDesc) *wire.NodeDesc {
	name := path
	for i := len(path) - 1; i >= 0; i-- {
		if path[i] == '.' {
			name = path[i+1:]
			break
		}
	}
	return &wire.NodeDesc{Name: name, Path: path, Type: "t", Interface: iface, Children: children}
}

func TestSelect(t *testing.T) {
	one := &wire.Description{Exporter: "lab", Drivers: []*wire.NodeDesc{
		node("power", powerIface), node("network", "jsn.network.v1"),
	}}
	two := &wire.Description{Exporter: "lab", Drivers: []*wire.NodeDesc{
		node("harness", "", node("harness.power", powerIface)),
		node("dut", "", node("dut.power", powerIface)),
	}}
	alias := &wire.NodeDesc{Name: "alias", Path: "alias", Type: "ref", Interface: powerIface, Ref: "power"}
	withRef := &wire.Description{Exporter: "lab", Drivers: []*wire.NodeDesc{node("power", powerIface), alias}}
	onlyRef := &wire.Description{Exporter: "lab", Drivers: []*wire.NodeDesc{alias}}
	none := &wire.Description{Exporter: "lab", Drivers: []*wire.NodeDesc{node("network", "jsn.network.v1")}}

	tests := []struct {
		name     string
		desc     *wire.Description
		path     string
		want     string // selected path
		wantErr  string
		sentinel error
	}{
		{name: "only one", desc: one, want: "power"},
		{name: "named", desc: two, path: "dut.power", want: "dut.power"},
		{name: "several", desc: two, wantErr: "several power drivers: harness.power, dut.power; choose one with -d PATH", sentinel: wire.ErrInvalidArgument},
		{name: "ref does not make it ambiguous", desc: withRef, want: "power"},
		{name: "ref when nothing else", desc: onlyRef, want: "alias"},
		{name: "ref by name", desc: withRef, path: "alias", want: "alias"},
		{name: "none", desc: none, wantErr: `no power driver on exporter "lab"`, sentinel: wire.ErrNotFound},
		{name: "unknown path", desc: two, path: "x.power", wantErr: `no driver "x.power"; power drivers: harness.power, dut.power`, sentinel: wire.ErrNotFound},
		{name: "wrong interface", desc: one, path: "network", wantErr: `driver "network" is not a power driver (it has jsn.network.v1); power drivers: power`, sentinel: wire.ErrInvalidArgument},
		{name: "composite", desc: two, path: "dut", wantErr: `driver "dut" is not a power driver (it has no interface); power drivers: harness.power, dut.power`, sentinel: wire.ErrInvalidArgument},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n, err := Select(tt.desc, powerIface, tt.path)
			if tt.wantErr != "" {
				if err == nil {
					t.Fatalf("got %s, want error %q", n.Path, tt.wantErr)
				}
				if err.Error() != tt.wantErr {
					t.Errorf("got %q, want %q", err, tt.wantErr)
				}
				if !errors.Is(err, tt.sentinel) {
					t.Errorf("got %v, want it to match %v", err, tt.sentinel)
				}
				return
			}
			if err != nil {
				t.Fatalf("got %v, want %s", err, tt.want)
			}
			if n.Path != tt.want {
				t.Errorf("got %s, want %s", n.Path, tt.want)
			}
		})
	}
}

func TestInterfaceNoun(t *testing.T) {
	for in, want := range map[string]string{
		"jsn.power.v1": "power", "jsn.network.v12": "network", "acme.relay": "acme.relay", "jsn.x.y.v1": "x.y",
	} {
		if got := InterfaceNoun(in); got != want {
			t.Errorf("InterfaceNoun(%q): got %q, want %q", in, got, want)
		}
	}
}
