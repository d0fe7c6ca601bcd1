// Package api holds the messages of the controller's wire API (see docs/protocol.md and the
// distributed-mode contract): what exporters, clients and admins send to the controller on
// jsn.ctl.e.<exporter>.…, jsn.ctl.c.<client>.… and jsn.ctl.a.<admin>.…, and what it answers.
// Messages are msgpack maps with snake_case keys.
//
// It is a leaf package: plain data types and subject helpers only, no I/O, no NATS.
package api
