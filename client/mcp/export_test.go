package mcp

// ConvertArgs is convertArgs, for the fuzz test.
var ConvertArgs = convertArgs
