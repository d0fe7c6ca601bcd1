package qemu

import (
	"context"

	"jsn.dev/jsn/drivers/debug"
	"jsn.dev/jsn/drivers/driver"
	"jsn.dev/jsn/drivers/network"
)

// gdbChild is the board's `gdb`: QEMU's gdbstub (-gdb on a Unix socket in the board's runtime
// directory), as a jsn.gdb.v1 byte stream. `jsn debug gdb` gives a local gdb a port to it.
type gdbChild struct {
	q   *QEMU // nil when configured alone
	env driver.Env
	u   *network.Unix // the socket's relay; set by Open
}

func (g *gdbChild) Open(ctx context.Context) error {
	if g.q == nil {
		return errOrphan(GDBType)
	}
	if _, err := g.q.prepare(); err != nil {
		return err
	}
	g.u = network.NewUnix(g.env).(*network.Unix)
	g.u.Path = g.q.gdbSock()
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
func (g *gdbChild) Addr() string { return g.q.gdbSock() }

// Connect relays s to the gdbstub; the board must be on.
func (g *gdbChild) Connect(ctx context.Context, s driver.Stream) error {
	if g.q.running() == nil {
		return errOff("gdb")
	}
	return g.u.Connect(ctx, s)
}

// Methods returns the jsn.gdb.v1 method table.
func (g *gdbChild) Methods() []driver.Method { return debug.GDBMethods(g) }

var (
	_ network.Device  = (*gdbChild)(nil)
	_ driver.Methoder = (*gdbChild)(nil)
)
