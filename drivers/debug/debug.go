package debug

import (
	"jsn.dev/jsn/drivers/driver"
	"jsn.dev/jsn/drivers/network"
)

// GDBInterface is the interface of GDB remote drivers: jsn.network.v1's methods on a gdbstub.
const GDBInterface = "jsn.gdb.v1"

// GDBMethods returns the method table of a gdbstub reached through d: network's connect,
// address and kind.
func GDBMethods(d network.Device) []driver.Method { return network.Methods(d, network.Options{}) }
