// Package network owns the jsn.network.v1 interface: byte-stream connections to a network
// service next to the device (a board's SSH port, a debug server). It holds the TCP driver, which
// tunnels each client stream to its own TCP connection with half-close carried both ways, and
// the typed client (Client), whose Forward serves a local listener through the tunnel.
//
// It must not import the bus or NATS, write to stdout, or log through the global logger.
package network
