package client_test

import (
	"context"
	"errors"
	"fmt"
	"log"

	"jsn.dev/jsn/client"
	_ "jsn.dev/jsn/drivers/all"
	"jsn.dev/jsn/exporter"
)

// A local session, as `jsn shell -c lab.yaml` starts it, driven from Go.
func Example() {
	ctx := context.Background()
	cfg, err := exporter.ParseConfig("lab.yaml", []byte(`apiVersion: jsn.dev/v1alpha1
kind: ExporterConfig
metadata: {name: demo}
export:
  power: {type: power.Mock}
`))
	if err != nil {
		log.Fatal(err)
	}
	lab, err := exporter.StartLocal(ctx, cfg, exporter.LocalOptions{})
	if err != nil {
		log.Fatal(err)
	}
	defer lab.Close()

	// Inside a jsn shell this is client.Dial(ctx, client.OptionsFromEnv()).
	ex, err := client.Dial(ctx, client.Options{Host: lab.URL, Exporter: lab.Exporter, Lease: lab.Lease})
	if err != nil {
		log.Fatal(err)
	}
	defer ex.Close()

	power := ex.Driver("power")
	if err := power.CallInto(ctx, "on", nil); err != nil {
		log.Fatal(err)
	}
	state, err := power.Call(ctx, "status")
	fmt.Println(state, err)

	_, err = ex.Driver("power").Call(ctx, "explode")
	fmt.Println(errors.Is(err, client.ErrNotFound))
	// Output:
	// on <nil>
	// true
}
