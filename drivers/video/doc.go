// Package video owns the jsn.video.v1 interface: looking at a device's screen. It holds the
// interface's method table (Methods) built on the Go interface screen drivers implement
// (Device), the typed client (Client) and the `jsn video snapshot` verb. The screen of a QEMU
// board (qemu.Video) is one such driver.
//
// Nothing here reaches the bus or NATS (the method table speaks package wire, the client and verb
// client/remote; internal/layering checks), writes to stdout, or logs through the global logger.
package video
