package controller

import (
	"context"
	"fmt"
	"time"

	"jsn.dev/jsn/bus/wire"
	"jsn.dev/jsn/controller/api"
)

// RegisterSimulated registers n in-process exporters named prefix-0…prefix-(n-1) with labels
// straight into the buckets (identity plus a fresh registration), for benchmarks and memory
// measurements. They look online until OfflineAfter passes without Touch.
func (c *Controller) RegisterSimulated(ctx context.Context, prefix string, n int, labels map[string]string) error {
	now := time.Now().UTC()
	for i := range n {
		name := fmt.Sprintf("%s-%d", prefix, i)
		id := api.Identity{Name: name, Kind: api.KindExporter, PublicKey: "simulated", Labels: labels, Created: now, Scheme: api.IdentityScheme}
		if err := c.storeIdentity(ctx, &id); err != nil {
			return err
		}
		if err := c.putExporter(ctx, &exporterRecord{Name: name, Labels: labels, Registered: now, LastSeen: now}); err != nil {
			return err
		}
	}
	return nil
}

// TouchSimulated marks the simulated exporters seen now (a heartbeat for each).
func (c *Controller) TouchSimulated(ctx context.Context, prefix string, n int) error {
	for i := range n {
		name := fmt.Sprintf("%s-%d", prefix, i)
		c.mu.Lock()
		old := c.exps[name]
		c.mu.Unlock()
		if old == nil {
			return wire.Errorf(wire.NotFound, "simulated exporter %s not registered", name)
		}
		rec := *old
		rec.LastSeen = time.Now().UTC()
		if err := c.putExporter(ctx, &rec); err != nil {
			return err
		}
	}
	return nil
}
