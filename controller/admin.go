package controller

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"jsn.dev/jsn/bus"
	"jsn.dev/jsn/bus/wire"
	"jsn.dev/jsn/client/clientconfig"
	"jsn.dev/jsn/controller/api"
)

// --- admin ---

func (c *Controller) isAdmin(who string) error {
	if id := c.identity(api.KindClient, who); id == nil || !id.Admin {
		return wire.Errorf(wire.PermissionDenied, "%s is not an admin", who)
	}
	return nil
}

func checkLabels(labels map[string]string) error {
	for k, v := range labels {
		if !validWord(k) || !validWord(v) {
			return fmt.Errorf("label %q=%q: use letters, digits and -_./", k, v)
		}
	}
	return nil
}

func validWord(s string) bool {
	if s == "" || len(s) > 253 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !isWordByte(s[i]) {
			return false
		}
	}
	return true
}

// reserved refuses names kept for the lab's own principals, whatever the kind: "jsn-…" (the
// controller's users) and "admin" (the first admin). Inbox prefixes are kind-qualified, so a
// name of one kind never reaches another kind's replies; reserving these keeps logs and lists
// unambiguous too.
func reserved(name string) error {
	if strings.HasPrefix(name, "jsn-") || name == AdminName {
		return fmt.Errorf("the name %s is reserved (jsn-… and %s are the lab's own)", name, AdminName)
	}
	return nil
}

func (c *Controller) createExporter(ctx context.Context, who string, data []byte) (any, error) {
	if err := c.isAdmin(who); err != nil {
		return nil, err
	}
	var req api.CreateExporterRequest
	if err := decode(data, &req); err != nil {
		return nil, err
	}
	if err := wire.CheckName("exporter name", req.Name); err != nil {
		return nil, wire.Errorf(wire.InvalidArgument, "create exporter: %v", err)
	}
	if err := reserved(req.Name); err != nil {
		return nil, wire.Errorf(wire.InvalidArgument, "create exporter %s: %v", req.Name, err)
	}
	if err := checkLabels(req.Labels); err != nil {
		return nil, wire.Errorf(wire.InvalidArgument, "create exporter %s: %v", req.Name, err)
	}
	creds, pub, err := c.auth.NewExporter(req.Name)
	if err != nil {
		return nil, err
	}
	id := api.Identity{Name: req.Name, Kind: api.KindExporter, PublicKey: pub, Labels: req.Labels, Created: time.Now().UTC(),
		Scheme: api.IdentityScheme}
	if err := c.storeIdentity(ctx, &id); err != nil {
		return nil, err
	}
	cfg, err := ExporterConfigYAML(req.Name, c.endpoint, req.Labels, creds, c.ca)
	if err != nil {
		return nil, err
	}
	return api.ConfigReply{Config: cfg}, nil
}

func (c *Controller) createClient(ctx context.Context, who string, data []byte) (any, error) {
	if err := c.isAdmin(who); err != nil {
		return nil, err
	}
	var req api.CreateClientRequest
	if err := decode(data, &req); err != nil {
		return nil, err
	}
	if err := wire.CheckName("client name", req.Name); err != nil {
		return nil, wire.Errorf(wire.InvalidArgument, "create client: %v", err)
	}
	if err := reserved(req.Name); err != nil {
		return nil, wire.Errorf(wire.InvalidArgument, "create client %s: %v", req.Name, err)
	}
	for _, a := range req.Allow {
		if err := CheckAllow(a); err != nil {
			return nil, wire.Errorf(wire.InvalidArgument, "create client %s: %v", req.Name, err)
		}
	}
	if req.MaxDuration < 0 {
		return nil, wire.Errorf(wire.InvalidArgument, "create client %s: negative max duration", req.Name)
	}
	if req.MaxPriority < MinPriority {
		return nil, wire.Errorf(wire.InvalidArgument, "create client %s: max priority %d is below the minimum of %d", req.Name, req.MaxPriority, MinPriority)
	}
	if req.Group != "" && !wire.ValidName(req.Group) {
		return nil, wire.Errorf(wire.InvalidArgument, "create client %s: group %q: want letters, digits, - and _", req.Name, req.Group)
	}
	for _, w := range req.Watch {
		if err := CheckWatch(w); err != nil {
			return nil, wire.Errorf(wire.InvalidArgument, "create client %s: %v", req.Name, err)
		}
	}
	if c.identity(api.KindViewer, req.Name) != nil {
		return nil, wire.Errorf(wire.FailedPrecondition, "create client %s: a viewer has that name (clients and viewers share names)", req.Name)
	}
	creds, pub, err := c.auth.NewClient(req.Name, req.Admin, req.Watch...)
	if err != nil {
		return nil, err
	}
	id := api.Identity{Name: req.Name, Kind: api.KindClient, PublicKey: pub, Allow: req.Allow, MaxDuration: req.MaxDuration,
		MaxPriority: req.MaxPriority, Admin: req.Admin, Watch: req.Watch, Group: req.Group, Created: time.Now().UTC(), Scheme: api.IdentityScheme}
	if err := c.storeIdentity(ctx, &id); err != nil {
		return nil, err
	}
	cc := clientconfig.New(req.Name, c.endpoint, creds, req.Admin, req.Allow, c.ca)
	cc.Watch = req.Watch
	cfg, err := cc.Marshal()
	if err != nil {
		return nil, err
	}
	return api.ConfigReply{Config: cfg}, nil
}

// createViewer issues a viewer identity: read-only (list exporters and leases, describe, watch the
// taps of req.Watch, "*" when empty). Viewers and clients share one name space, so that the inbox
// of a browser credential minted for a client (MintViewer) is never a viewer's.
func (c *Controller) createViewer(ctx context.Context, who string, data []byte) (any, error) {
	if err := c.isAdmin(who); err != nil {
		return nil, err
	}
	var req api.CreateViewerRequest
	if err := decode(data, &req); err != nil {
		return nil, err
	}
	if err := wire.CheckName("viewer name", req.Name); err != nil {
		return nil, wire.Errorf(wire.InvalidArgument, "create viewer: %v", err)
	}
	if err := reserved(req.Name); err != nil {
		return nil, wire.Errorf(wire.InvalidArgument, "create viewer %s: %v", req.Name, err)
	}
	if len(req.Watch) == 0 {
		req.Watch = []string{"*"}
	}
	for _, w := range req.Watch {
		if err := CheckWatch(w); err != nil {
			return nil, wire.Errorf(wire.InvalidArgument, "create viewer %s: %v", req.Name, err)
		}
	}
	if c.identity(api.KindClient, req.Name) != nil {
		return nil, wire.Errorf(wire.FailedPrecondition, "create viewer %s: a client has that name (clients and viewers share names)", req.Name)
	}
	creds, pub, err := c.auth.NewViewer(req.Name, req.Watch)
	if err != nil {
		return nil, err
	}
	id := api.Identity{Name: req.Name, Kind: api.KindViewer, PublicKey: pub, Watch: req.Watch, Created: time.Now().UTC(),
		Scheme: api.IdentityScheme}
	if err := c.storeIdentity(ctx, &id); err != nil {
		return nil, err
	}
	cfg := clientconfig.New(req.Name, c.endpoint, creds, false, nil, c.ca)
	cfg.Role = clientconfig.RoleViewer
	cfg.Watch = req.Watch
	b, err := cfg.Marshal()
	if err != nil {
		return nil, err
	}
	return api.ConfigReply{Config: b}, nil
}

func (c *Controller) storeIdentity(ctx context.Context, id *api.Identity) error {
	b, err := wire.Marshal(id)
	if err != nil {
		return err
	}
	key := id.Kind + "." + id.Name
	rev, err := c.identities.Create(ctx, key, b, 0)
	if errors.Is(err, bus.ErrKeyExists) {
		return wire.Errorf(wire.FailedPrecondition, "%s %s already exists (delete it first)", id.Kind, id.Name)
	}
	if err != nil {
		return err
	}
	c.cacheIdentity(key, rev, id)
	return nil
}

// cacheIdentity records an identity this replica just wrote at rev, unless the cache already has
// a newer revision of it.
func (c *Controller) cacheIdentity(key string, rev uint64, id *api.Identity) {
	c.mu.Lock()
	if c.fresh("i/"+key, rev) {
		c.ids[key] = id
	}
	c.mu.Unlock()
}

func (c *Controller) lister(kind string) func(context.Context, string, []byte) (any, error) {
	return func(ctx context.Context, who string, data []byte) (any, error) {
		if err := c.isAdmin(who); err != nil {
			return nil, err
		}
		var req api.ListIdentitiesRequest
		if err := decode(data, &req); err != nil {
			return nil, err
		}
		c.mu.Lock()
		ids := []api.Identity{}
		for _, id := range c.ids {
			if id.Kind == kind {
				ids = append(ids, *id)
			}
		}
		c.mu.Unlock()
		out := api.ListIdentitiesReply{}
		out.Identities, out.Next = page(ids, func(id *api.Identity) string { return id.Name }, req.Page)
		return out, nil
	}
}

func (c *Controller) deleter(kind string) func(context.Context, string, []byte) (any, error) {
	return func(ctx context.Context, who string, data []byte) (any, error) {
		if err := c.isAdmin(who); err != nil {
			return nil, err
		}
		var req api.ExporterName
		if err := decode(data, &req); err != nil {
			return nil, err
		}
		id := c.identity(kind, req.Name)
		if id == nil {
			return nil, wire.Errorf(wire.NotFound, "%s %q: no such identity", kind, req.Name)
		}
		if kind == api.KindClient && req.Name == who {
			return nil, wire.Errorf(wire.FailedPrecondition, "delete client %s: an admin cannot delete itself", who)
		}
		key := kind + "." + req.Name
		if _, err := c.identities.Delete(ctx, key, 0); err != nil {
			return nil, err
		}
		c.mu.Lock()
		delete(c.ids, key)
		var ends []*leaseEntry
		var exps []string
		var pend []*leaseEntry
		for e, a := range c.active {
			if !a.live() {
				continue
			}
			if kind == api.KindExporter && e == req.Name || kind == api.KindClient && a.rec.Lease.Client == req.Name {
				ends = append(ends, a)
				exps = append(exps, e)
			}
		}
		for _, p := range c.pending {
			if p.rec.Lease.Status == api.StatusQueued && kind == api.KindClient && p.rec.Lease.Client == req.Name {
				pend = append(pend, p)
			}
		}
		c.mu.Unlock()
		keys := map[string]time.Time{id.PublicKey: {}}
		c.browserKeysOf(ctx, keys, req.Name) // its dashboard logins go with it
		if err := c.revokeWait(ctx, keys); err != nil {
			return nil, err
		}
		for i, a := range ends {
			_ = c.endLease(ctx, exps[i], a, "identity "+req.Name+" deleted")
		}
		for _, p := range pend {
			_ = c.endPending(ctx, p, "client deleted")
		}
		if kind == api.KindExporter {
			// A deleted exporter finishes nothing: free its name at once.
			c.mu.Lock()
			fin := c.active[req.Name]
			c.mu.Unlock()
			if fin != nil && !fin.live() {
				c.finished(ctx, req.Name, fin)
			}
			_, _ = c.exporters.Delete(ctx, req.Name, 0)
		}
		return api.Empty{}, nil
	}
}
