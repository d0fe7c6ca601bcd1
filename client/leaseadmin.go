package client

import (
	"context"

	"jsn.dev/jsn/controller/api"
)

// DisableExporter takes exporter name out of service (admin API): no new lease is granted it;
// with end its current lease ends too.
func (c *Controller) DisableExporter(ctx context.Context, name, reason string, end bool) error {
	return c.admin(ctx, api.VerbExporterOff, api.ExporterStateRequest{Name: name, Reason: reason, End: end}, nil)
}

// EnableExporter puts exporter name back in service (admin API) and clears its count of
// afterLease hook failures.
func (c *Controller) EnableExporter(ctx context.Context, name string) error {
	return c.admin(ctx, api.VerbExporterOn, api.ExporterStateRequest{Name: name}, nil)
}

// SetPolicy creates or replaces policy p (admin API).
func (c *Controller) SetPolicy(ctx context.Context, p api.Policy) error {
	return c.admin(ctx, api.VerbPolicySet, p, nil)
}

// GetPolicy returns policy name (admin API).
func (c *Controller) GetPolicy(ctx context.Context, name string) (*api.Policy, error) {
	var p api.Policy
	if err := c.admin(ctx, api.VerbPolicyGet, api.PolicyName{Name: name}, &p); err != nil {
		return nil, err
	}
	return &p, nil
}

// ListPolicies lists the policies by name (admin API).
func (c *Controller) ListPolicies(ctx context.Context) ([]api.Policy, error) {
	var r api.ListPoliciesReply
	err := c.admin(ctx, api.VerbPolicyList, api.Empty{}, &r)
	return r.Policies, err
}

// DeletePolicy deletes policy name (admin API).
func (c *Controller) DeletePolicy(ctx context.Context, name string) error {
	return c.admin(ctx, api.VerbPolicyDelete, api.PolicyName{Name: name}, nil)
}
