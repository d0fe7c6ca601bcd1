package controller

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"jsn.dev/jsn/bus"
	"jsn.dev/jsn/bus/wire"
	"jsn.dev/jsn/controller/api"
)

// Maintenance states live in the identities bucket under maint.<exporter> (an admin's writes,
// rare; the exporters bucket is rewritten by every heartbeat). An exporter in maintenance is
// granted no new lease; its current one may finish, or be ended with the disable.

const (
	maintPrefix  = "maint."
	policyPrefix = "policy."
)

// maintRecord is the value of maint.<exporter>.
type maintRecord struct {
	Maintenance *api.Maintenance `msgpack:"maintenance,omitempty"` // nil: in service
	Failures    int              `msgpack:"failures,omitempty"`    // afterLease hook failures in a row
	LastFailure string           `msgpack:"last_failure,omitempty"`
	LastLease   string           `msgpack:"last_lease,omitempty"` // the lease last counted (lease.done may be repeated)
}

// off reports whether the exporter is out of service.
func (m *maintRecord) off() bool { return m != nil && m.Maintenance != nil }

// syncExtra caches a maintenance or policy entry of the identities bucket; it reports whether e
// was one. c.mu must be held.
func (c *Controller) syncExtra(e *bus.KVEntry) bool {
	switch {
	case strings.HasPrefix(e.Key, maintPrefix):
		name := strings.TrimPrefix(e.Key, maintPrefix)
		var r maintRecord
		if e.Deleted || wire.Unmarshal(e.Value, &r) != nil {
			delete(c.maint, name)
		} else {
			c.maint[name] = &r
		}
	case strings.HasPrefix(e.Key, policyPrefix):
		name := strings.TrimPrefix(e.Key, policyPrefix)
		var p api.Policy
		if e.Deleted || wire.Unmarshal(e.Value, &p) != nil {
			delete(c.policies, name)
		} else {
			c.policies[name] = &p
		}
	default:
		return false
	}
	return true
}

// putMaint updates exporter e's maintenance record with change (compare and set, retried).
func (c *Controller) putMaint(ctx context.Context, e string, change func(*maintRecord)) (*maintRecord, error) {
	key := maintPrefix + e
	for attempt := 0; ; attempt++ {
		var r maintRecord
		var rev uint64
		cur, err := c.identities.Get(ctx, key)
		switch {
		case err == nil:
			rev = cur.Revision
			if wire.Unmarshal(cur.Value, &r) != nil {
				r = maintRecord{}
			}
		case errors.Is(err, bus.ErrKeyNotFound):
		default:
			return nil, err
		}
		change(&r)
		b, err := wire.Marshal(&r)
		if err != nil {
			return nil, err
		}
		var nrev uint64
		if rev == 0 {
			nrev, err = c.identities.Create(ctx, key, b, 0)
		} else {
			nrev, err = c.identities.Update(ctx, key, b, rev, 0)
		}
		if attempt < 5 && (errors.Is(err, bus.ErrKeyExists) || errors.Is(err, bus.ErrKeyChanged)) {
			continue
		}
		if err != nil {
			return nil, err
		}
		c.mu.Lock()
		if c.fresh("i/"+key, nrev) {
			c.maint[e] = &r
		}
		c.mu.Unlock()
		c.kickScheduler()
		return &r, nil
	}
}

func (c *Controller) exporterDisable(ctx context.Context, who string, data []byte) (any, error) {
	if err := c.isAdmin(who); err != nil {
		return nil, err
	}
	var req api.ExporterStateRequest
	if err := decode(data, &req); err != nil {
		return nil, err
	}
	if c.identity(api.KindExporter, req.Name) == nil {
		return nil, wire.Errorf(wire.NotFound, "disable exporter %q: no such exporter", req.Name)
	}
	req.Reason = strings.TrimSpace(req.Reason)
	if req.Reason == "" || len(req.Reason) > 500 {
		return nil, wire.Errorf(wire.InvalidArgument, "disable exporter %s: give a reason (--reason, at most 500 characters): users see it", req.Name)
	}
	if _, err := c.putMaint(ctx, req.Name, func(r *maintRecord) {
		r.Maintenance = &api.Maintenance{Reason: req.Reason, By: who, Since: time.Now().UTC()}
	}); err != nil {
		return nil, err
	}
	if req.End {
		c.mu.Lock()
		le := c.active[req.Name]
		c.mu.Unlock()
		if le.live() {
			if err := c.endLease(ctx, req.Name, le, fmt.Sprintf("exporter %s taken out of service by %s: %s", req.Name, who, req.Reason)); err != nil {
				return nil, err
			}
		}
	}
	return api.Empty{}, nil
}

func (c *Controller) exporterEnable(ctx context.Context, who string, data []byte) (any, error) {
	if err := c.isAdmin(who); err != nil {
		return nil, err
	}
	var req api.ExporterStateRequest
	if err := decode(data, &req); err != nil {
		return nil, err
	}
	if c.identity(api.KindExporter, req.Name) == nil {
		return nil, wire.Errorf(wire.NotFound, "enable exporter %q: no such exporter", req.Name)
	}
	_, err := c.putMaint(ctx, req.Name, func(r *maintRecord) { *r = maintRecord{} })
	return api.Empty{}, err
}

// hookResult counts exporter e's afterLease hook failures in a row; at Options.HookFailures it
// puts e in maintenance.
func (c *Controller) hookResult(ctx context.Context, e, lease, failed string) {
	c.mu.Lock()
	m := c.maint[e]
	c.mu.Unlock()
	if failed == "" && (m == nil || m.Failures == 0) || m != nil && m.LastLease == lease {
		return // the common case (nothing to write), or a repeated lease.done
	}
	_, err := c.putMaint(ctx, e, func(r *maintRecord) {
		if r.LastLease == lease {
			return
		}
		r.LastLease = lease
		if failed == "" {
			r.Failures, r.LastFailure = 0, ""
			return
		}
		r.Failures++
		r.LastFailure = failed
		if c.o.HookFailures > 0 && r.Failures >= c.o.HookFailures && r.Maintenance == nil {
			r.Maintenance = &api.Maintenance{By: "controller", Since: time.Now().UTC(),
				Reason: fmt.Sprintf("afterLease hook failed %d times in a row (last: %s); jsn admin exporter enable %s puts it back", r.Failures, failed, e)}
			c.log.Warn("exporter put in maintenance: its afterLease hook keeps failing", "exporter", e, "failures", r.Failures, "last", failed)
		}
	})
	if err != nil {
		c.log.Warn("record afterLease hook result", "exporter", e, "err", err)
	}
}

// maintenanceOf returns exporter e's maintenance state (nil: in service) and hook failures.
func (c *Controller) maintenanceOf(e string) (*api.Maintenance, int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if m := c.maint[e]; m != nil {
		return m.Maintenance, m.Failures
	}
	return nil, 0
}
