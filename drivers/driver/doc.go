// Package driver is the driver framework: the Driver API every device driver implements, the
// registry of driver types, strict decoding of a node's `config:` with file:line:col errors (with
// package yamlconf, whose error and FieldErrorf names it re-exports for drivers), the
// driver tree built from an exporter config's `export:` mapping (children, built-in children,
// refs), its life cycle (Open, Reset, Close), method tables, argument conversion and the
// describe output.
//
// It knows nothing about the bus: errors it returns carry codes of the wire contract (package
// wire, whose describe types it fills in), and it must not reach package bus or NATS (the layering
// test in internal/layering checks), talk to the network, or write to stdout or the global
// logger. Loading the whole exporter config file is the exporter package's job; serving calls is
// the exporter's too.
package driver
