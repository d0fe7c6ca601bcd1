// Package serial owns the jsn.serial.v1 interface: serial consoles. Its Port driver keeps a
// device (/dev/ttyUSB0) or a ser2net-style raw TCP port (socket://host:port) open for the whole
// life of the exporter, records everything the device prints into a bounded, timestamped ring
// buffer, broadcasts it on the driver's tap subject and fans it out to every open console stream.
// An absent or unplugged device makes the driver unavailable, not broken: it reopens the device
// when it comes back.
//
// The package also holds the typed client (Client, with Expect for scripts) and the CLI verbs
// `jsn serial console|pipe|expect|log` and the generic `jsn tap`.
//
// Driver code here must not import NATS, write to stdout, or log through the global logger.
package serial
