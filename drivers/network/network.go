package network

import (
	"context"

	"jsn.dev/jsn/bus/wire"
	"jsn.dev/jsn/drivers/driver"
)

// Interface is the name of the interface the network drivers implement.
const Interface = "jsn.network.v1"

// The transports a jsn.network.v1 driver reports from its kind method.
const (
	KindTCP  = "tcp"  // connect is a TCP byte stream with half-close
	KindUDP  = "udp"  // connect carries datagrams framed as in WriteDatagram
	KindUnix = "unix" // connect is a Unix stream socket byte stream with half-close
)

// Device is what a network driver implements; Methods turns it into the jsn.network.v1 method
// table.
type Device interface {
	// Kind is the transport connect carries: KindTCP, KindUDP or KindUnix.
	Kind() string
	// Addr is where the driver connects: host:port, or the socket path.
	Addr() string
	// Connect carries the client stream s to a new connection to the service until both
	// directions are done (for KindUDP, datagrams framed as in WriteDatagram).
	Connect(ctx context.Context, s driver.Stream) error
}

// Options tune the method table built by Methods.
type Options struct {
	// HideAddress makes address fail FAILED_PRECONDITION instead of telling clients Addr (a
	// driver's `enable_address: false`).
	HideAddress bool
}

// Methods returns the jsn.network.v1 method table served by d:
//
//	connect() <=> bytes    a byte stream to the service (framed datagrams for udp)
//	address() -> string    where the driver connects: host:port, or the socket path
//	kind() -> string       the transport: tcp, udp or unix
func Methods(d Device, o Options) []driver.Method {
	return []driver.Method{
		{
			Name: "connect", Doc: connectDoc(d.Kind(), d.Addr()), Kind: driver.KindByteStream,
			Bytes: func(ctx context.Context, _ driver.Args, s driver.Stream) error { return d.Connect(ctx, s) },
		},
		{
			Name: "address", Doc: "the address the driver connects to", Kind: driver.KindCall,
			Returns: driver.TypeString,
			Call: func(ctx context.Context, _ driver.Args) (any, error) {
				if o.HideAddress {
					return nil, wire.Errorf(wire.FailedPrecondition, "address: disabled by enable_address: false")
				}
				return d.Addr(), nil
			},
		},
		{
			Name: "kind", Doc: "the transport of connect: tcp, udp or unix", Kind: driver.KindCall,
			Returns: driver.TypeString,
			Call:    func(ctx context.Context, _ driver.Args) (any, error) { return d.Kind(), nil },
		},
	}
}

// connectDoc describes connect for describe.
func connectDoc(kind, addr string) string {
	switch kind {
	case KindUDP:
		return "open a datagram stream to " + addr + " (udp, length-framed)"
	case KindUnix:
		return "open a byte stream to the Unix socket " + addr
	}
	return "open a byte stream to " + addr
}
