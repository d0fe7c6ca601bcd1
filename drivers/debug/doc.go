// Package debug owns two interfaces of debugging and programming:
//
//   - jsn.gdb.v1: a GDB remote (gdbstub) of a board, reached through a byte stream, and the
//     `jsn debug gdb` verb that gives a local gdb a TCP port that leads to it. A QEMU board's
//     gdbstub (qemu.GDB, the board's `gdb` child) is one such driver.
//   - jsn.probe.v1: a debug probe attached to the exporter (debug.ProbeRS, Jumpstarter's
//     ProbeRs: the probe-rs tool run on the exporter; debug.OpenOCD: openocd run on the
//     exporter), and `jsn probe info|reset|erase|read|download`; firmware is uploaded through a
//     byte stream.
//
// The gdb method table is jsn.network.v1's (connect, address, kind: package network), so a gdbstub
// is forwarded exactly like a TCP service; the interface has a name of its own so `jsn debug
// gdb` finds the board's gdbstub among its network drivers.
//
// Nothing here reaches the bus or NATS (internal/layering checks).
package debug
