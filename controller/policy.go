package controller

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"jsn.dev/jsn/bus"
	"jsn.dev/jsn/bus/wire"
	"jsn.dev/jsn/controller/api"
)

// Policies live in the identities bucket under policy.<name>; every replica caches them.

// policiesFor returns the policies that apply to client id, sorted by name (none for admins).
func (c *Controller) policiesFor(id *api.Identity) []*api.Policy {
	if id == nil || id.Admin {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []*api.Policy
	for _, p := range c.policies {
		if slices.Contains(p.Clients, id.Name) || id.Group != "" && slices.Contains(p.Groups, id.Group) {
			out = append(out, p)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// policyFor returns the applying policy with the smallest maximum duration, nil if none sets one.
func (c *Controller) policyFor(id *api.Identity) *api.Policy {
	var best *api.Policy
	for _, p := range c.policiesFor(id) {
		if p.MaxDuration > 0 && (best == nil || p.MaxDuration < best.MaxDuration) {
			best = p
		}
	}
	return best
}

// applyPolicies checks request req of client id against its policies and returns the selector
// the request is scheduled with: the request's, narrowed by every policy selector. Refusals name
// the policy.
func (c *Controller) applyPolicies(id *api.Identity, req *api.LeaseRequest) (string, error) {
	sel := req.Selector
	for _, p := range c.policiesFor(id) {
		switch {
		case p.MaxPriority != nil && req.Priority > *p.MaxPriority:
			return "", wire.Errorf(wire.PermissionDenied, "lease request: priority %d exceeds the ceiling of %d of policy %s", req.Priority, *p.MaxPriority, p.Name)
		case p.MaxDuration > 0 && req.Duration > p.MaxDuration:
			return "", wire.Errorf(wire.PermissionDenied, "lease request: duration %v exceeds the maximum of %v of policy %s", req.Duration, p.MaxDuration, p.Name)
		}
		if p.Selector == "" {
			continue
		}
		if req.Exporter != "" {
			ps, _ := ParseSelector(p.Selector)
			c.mu.Lock()
			e := c.exps[req.Exporter]
			ok := e != nil && ps.Matches(e.Labels)
			c.mu.Unlock()
			if !ok {
				return "", wire.Errorf(wire.PermissionDenied, "lease request: exporter %s is outside policy %s, which allows only exporters matching %q", req.Exporter, p.Name, p.Selector)
			}
			continue
		}
		sel += "," + p.Selector
	}
	return sel, nil
}

func (c *Controller) policySet(ctx context.Context, who string, data []byte) (any, error) {
	if err := c.isAdmin(who); err != nil {
		return nil, err
	}
	var p api.Policy
	if err := decode(data, &p); err != nil {
		return nil, err
	}
	if err := checkPolicy(&p); err != nil {
		return nil, wire.Errorf(wire.InvalidArgument, "set policy %q: %v", p.Name, err)
	}
	b, err := wire.Marshal(&p)
	if err != nil {
		return nil, err
	}
	rev, err := c.identities.Put(ctx, policyPrefix+p.Name, b)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	if c.fresh("i/"+policyPrefix+p.Name, rev) {
		c.policies[p.Name] = &p
	}
	c.mu.Unlock()
	return api.Empty{}, nil
}

// checkPolicy validates an admin's policy.
func checkPolicy(p *api.Policy) error {
	if !wire.ValidName(p.Name) || len(p.Name) > 64 {
		return errors.New("name: want at most 64 letters, digits, - and _")
	}
	if len(p.Clients) == 0 && len(p.Groups) == 0 {
		return errors.New("name the clients (--client) or groups (--group) it applies to")
	}
	for _, n := range append(slices.Clone(p.Clients), p.Groups...) {
		if !wire.ValidName(n) {
			return fmt.Errorf("client or group %q: want letters, digits, - and _", n)
		}
	}
	if p.MaxDuration < 0 {
		return errors.New("max duration: must not be negative")
	}
	if p.MaxPriority != nil && *p.MaxPriority < MinPriority {
		return fmt.Errorf("max priority %d: below the minimum of %d", *p.MaxPriority, MinPriority)
	}
	if strings.TrimSpace(p.Selector) != p.Selector {
		p.Selector = strings.TrimSpace(p.Selector)
	}
	if p.Selector != "" {
		if _, err := ParseSelector(p.Selector); err != nil {
			return fmt.Errorf("selector: %v", err)
		}
	}
	return nil
}

func (c *Controller) policyGet(ctx context.Context, who string, data []byte) (any, error) {
	if err := c.isAdmin(who); err != nil {
		return nil, err
	}
	var req api.PolicyName
	if err := decode(data, &req); err != nil {
		return nil, err
	}
	c.mu.Lock()
	p := c.policies[req.Name]
	c.mu.Unlock()
	if p == nil {
		return nil, wire.Errorf(wire.NotFound, "policy %q: not found", req.Name)
	}
	return *p, nil
}

func (c *Controller) policyList(ctx context.Context, who string, data []byte) (any, error) {
	if err := c.isAdmin(who); err != nil {
		return nil, err
	}
	c.mu.Lock()
	out := api.ListPoliciesReply{Policies: []api.Policy{}}
	for _, p := range c.policies {
		out.Policies = append(out.Policies, *p)
	}
	c.mu.Unlock()
	sort.Slice(out.Policies, func(i, j int) bool { return out.Policies[i].Name < out.Policies[j].Name })
	return out, nil
}

func (c *Controller) policyDelete(ctx context.Context, who string, data []byte) (any, error) {
	if err := c.isAdmin(who); err != nil {
		return nil, err
	}
	var req api.PolicyName
	if err := decode(data, &req); err != nil {
		return nil, err
	}
	c.mu.Lock()
	p := c.policies[req.Name]
	c.mu.Unlock()
	if p == nil || !wire.ValidName(req.Name) {
		return nil, wire.Errorf(wire.NotFound, "policy %q: not found", req.Name)
	}
	rev, err := c.identities.Delete(ctx, policyPrefix+req.Name, 0)
	if err != nil && !errors.Is(err, bus.ErrKeyNotFound) {
		return nil, err
	}
	c.mu.Lock()
	if err == nil && c.fresh("i/"+policyPrefix+req.Name, rev) {
		delete(c.policies, req.Name)
	}
	c.mu.Unlock()
	return api.Empty{}, nil
}

// checkHolder checks that client id may hold lease l on exporter e as it is, for a transfer
// (whole: its priority and the time it has left too) or a share (only the exporters id may use).
// what names the operation ("transfer L to bob"); refusals are worded as request refusals and
// name the client's cap or policy.
func (c *Controller) checkHolder(what string, id *api.Identity, l *api.Lease, e string, whole bool) error {
	if id.Admin {
		return nil
	}
	left := time.Until(credEnd(l)).Truncate(time.Second)
	if whole {
		switch {
		case l.Priority > id.MaxPriority:
			return wire.Errorf(wire.PermissionDenied, "%s: priority %d exceeds client %s's maximum of %d", what, l.Priority, id.Name, id.MaxPriority)
		case id.MaxDuration > 0 && left > id.MaxDuration:
			return wire.Errorf(wire.PermissionDenied, "%s: duration left %v exceeds client %s's cap of %v", what, left, id.Name, id.MaxDuration)
		}
	}
	for _, p := range c.policiesFor(id) {
		switch {
		case whole && p.MaxPriority != nil && l.Priority > *p.MaxPriority:
			return wire.Errorf(wire.PermissionDenied, "%s: priority %d exceeds the ceiling of %d of policy %s", what, l.Priority, *p.MaxPriority, p.Name)
		case whole && p.MaxDuration > 0 && left > p.MaxDuration:
			return wire.Errorf(wire.PermissionDenied, "%s: duration left %v exceeds the maximum of %v of policy %s", what, left, p.MaxDuration, p.Name)
		}
		if p.Selector == "" {
			continue
		}
		ps, _ := ParseSelector(p.Selector)
		c.mu.Lock()
		x := c.exps[e]
		ok := x != nil && ps.Matches(x.Labels)
		c.mu.Unlock()
		if !ok {
			return wire.Errorf(wire.PermissionDenied, "%s: exporter %s is outside policy %s, which allows only exporters matching %q", what, e, p.Name, p.Selector)
		}
	}
	return nil
}
