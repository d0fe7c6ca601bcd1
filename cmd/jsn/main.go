// Command jsn drives lab hardware over a NATS bus. All wiring lives in package cli.
package main

import (
	"os"

	"jsn.dev/jsn/cmd/jsn/cli"
)

func main() { os.Exit(cli.Main()) }
