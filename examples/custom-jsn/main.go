// Command mylab is jsn with one more driver: the whole CLI (package cli), every driver jsn ships
// (drivers/all), and this lab's own driver package. Build it with `go build -o mylab .` and use
// it exactly like jsn: `./mylab shell -c lab.yaml -- ./mylab call counter.add 5`.
package main

import (
	"os"

	"jsn.dev/jsn/cmd/jsn/cli"
	_ "jsn.dev/jsn/drivers/all" // the drivers jsn ships, with their CLI verbs

	_ "example.com/mylab/counter" // this lab's driver: registers type mylab.Counter
)

func main() { os.Exit(cli.Main()) }
