// Package remote is the NATS-free face of package client: the interfaces that typed clients
// (power.Client, serial.Client, …) and the CLI verbs of driver packages are written against. A
// remote.Driver is a handle on one driver of an exporter; remote.Exporter finds and describes
// them.
//
// Package client implements these over the bus (*client.Driver is a remote.Driver); the jsn CLI
// hands driver verbs a remote.Exporter. Keeping driver packages on this package rather than on
// client keeps NATS out of them, so a driver package (and an out-of-process driver built from
// one) links only the wire contract.
//
// It must not import NATS, package bus or package client; errors are those of package wire.
package remote
