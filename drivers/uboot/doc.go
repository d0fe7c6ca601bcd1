// Package uboot owns the jsn.uboot.v1 interface: a U-Boot console driven on top of a serial
// child (and, to reboot into it, a power child). It interrupts autoboot, runs commands and waits
// for the prompt (returning their output and exit status), and reads and sets the environment.
// It holds the method table (Methods) over the Go interface (Device), the driver (Console,
// Jumpstarter's UbootConsole), the console session logic other drivers reuse (the flasher), the
// typed client (Client) and the `jsn uboot` verbs.
//
// Nothing here reaches the bus or NATS (internal/layering checks), writes to stdout, or logs
// through the global logger.
package uboot
