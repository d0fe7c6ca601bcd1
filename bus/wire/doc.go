// Package wire is jsn's wire contract, free of NATS: what crosses the bus and what every side
// (drivers, client, exporter, controller, out-of-process drivers) must agree on.
//
// It owns the closed error catalogue (Code, Error, Errorf, the Err… sentinels for errors.Is) and
// how an error rides in reply headers (ErrorHeader, ReplyError); the msgpack codec (Marshal,
// Unmarshal, call arguments, stream items) with its pre-decode check that bounds what a hostile
// message can make the decoder allocate; subject names and the token rules for exporter, driver
// and method names; the describe types (Description, method kinds, argument types); and the
// encoding of byte-stream frames. docs/protocol.md is the prose version.
//
// It must not import NATS (nats.go, nats-server) nor any other package of jsn: package bus
// moves these bytes over NATS, and the layering test (internal/layering) keeps this package a leaf.
package wire
