// Package debug owns the jsn.gdb.v1 interface: a GDB remote (gdbstub) of a board, reached
// through a byte stream, and the `jsn debug gdb` verb that gives a local gdb a TCP port that
// leads to it. A QEMU board's gdbstub (qemu.GDB, the board's `gdb` child) is one such driver.
//
// The method table is jsn.network.v1's (connect, address, kind: package network), so a gdbstub
// is forwarded exactly like a TCP service; the interface has a name of its own so `jsn debug
// gdb` finds the board's gdbstub among its network drivers.
//
// Nothing here reaches the bus or NATS (internal/layering checks).
package debug
