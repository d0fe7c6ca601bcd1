// Command natsprobe is the start-up floor of any NATS client in Go: it links nats.go (and what
// nats.go links) and does nothing else. The cli-start benchmark times it next to jsn.
package main

import (
	"fmt"

	"github.com/nats-io/nats.go"
)

func main() { fmt.Println("nats.go", nats.Version) }
