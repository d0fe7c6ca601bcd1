// Package client is the Go API of jsn: it connects to a bus (a local session's Unix socket or a
// lab's NATS endpoint), describes exporters, calls their drivers, opens byte streams, observes
// taps, and in distributed mode talks to the controller (Controller: leases and exporters, and
// with an admin's client config, identities), reading client configs (clientconfig's schema).
//
// The CLI and every other program reach exporters and the controller only through this package.
// Typed clients per interface (power.NewClient, serial.NewClient, …) live beside their drivers
// and build on remote.Driver (package client/remote, NATS-free), which *Driver implements.
// Errors that crossed the bus match the sentinels here (those of package wire) with errors.Is.
//
// It must not write to stdout or the global logger.
package client
