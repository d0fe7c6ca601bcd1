// Package network owns the jsn.network.v1 interface: connections to a network service next to
// the device (a board's SSH port, a DNS or TFTP server, a QEMU monitor socket). Every driver
// exports connect (a byte stream), address and kind ("tcp", "udp" or "unix"):
//
//   - TCP tunnels each stream to its own TCP connection, half-close carried both ways;
//   - UDP carries datagrams over the stream, each framed by a 2-byte big-endian length
//     (WriteDatagram, ReadDatagram), to and from its own connected UDP socket;
//   - Unix tunnels each stream to its own Unix stream socket connection, like TCP.
//
// The typed client (Client) dials streams, and serves local listeners through them: Forward for
// TCP and Unix listeners, ForwardPacket for a UDP socket with one stream per local peer. The
// package also holds the `jsn forward` and `jsn ssh` commands.
//
// Nothing here reaches the bus or NATS (drivers speak package wire, the client and commands
// client/remote; internal/layering checks), writes to stdout, or logs through the global logger.
package network
