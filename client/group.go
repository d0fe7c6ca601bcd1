package client

import (
	"fmt"
	"path/filepath"
	"sort"
	"strings"

	"jsn.dev/jsn/bus/wire"
	"jsn.dev/jsn/controller/api"
)

// Multi-exporter leases (groups): RequestLease with api.LeaseRequest.Parts asks for several
// distinct exporters, granted together or not at all. The reply's Lease is the group (its ID is
// the group's; Group equals it); once active, Parts holds one ordinary lease per exporter, each
// with a credential that reaches only its exporter. GetLease, Extend, SetEnd, KeepAlive and
// Release of the group's id act on every part; when one part ends, the controller ends the
// others (their reason names the part that ended).

// Selectors returns the parts of a group asking for count exporters matching each selector and
// the named exporters (Exporter parts): RequestLease(ctx, api.LeaseRequest{Parts: Selectors(…)}).
func Selectors(selectors []string, count int, exporters []string) []api.LeasePart {
	var out []api.LeasePart
	for _, s := range selectors {
		out = append(out, api.LeasePart{Selector: s, Count: count})
	}
	for _, e := range exporters {
		out = append(out, api.LeasePart{Exporter: e})
	}
	return out
}

// GroupOptions returns, by exporter name, the Options that reach each exporter of active group r
// with its part's credential: Dial(ctx, opts[name]) works like a local session.
func (c *Controller) GroupOptions(r *api.LeaseReply) (map[string]Options, error) {
	if r == nil || r.Lease == nil || r.Lease.Group == "" {
		return nil, wire.Errorf(wire.InvalidArgument, "not a multi-exporter lease")
	}
	if r.Lease.Status != api.StatusActive || len(r.Parts) == 0 {
		why := r.Lease.Reason
		if why == "" {
			why = "not active"
		}
		return nil, wire.Errorf(wire.FailedPrecondition, "group %s is %s: %s", r.Lease.ID, r.Lease.Status, why)
	}
	out := make(map[string]Options, len(r.Parts))
	for i := range r.Parts {
		o, err := c.LeaseOptions(&r.Parts[i])
		if err != nil {
			return nil, fmt.Errorf("group %s: part on %s: %w", r.Lease.ID, r.Parts[i].Lease.Exporter, err)
		}
		out[o.Exporter] = o
	}
	return out, nil
}

// PartExporters lists the exporters of group r's parts, sorted.
func PartExporters(r *api.LeaseReply) []string {
	var out []string
	for _, p := range r.Parts {
		if p.Lease != nil {
			out = append(out, p.Lease.Exporter)
		}
	}
	sort.Strings(out)
	return out
}

// ErrSeveralExporters is the usage error of a command that needs one exporter in a session with
// several (JSN_EXPORTERS) and was not told which.
func ErrSeveralExporters(names []string) error {
	return fmt.Errorf("this session has several exporters (%s): name one with --exporter NAME (or set %s)", strings.Join(names, ", "), EnvExporter)
}

// The environment of a `jsn shell` session with several exporters (a group): JSN_EXPORTERS
// lists them, JSN_LEASES maps each to its part's lease id, JSN_CREDS_DIR holds one credential
// file per exporter (NAME.creds); JSN_LEASE is the group's id, JSN_EXPORTER is unset.
const (
	EnvExporters = "JSN_EXPORTERS" // comma-separated exporter names
	EnvLeases    = "JSN_LEASES"    // comma-separated NAME=LEASE pairs
	EnvCredsDir  = "JSN_CREDS_DIR" // directory of NAME.creds files
)

// SessionPart resolves exporter name in a session with several exporters (getenv reads the
// environment): its part's lease id and credential file. names lists the session's exporters
// (nil outside such a session: then lease and creds are "" and err nil). An empty name, or one
// that is not the session's, is an error listing them.
func SessionPart(getenv func(string) string, name string) (lease, creds string, names []string, err error) {
	list := getenv(EnvExporters)
	if list == "" {
		return "", "", nil, nil
	}
	names = strings.Split(list, ",")
	if name == "" {
		return "", "", names, ErrSeveralExporters(names)
	}
	for _, kv := range strings.Split(getenv(EnvLeases), ",") {
		if k, v, ok := strings.Cut(kv, "="); ok && k == name {
			lease = v
		}
	}
	if lease == "" || !wire.ValidName(name) {
		return "", "", names, fmt.Errorf("exporter %q is not one of this session's (%s)", name, strings.Join(names, ", "))
	}
	return lease, filepath.Join(getenv(EnvCredsDir), name+".creds"), names, nil
}
