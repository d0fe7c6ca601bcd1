package cmdutil

import (
	"errors"
	"testing"

	"jsn.dev/jsn/client"
	"jsn.dev/jsn/drivers/driver"
)

const powerIface = "jsn.power.v1"

func node(path, iface string, children ...*driver.NodeDesc) *driver.NodeDesc {
	name := path
	for i := len(path) - 1; i >= 0; i-- {
		if path[i] == '.' {
			name = path[i+1:]
			break
		}
	}
	return &driver.NodeDesc{Name: name, Path: path, Type: "t", Interface: iface, Children: children}
}

func TestSelect(t *testing.T) {
	one := &driver.Description{Exporter: "lab", Drivers: []*driver.NodeDesc{
		node("power", powerIface), node("network", "jsn.network.v1"),
	}}
	two := &driver.Description{Exporter: "lab", Drivers: []*driver.NodeDesc{
		node("harness", "", node("harness.power", powerIface)),
		node("dut", "", node("dut.power", powerIface)),
	}}
	alias := &driver.NodeDesc{Name: "alias", Path: "alias", Type: "ref", Interface: powerIface, Ref: "power"}
	withRef := &driver.Description{Exporter: "lab", Drivers: []*driver.NodeDesc{node("power", powerIface), alias}}
	onlyRef := &driver.Description{Exporter: "lab", Drivers: []*driver.NodeDesc{alias}}
	none := &driver.Description{Exporter: "lab", Drivers: []*driver.NodeDesc{node("network", "jsn.network.v1")}}

	tests := []struct {
		name     string
		desc     *driver.Description
		path     string
		want     string // selected path
		wantErr  string
		sentinel error
	}{
		{name: "only one", desc: one, want: "power"},
		{name: "named", desc: two, path: "dut.power", want: "dut.power"},
		{name: "several", desc: two, wantErr: "several power drivers: harness.power, dut.power; choose one with -d PATH", sentinel: client.ErrInvalidArgument},
		{name: "ref does not make it ambiguous", desc: withRef, want: "power"},
		{name: "ref when nothing else", desc: onlyRef, want: "alias"},
		{name: "ref by name", desc: withRef, path: "alias", want: "alias"},
		{name: "none", desc: none, wantErr: `no power driver on exporter "lab"`, sentinel: client.ErrNotFound},
		{name: "unknown path", desc: two, path: "x.power", wantErr: `no driver "x.power"; power drivers: harness.power, dut.power`, sentinel: client.ErrNotFound},
		{name: "wrong interface", desc: one, path: "network", wantErr: `driver "network" is not a power driver (it has jsn.network.v1); power drivers: power`, sentinel: client.ErrInvalidArgument},
		{name: "composite", desc: two, path: "dut", wantErr: `driver "dut" is not a power driver (it has no interface); power drivers: harness.power, dut.power`, sentinel: client.ErrInvalidArgument},
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

func TestOptionsFallBackToEnv(t *testing.T) {
	env := map[string]string{client.EnvHost: "unix:///s", client.EnvExporter: "lab", client.EnvLease: "L1"}
	f := &Factory{Getenv: func(k string) string { return env[k] }}
	o, err := f.Options()
	if err != nil {
		t.Fatal(err)
	}
	if o.Host != "unix:///s" || o.Exporter != "lab" || o.Lease != "L1" || o.NoDirectStreams {
		t.Errorf("got %+v, want the environment's values", o)
	}
	env[client.EnvDirectStreams] = "off"
	if o, _ = f.Options(); !o.NoDirectStreams {
		t.Errorf("with %s=off: got NoDirectStreams false", client.EnvDirectStreams)
	}
	f.Host, f.ExporterName, f.Lease = "nats://h:1", "other", "L2"
	o, err = f.Options()
	if err != nil {
		t.Fatal(err)
	}
	if o.Host != "nats://h:1" || o.Exporter != "other" || o.Lease != "L2" {
		t.Errorf("got %+v, want the flags' values", o)
	}
}

func TestOptionsNoSession(t *testing.T) {
	f := &Factory{Getenv: func(string) string { return "" }}
	_, err := f.Options()
	if !errors.Is(err, client.ErrNoSession) {
		t.Fatalf("got %v, want ErrNoSession", err)
	}
	if !IsUsage(err) {
		t.Errorf("got IsUsage false, want true")
	}
}
