// Package fileserver owns the jsn.fileserver.v1 interface: a directory of the exporter served to
// the device over the network (TFTP, HTTP), whose files the lease holder uploads, lists and
// deletes through jsn. It holds the interface's method table (Methods) over the Go interface
// servers implement (Device), the shared directory logic (Dir), the two servers (TFTP, a small
// read-only RFC 1350 server with the blksize, tsize, timeout and windowsize options; HTTP, the
// standard library's file server), the typed client (Client) and the `jsn fileserver` verbs.
//
// Nothing here reaches the bus or NATS (internal/layering checks), writes to stdout, or logs
// through the global logger.
package fileserver
