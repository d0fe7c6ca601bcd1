// Package bus owns everything that touches NATS: the embedded server (in-process, a Unix socket in
// a private directory for local mode, loopback TCP), connections with private inbox prefixes,
// subject names, the msgpack codec, the wire error catalogue, and flow-controlled byte streams over
// core NATS subjects.
//
// It is the only package of jsn that imports nats.go or nats-server. It knows nothing of drivers,
// leases or exporters beyond the subject layout: callers above it speak in subjects, headers and
// bytes.
package bus
