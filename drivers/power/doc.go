// Package power owns the jsn.power.v1 interface: switching a device's supply on and off, cycling
// it, and reading its voltage and current. It holds the method table every power driver exports
// (Methods), the Go interface those drivers implement (Device), the Mock driver, the backends
// for real switches (Command, Ykush, HTTP with Tasmota and Shelly presets, Tasmota over MQTT),
// and the typed client (Client).
//
// Nothing here reaches the bus or NATS (drivers speak package wire, the client and verbs
// client/remote; internal/layering checks), writes to stdout, or logs through the global logger.
// The wire carries plain float64 SI units, while Go code uses Volts and Amperes.
package power
