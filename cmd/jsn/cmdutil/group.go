package cmdutil

import (
	"context"

	"github.com/spf13/cobra"

	"jsn.dev/jsn/client/remote"
)

// DriverGroup is what the verbs of one driver group (`jsn power on`, `jsn serial log`) share: the
// Factory, and which driver of the group's interface to use (the -d/--driver PATH flag). A driver
// package's cmd.go makes one with NewDriverGroup and embeds it in each verb's options.
type DriverGroup struct {
	*Factory
	Interface string // the interface the group works on, "jsn.power.v1"
	Driver    string // -d PATH; "" = the only driver of Interface
}

// NewDriverGroup adds to cmd, the verb group of the drivers implementing iface, the persistent
// -d/--driver PATH flag that chooses among several such drivers. The group's verbs share the
// DriverGroup it returns.
func NewDriverGroup(f *Factory, iface string, cmd *cobra.Command) *DriverGroup {
	g := &DriverGroup{Factory: f, Interface: iface}
	AddDriverFlag(cmd, &g.Driver, InterfaceNoun(iface))
	return g
}

// WithDriver connects to the exporter, selects g's driver (the one at -d PATH, or the only one
// implementing g.Interface) and runs fn with it. The connection ends when fn returns.
func (g *DriverGroup) WithDriver(ctx context.Context, fn func(ctx context.Context, d remote.Driver) error) error {
	return WithDriver(ctx, g.Factory, g.Interface, g.Driver, fn)
}

// WithClient is g.WithDriver with the driver wrapped in its typed client by newClient:
//
//	return cmdutil.WithClient(ctx, g, power.NewClient, func(ctx context.Context, c *power.Client) error {
//		return c.On(ctx)
//	})
func WithClient[C any](ctx context.Context, g *DriverGroup, newClient func(remote.Driver) C, fn func(ctx context.Context, c C) error) error {
	return g.WithDriver(ctx, func(ctx context.Context, d remote.Driver) error { return fn(ctx, newClient(d)) })
}
