package drivertest

import (
	"context"
	"fmt"
	"sync"

	"jsn.dev/jsn/bus/wire"
	"jsn.dev/jsn/drivers/driver"
)

// Method returns the method called name from d's method table, or a NOT_FOUND error listing the
// methods d has.
func Method(d driver.Driver, name string) (*driver.Method, error) {
	m, ok := d.(driver.Methoder)
	if !ok {
		return nil, wire.Errorf(wire.NotFound, "%T has no methods", d)
	}
	var names []string
	for _, meth := range m.Methods() {
		if meth.Name == name {
			return &meth, nil
		}
		names = append(names, meth.Name)
	}
	return nil, wire.Errorf(wire.NotFound, "%T has no method %q; it has %v", d, name, names)
}

func method(d driver.Driver, name string, kind driver.Kind) (*driver.Method, error) {
	m, err := Method(d, name)
	if err != nil {
		return nil, err
	}
	if m.Kind != kind {
		return nil, fmt.Errorf("method %s is %s, not %s", name, m.Kind, kind)
	}
	return m, nil
}

// CallMethod calls the call-kind method name of d with args as they are (no conversion: pass
// the Go types the method's Arg types name, int64 for int, time.Duration for duration).
func CallMethod(ctx context.Context, d driver.Driver, name string, args ...any) (any, error) {
	m, err := method(d, name, driver.KindCall)
	if err != nil {
		return nil, err
	}
	return m.Call(ctx, driver.Args(args))
}

// CollectStream calls the server-stream method name of d and returns every item it sent, with
// the error it returned.
func CollectStream(ctx context.Context, d driver.Driver, name string, args ...any) ([]any, error) {
	m, err := method(d, name, driver.KindServerStream)
	if err != nil {
		return nil, err
	}
	var items []any
	err = m.Stream(ctx, driver.Args(args), func(item any) error {
		items = append(items, item)
		return nil
	})
	return items, err
}

// Conn is the client's end of a byte-stream method running in a goroutine (see OpenStream).
type Conn struct {
	driver.Stream               // the client side of the Pipe
	done          chan struct{} // closed when the handler returned
	err           error         // the handler's result; set before done is closed
	once          sync.Once
}

// OpenStream calls the byte-stream method name of d in a new goroutine with the exporter side of
// a Pipe, as the exporter would, and returns the client side. When the handler returns, the
// exporter side is half-closed (if the handler returned nil) and closed. Wait returns the
// handler's error; Close closes the client side and waits for the handler.
func OpenStream(ctx context.Context, d driver.Driver, name string, args ...any) (*Conn, error) {
	m, err := method(d, name, driver.KindByteStream)
	if err != nil {
		return nil, err
	}
	srv, cli := Pipe()
	c := &Conn{Stream: cli, done: make(chan struct{})}
	go func() {
		defer close(c.done)
		c.err = m.Bytes(ctx, driver.Args(args), srv)
		if c.err == nil {
			srv.CloseWrite()
		}
		srv.Close()
	}()
	return c, nil
}

// Wait waits for the handler to return and returns its error.
func (c *Conn) Wait() error {
	<-c.done
	return c.err
}

// Done is closed when the handler has returned.
func (c *Conn) Done() <-chan struct{} { return c.done }

// Close closes the client side (a reset unless it was half-closed) and waits for the handler.
// It returns the handler's error.
func (c *Conn) Close() error {
	c.once.Do(func() { c.Stream.Close() })
	return c.Wait()
}
