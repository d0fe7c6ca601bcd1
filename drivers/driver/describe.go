package driver

import "jsn.dev/jsn/bus/wire"

// The describe types are part of the wire contract (package wire); these names keep the
// framework's callers reading as before.
type (
	Description = wire.Description
	NodeDesc    = wire.NodeDesc
	MethodDesc  = wire.MethodDesc
	ArgDesc     = wire.ArgDesc
)
