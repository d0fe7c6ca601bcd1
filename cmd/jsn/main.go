// Command jsn drives lab hardware over a NATS bus. The command tree lives in package cli; this
// file picks the drivers the binary links in (every one, with their CLI verbs).
package main

import (
	"os"

	"jsn.dev/jsn/cmd/jsn/cli"

	_ "jsn.dev/jsn/cmd/jsn/mcpcmd" // jsn mcp: the MCP server, which links driver clients
	_ "jsn.dev/jsn/drivers/all"    // every driver and its CLI verbs
)

func main() { os.Exit(cli.Main()) }
