package vnc

import (
	"context"
	"fmt"

	"jsn.dev/jsn/drivers/driver"
	"jsn.dev/jsn/drivers/network"
)

// Interface is the name of the interface VNC drivers implement.
const Interface = "jsn.vnc.v1"

func init() {
	driver.MustRegister(driver.Info{
		Type:      "vnc.VNC",
		Interface: Interface,
		Doc:       "a VNC server reached through the tcp child (jsn vnc)",
		New:       New,
		Aliases:   []string{"jumpstarter_driver_vnc.driver.Vnc"},
	})
}

// Methods returns the jsn.vnc.v1 method table of a VNC server reached through d: network's
// connect, address and kind, and default_encrypt.
func Methods(d network.Device, defaultEncrypt bool) []driver.Method {
	return append(network.Methods(d, network.Options{}), driver.Method{
		Name: "default_encrypt", Doc: "whether clients should encrypt the session by default", Kind: driver.KindCall,
		Returns: driver.TypeBool,
		Call:    func(ctx context.Context, _ driver.Args) (any, error) { return defaultEncrypt, nil },
	})
}

// VNC is the vnc.VNC driver (Jumpstarter's Vnc): its `tcp` child (a network.TCP node or a ref
// to one) reaches the VNC server.
//
// Config:
//
//	default_encrypt: false   # Jumpstarter's: the default of its viewer's encryption
//
// children: tcp (required).
type VNC struct {
	DefaultEncrypt bool `yaml:"default_encrypt"`

	tcp network.Device
}

// New is the vnc.VNC constructor.
func New(env driver.Env) driver.Driver { return &VNC{} }

// UseChildren takes the tcp child.
func (v *VNC) UseChildren(children map[string]driver.Driver) error {
	c, ok := children["tcp"]
	if !ok {
		return fmt.Errorf(`a "tcp" child is required: a network.TCP node (or a ref to one) reaching the VNC server`)
	}
	d, ok := c.(network.Device)
	if !ok || d.Kind() != network.KindTCP {
		return fmt.Errorf(`child "tcp" must be a tcp network driver (network.TCP), got %T`, c)
	}
	v.tcp = d
	return nil
}

func (v *VNC) Open(ctx context.Context) error  { return nil }
func (v *VNC) Reset(ctx context.Context) error { return nil }
func (v *VNC) Close() error                    { return nil }

// The network.Device of the tcp child.
func (v *VNC) Kind() string { return network.KindTCP }
func (v *VNC) Addr() string {
	if v.tcp == nil { // the method table is built before the children are handed over
		return "the VNC server of the tcp child"
	}
	return v.tcp.Addr()
}
func (v *VNC) Connect(ctx context.Context, s driver.Stream) error {
	return v.tcp.Connect(ctx, s)
}

// Methods returns the jsn.vnc.v1 method table.
func (v *VNC) Methods() []driver.Method { return Methods(v, v.DefaultEncrypt) }

var (
	_ driver.ChildUser = (*VNC)(nil)
	_ network.Device   = (*VNC)(nil)
)
