package client_test

import (
	"context"
	"fmt"
	"log"
	"time"

	"jsn.dev/jsn/client"
	"jsn.dev/jsn/controller/api"
)

// A multi-exporter lease: a board and a host to test it from, granted together or not at all,
// each reached with its own part's credential.
func ExampleController_GroupOptions() {
	ctx := context.Background()
	cfg, err := client.LoadConfig("") // $JSN_CLIENT_CONFIG or the current one
	if err != nil {
		log.Fatal(err)
	}
	ctl, err := client.DialController(ctx, cfg)
	if err != nil {
		log.Fatal(err)
	}
	defer ctl.Close()
	rep, err := ctl.RequestLease(ctx, api.LeaseRequest{Duration: 30 * time.Minute,
		Parts: client.Selectors([]string{"board=rpi4", "role=host"}, 1, nil)})
	if err != nil {
		log.Fatal(err)
	}
	defer ctl.Release(context.WithoutCancel(ctx), rep.Lease.ID) // every part
	if rep.Lease.Status != api.StatusActive {
		// Queued as one request, holding nothing, until both are free.
		if rep, err = ctl.WaitLease(ctx, rep.Lease.ID, nil); err != nil {
			log.Fatal(err)
		}
	}
	opts, err := ctl.GroupOptions(rep)
	if err != nil {
		log.Fatal(err)
	}
	for _, name := range client.PartExporters(rep) {
		ex, err := client.Dial(ctx, opts[name])
		if err != nil {
			log.Fatal(err)
		}
		state, err := ex.Driver("power").Call(ctx, "status")
		fmt.Println(name, state, err)
		ex.Close()
	}
}
