package qemu

import (
	"context"

	"jsn.dev/jsn/drivers/debug"
	"jsn.dev/jsn/drivers/driver"
	"jsn.dev/jsn/drivers/network"
	"jsn.dev/jsn/drivers/vnc"
)

// gdbChild is a Unix socket of the running QEMU as a byte stream: the board's `gdb` (QEMU's
// gdbstub, jsn.gdb.v1: `jsn debug gdb`) and `vnc` (QEMU's VNC server, jsn.vnc.v1: `jsn vnc`).
type gdbChild struct {
	q    *QEMU // nil when configured alone
	env  driver.Env
	name string        // "gdb" or "vnc"
	u    *network.Unix // the socket's relay; set by Open
}

// typ is the child's registered type.
func (g *gdbChild) typ() string {
	if g.name == "vnc" {
		return VNCType
	}
	return GDBType
}

// sock is the socket's path.
func (g *gdbChild) sock() string {
	if g.name == "vnc" {
		return g.q.vncSock()
	}
	return g.q.gdbSock()
}

func (g *gdbChild) Open(ctx context.Context) error {
	if g.q == nil {
		return errOrphan(g.typ())
	}
	if _, err := g.q.prepare(); err != nil {
		return err
	}
	g.u = network.NewUnix(g.env).(*network.Unix)
	g.u.Path = g.sock()
	return g.u.Open(ctx)
}

// Reset ends the connections of the ended lease.
func (g *gdbChild) Reset(ctx context.Context) error {
	if g.u == nil {
		return nil
	}
	return g.u.Reset(ctx)
}

func (g *gdbChild) Close() error {
	if g.u == nil {
		return nil
	}
	return g.u.Close()
}

func (g *gdbChild) Kind() string { return network.KindUnix }
func (g *gdbChild) Addr() string { return g.sock() }

// Connect relays s to the gdbstub; the board must be on.
func (g *gdbChild) Connect(ctx context.Context, s driver.Stream) error {
	if g.q.running() == nil {
		return errOff(g.name)
	}
	return g.u.Connect(ctx, s)
}

// Methods returns the jsn.gdb.v1 or jsn.vnc.v1 method table.
func (g *gdbChild) Methods() []driver.Method {
	if g.name == "vnc" {
		return vnc.Methods(g, false)
	}
	return debug.GDBMethods(g)
}

var (
	_ network.Device  = (*gdbChild)(nil)
	_ driver.Methoder = (*gdbChild)(nil)
)
