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

// methods builds the jsn.network.v1 method table shared by every network driver:
//
//	connect() <=> bytes    a byte stream to the service (framed datagrams for udp)
//	address() -> string    where the driver connects: host:port, or the socket path
//	kind() -> string       the transport: tcp, udp or unix
func methods(kind, addr string, enableAddress bool, connectDoc string, connect func(ctx context.Context, args driver.Args, s driver.Stream) error) []driver.Method {
	return []driver.Method{
		{Name: "connect", Doc: connectDoc, Kind: driver.KindByteStream, Bytes: connect},
		{
			Name: "address", Doc: "the address the driver connects to", Kind: driver.KindCall,
			Returns: driver.TypeString,
			Call: func(ctx context.Context, _ driver.Args) (any, error) {
				if !enableAddress {
					return nil, wire.Errorf(wire.FailedPrecondition, "address: disabled by enable_address: false")
				}
				return addr, nil
			},
		},
		{
			Name: "kind", Doc: "the transport of connect: tcp, udp or unix", Kind: driver.KindCall,
			Returns: driver.TypeString,
			Call:    func(ctx context.Context, _ driver.Args) (any, error) { return kind, nil },
		},
	}
}
