package network

import (
	"context"
	"io"

	"jsn.dev/jsn/drivers/driver"
)

func init() {
	driver.MustRegister(driver.Info{
		Type:      "network.Echo",
		Interface: Interface,
		Doc:       "a byte stream that sends back what it receives (for tests and demos)",
		New:       func(driver.Env) driver.Driver { return &Echo{} },
		Aliases:   []string{"jumpstarter_driver_network.driver.EchoNetwork"},
	})
}

// Echo is the network.Echo driver (Jumpstarter's EchoNetwork): connect returns every byte the
// client sends, and half-closes when the client does. It takes no config.
type Echo struct{}

func (*Echo) Open(context.Context) error  { return nil }
func (*Echo) Reset(context.Context) error { return nil }
func (*Echo) Close() error                { return nil }

func (*Echo) Kind() string { return KindTCP }
func (*Echo) Addr() string { return "echo" }

// Connect copies s to itself until the client half-closes.
func (*Echo) Connect(ctx context.Context, s driver.Stream) error {
	if _, err := io.Copy(s, s); err != nil {
		return err
	}
	return s.CloseWrite()
}

// Methods returns the jsn.network.v1 method table.
func (e *Echo) Methods() []driver.Method { return Methods(e, Options{}) }
