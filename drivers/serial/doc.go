// Package serial owns the jsn.serial.v1 interface: serial consoles. Its Port driver keeps a
// device (/dev/ttyUSB0) or a ser2net-style raw TCP port (socket://host:port) open for the whole
// life of the exporter, records everything the device prints into a bounded, timestamped ring
// buffer, broadcasts it on the driver's tap subject and fans it out to every open console stream.
// An absent or unplugged device makes the driver unavailable, not broken: it reopens the device
// when it comes back.
//
// The package also holds the typed client (Client, with Expect for scripts) and the CLI verbs
// `jsn serial console|pipe|expect|log` (`jsn tap`, which works for any tapping driver, is the
// CLI's).
//
// Nothing here reaches the bus or NATS (the driver speaks package wire, the client and verbs
// client/remote; internal/layering checks), writes to stdout, or logs through the global logger.
package serial
