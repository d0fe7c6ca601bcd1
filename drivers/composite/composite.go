package composite

import (
	"context"

	"jsn.dev/jsn/drivers/driver"
)

// Type is the registered type of a composite node.
const Type = "composite"

// Jumpstarter class names mapped by this package.
const (
	JumpstarterComposite = "jumpstarter_driver_composite.driver.Composite"
	JumpstarterProxy     = "jumpstarter_driver_composite.driver.Proxy"
)

// ProxyType is the jsn name of Jumpstarter's Proxy class. A node of this type, with
// `config: {ref: path}`, is built into a ref node exactly like `ref: path` (driver.Info.Ref).
const ProxyType = "proxy"

func init() {
	driver.MustRegister(driver.Info{
		Type:    Type,
		Doc:     "groups child drivers",
		New:     func(driver.Env) driver.Driver { return &Composite{} },
		Aliases: []string{JumpstarterComposite},
	})
	driver.MustRegister(driver.Info{
		Type:    ProxyType,
		Doc:     "proxy to another driver",
		Aliases: []string{JumpstarterProxy},
		Ref:     true,
	})
}

// Composite groups child drivers. It has no config and no methods; its children are opened,
// reset and closed by the framework.
type Composite struct{}

// Open does nothing.
func (*Composite) Open(context.Context) error { return nil }

// Reset does nothing.
func (*Composite) Reset(context.Context) error { return nil }

// Close does nothing.
func (*Composite) Close() error { return nil }

var _ driver.Driver = (*Composite)(nil)
