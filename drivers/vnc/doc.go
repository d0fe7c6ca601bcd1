// Package vnc owns the jsn.vnc.v1 interface: a board's VNC (RFB) server reached through a byte
// stream, and the `jsn vnc` verb that gives a local VNC viewer a port leading to it. Its drivers
// are vnc.VNC (Jumpstarter's Vnc: a `tcp` child reaching a VNC server) and a QEMU board's screen
// (qemu.VNC, the board's `vnc` child).
//
// The method table is jsn.network.v1's (connect, address, kind: package network) plus
// default_encrypt; the interface has a name of its own so `jsn vnc` finds the VNC server among
// the exporter's network drivers.
//
// Nothing here reaches the bus or NATS (internal/layering checks).
package vnc
