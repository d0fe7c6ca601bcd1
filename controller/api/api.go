package api

import (
	"strings"
	"time"

	"jsn.dev/jsn/bus/wire"
)

// Lease statuses.
const (
	StatusQueued = "queued" // waiting for a matching exporter; Reason says why
	StatusActive = "active" // granted; Begin and End are set
	StatusEnded  = "ended"  // released, expired or ended by the exporter or an admin
)

// Identity kinds.
const (
	KindExporter = "exporter"
	KindClient   = "client"
	// KindViewer is a read-only identity (wall screens, dashboards): it may list exporters and
	// leases, describe exporters and watch the taps of the exporters in its Watch list, nothing
	// else. Its API role is "v" (jsn.ctl.v.<name>.…), its inbox _INBOX_v.<name>.
	KindViewer = "viewer"
)

// Lease is a lease or a queued lease request.
type Lease struct {
	ID       string        `msgpack:"id" json:"id" yaml:"id"`
	Exporter string        `msgpack:"exporter" json:"exporter" yaml:"exporter"` // "" while queued on a selector
	Client   string        `msgpack:"client" json:"client" yaml:"client"`
	Selector string        `msgpack:"selector,omitempty" json:"selector,omitempty" yaml:"selector,omitempty"`
	Priority int           `msgpack:"priority,omitempty" json:"priority,omitempty" yaml:"priority,omitempty"`
	Status   string        `msgpack:"status" json:"status" yaml:"status"`                               // StatusQueued, StatusActive or StatusEnded
	Reason   string        `msgpack:"reason,omitempty" json:"reason,omitempty" yaml:"reason,omitempty"` // why queued, or why ended
	Created  time.Time     `msgpack:"created" json:"created" yaml:"created"`
	Begin    time.Time     `msgpack:"begin,omitempty" json:"begin,omitempty" yaml:"begin,omitempty"`
	End      time.Time     `msgpack:"end,omitempty" json:"end,omitempty" yaml:"end,omitempty"`
	Duration time.Duration `msgpack:"duration" json:"duration" yaml:"duration"` // requested length
	// Allow is the holder's driver/method allow list ("power.*", "serial.write"); empty = all.
	// The exporter may use it for defence in depth; NATS permissions already enforce it.
	Allow []string `msgpack:"allow,omitempty" json:"allow,omitempty" yaml:"allow,omitempty"`
}

// Credential is a lease credential: a NATS user JWT and its nkey seed.
type Credential struct {
	JWT     string    `msgpack:"jwt" json:"jwt" yaml:"jwt"`
	Seed    string    `msgpack:"seed" json:"seed" yaml:"seed"`
	Expires time.Time `msgpack:"expires" json:"expires" yaml:"expires"`
	URL     string    `msgpack:"url,omitempty" json:"url,omitempty" yaml:"url,omitempty"` // where to connect; "" = same endpoint
}

// Creds returns the credential in the NATS .creds file format.
func (c *Credential) Creds() []byte { return FormatCreds(c.JWT, c.Seed) }

// FormatCreds formats a user JWT and nkey seed as a NATS .creds file.
func FormatCreds(jwt, seed string) []byte {
	var b strings.Builder
	b.WriteString("-----BEGIN NATS USER JWT-----\n")
	b.WriteString(jwt)
	b.WriteString("\n------END NATS USER JWT------\n\n")
	b.WriteString("************************* IMPORTANT *************************\n")
	b.WriteString("NKEY Seed printed below can be used to sign and prove identity.\n")
	b.WriteString("NKEYs are sensitive and should be treated as secrets.\n\n")
	b.WriteString("-----BEGIN USER NKEY SEED-----\n")
	b.WriteString(seed)
	b.WriteString("\n------END USER NKEY SEED------\n\n")
	b.WriteString("*************************************************************\n")
	return []byte(b.String())
}

// ExporterInfo is one exporter as the controller sees it.
type ExporterInfo struct {
	Name   string            `msgpack:"name" json:"name" yaml:"name"`
	Labels map[string]string `msgpack:"labels,omitempty" json:"labels,omitempty" yaml:"labels,omitempty"` // the admin's: selectors match these
	// ReportedLabels are the labels in the exporter's own config, shown for information only.
	ReportedLabels map[string]string `msgpack:"reported_labels,omitempty" json:"reported_labels,omitempty" yaml:"reported_labels,omitempty"`
	Online         bool              `msgpack:"online" json:"online" yaml:"online"`
	LastSeen       time.Time         `msgpack:"last_seen,omitempty" json:"last_seen,omitempty" yaml:"last_seen,omitempty"`
	Lease          *Lease            `msgpack:"lease,omitempty" json:"lease,omitempty" yaml:"lease,omitempty"` // active lease, nil if free
	Version        string            `msgpack:"version,omitempty" json:"version,omitempty" yaml:"version,omitempty"`
}

// Identity is an exporter or client identity issued by the controller.
type Identity struct {
	Name        string            `msgpack:"name" json:"name" yaml:"name"`
	Kind        string            `msgpack:"kind" json:"kind" yaml:"kind"` // KindExporter, KindClient or KindViewer
	PublicKey   string            `msgpack:"public_key" json:"public_key" yaml:"public_key"`
	Labels      map[string]string `msgpack:"labels,omitempty" json:"labels,omitempty" yaml:"labels,omitempty"`
	Allow       []string          `msgpack:"allow,omitempty" json:"allow,omitempty" yaml:"allow,omitempty"`
	MaxDuration time.Duration     `msgpack:"max_duration,omitempty" json:"max_duration,omitempty" yaml:"max_duration,omitempty"`
	// MaxPriority is the highest lease request priority the client may ask for (admins: any).
	MaxPriority int  `msgpack:"max_priority,omitempty" json:"max_priority,omitempty" yaml:"max_priority,omitempty"`
	Admin       bool `msgpack:"admin,omitempty" json:"admin,omitempty" yaml:"admin,omitempty"`
	// Watch names the exporters whose taps (console output and its history) the identity may
	// watch without a lease: exporter names, or "*" for every exporter (clients and viewers).
	Watch   []string  `msgpack:"watch,omitempty" json:"watch,omitempty" yaml:"watch,omitempty"`
	Created time.Time `msgpack:"created" json:"created" yaml:"created"`
	// Scheme is the permission scheme its credentials were issued under (IdentityScheme); a
	// controller revokes identities issued under an older one at start.
	Scheme int `msgpack:"scheme,omitempty" json:"scheme,omitempty" yaml:"scheme,omitempty"`
}

// IdentityScheme is the permission scheme of the credentials issued now: kind-qualified inbox
// prefixes, no allow_responses, lease credentials reaching only their own lease's subjects.
// Credentials of an older scheme could subscribe to other principals' replies.
const IdentityScheme = 2

// Empty is the body of requests and replies that carry nothing ({}).
type Empty struct{}

// --- exporter API: jsn.ctl.e.<exporter>.… ---

// RegisterRequest is sent on jsn.ctl.e.<E>.register when an exporter (re)connects.
type RegisterRequest struct {
	Labels   map[string]string `msgpack:"labels,omitempty"`
	Describe *wire.Description `msgpack:"describe,omitempty"`
	Version  string            `msgpack:"version,omitempty"`
	// AfterLease is the timeout of the exporter's afterLease hook, 0 if it has none. With one,
	// the controller grants the exporter again only once the exporter says it finished the
	// previous lease (lease.done, or Busy no longer naming it), or AfterLease (plus a margin)
	// after the lease ended.
	AfterLease time.Duration `msgpack:"after_lease,omitempty"`
	// Busy is the lease the exporter is starting, serving or finishing ("" if none).
	Busy string `msgpack:"busy,omitempty"`
}

// RegisterReply tells the exporter the lease it should serve now (nil if none) and how often to
// heartbeat.
type RegisterReply struct {
	Lease     *Lease        `msgpack:"lease,omitempty"`
	Heartbeat time.Duration `msgpack:"heartbeat"`
	// Rev orders what the exporter is told about its lease (see HeaderLeaseRev): Lease is its
	// lease as of this revision of the controller's lease bucket.
	Rev uint64 `msgpack:"rev,omitempty"`
}

// HeartbeatRequest is sent on jsn.ctl.e.<E>.heartbeat every RegisterReply.Heartbeat.
type HeartbeatRequest struct {
	Lease string `msgpack:"lease,omitempty"` // the lease id the exporter serves now, "" if none
	Busy  string `msgpack:"busy,omitempty"`  // the lease it is starting, serving or finishing, "" if none
}

// HeartbeatReply carries the lease the exporter should be serving now, nil if none.
type HeartbeatReply struct {
	Lease *Lease `msgpack:"lease,omitempty"`
	Rev   uint64 `msgpack:"rev,omitempty"` // as in RegisterReply
}

// LeaseEndedRequest is sent on jsn.ctl.e.<E>.lease.ended when the exporter ends a lease on its side.
type LeaseEndedRequest struct {
	Lease  string `msgpack:"lease"`
	Reason string `msgpack:"reason,omitempty"`
}

// LeaseDoneRequest is sent on jsn.ctl.e.<E>.lease.done when the exporter has finished a lease
// that ended (its afterLease hook ran and its drivers were reset): it may be granted again.
type LeaseDoneRequest struct {
	Lease string `msgpack:"lease"`
}

// HookOutput is one chunk of lease hook output, published by the exporter on
// jsn.x.<E>.ev.<lease>.hook.
type HookOutput struct {
	Lease    string `msgpack:"lease"`
	Hook     string `msgpack:"hook"`             // "beforeLease" or "afterLease"
	Stream   string `msgpack:"stream,omitempty"` // "stdout" or "stderr"
	Data     []byte `msgpack:"data,omitempty"`
	ExitCode *int   `msgpack:"exit_code,omitempty"` // set with Done
	Done     bool   `msgpack:"done,omitempty"`
}

// --- client API: jsn.ctl.c.<client>.… ---

// LeaseRequest is sent on jsn.ctl.c.<C>.lease.request. Exactly one of Selector and Exporter.
type LeaseRequest struct {
	// ID, if set, is the id the lease gets (a subject token of at most 64 characters, random
	// enough not to collide). It makes the request idempotent: asking again with the same ID
	// returns the same lease, so a client can repeat a request whose reply it did not get.
	ID       string        `msgpack:"id,omitempty"`
	Selector string        `msgpack:"selector,omitempty"`
	Exporter string        `msgpack:"exporter,omitempty"`
	Duration time.Duration `msgpack:"duration"`
	Priority int           `msgpack:"priority,omitempty"`
}

// LeaseReply answers lease.request, lease.get and lease.extend. Credential is set when the lease
// is active.
type LeaseReply struct {
	Lease      *Lease      `msgpack:"lease,omitempty"`
	Credential *Credential `msgpack:"credential,omitempty"`
}

// LeaseID names a lease (lease.get, lease.release).
type LeaseID struct {
	ID string `msgpack:"id"`
}

// ExtendRequest is sent on jsn.ctl.c.<C>.lease.extend: the lease then ends Duration from now.
type ExtendRequest struct {
	ID       string        `msgpack:"id"`
	Duration time.Duration `msgpack:"duration"`
}

// Lists are paginated: a reply holds at most Limit items (at most MaxPage, and few enough to
// stay far below the server's maximum message size) after the request's After cursor; its Next
// is the After of the next page, "" after the last one.

// MaxPage is the most items a list reply holds.
const MaxPage = 1000

// Page selects a page of a list.
type Page struct {
	After string `msgpack:"after,omitempty"` // the previous reply's Next; "" for the first page
	Limit int    `msgpack:"limit,omitempty"` // most items wanted; 0 or more than MaxPage means MaxPage
}

// ListLeasesRequest is sent on jsn.ctl.c.<C>.lease.list: own leases, or all with All.
type ListLeasesRequest struct {
	All bool `msgpack:"all,omitempty"`
	Page
}

// ListLeasesReply lists leases (active and queued), oldest first.
type ListLeasesReply struct {
	Leases []Lease `msgpack:"leases"`
	Next   string  `msgpack:"next,omitempty"`
}

// ListExportersRequest is sent on jsn.ctl.c.<C>.exporters.list.
type ListExportersRequest struct {
	Selector string `msgpack:"selector,omitempty"`
	Page
}

// ListExportersReply lists exporters sorted by name.
type ListExportersReply struct {
	Exporters []ExporterInfo `msgpack:"exporters"`
	Next      string         `msgpack:"next,omitempty"`
}

// ExporterName names an exporter or client (exporters.describe, delete.exporter, delete.client).
type ExporterName struct {
	Name string `msgpack:"name"`
}

// --- admin API: jsn.ctl.a.<admin>.… ---

// CreateExporterRequest is sent on jsn.ctl.a.<A>.create.exporter.
type CreateExporterRequest struct {
	Name   string            `msgpack:"name"`
	Labels map[string]string `msgpack:"labels,omitempty"`
}

// CreateClientRequest is sent on jsn.ctl.a.<A>.create.client.
type CreateClientRequest struct {
	Name        string        `msgpack:"name"`
	Allow       []string      `msgpack:"allow,omitempty"`
	MaxDuration time.Duration `msgpack:"max_duration,omitempty"`
	MaxPriority int           `msgpack:"max_priority,omitempty"` // highest priority its lease requests may ask for
	Admin       bool          `msgpack:"admin,omitempty"`
	// Watch: exporter names (or "*") whose taps the client may watch without a lease.
	Watch []string `msgpack:"watch,omitempty"`
}

// CreateViewerRequest is sent on jsn.ctl.a.<A>.create.viewer: a read-only identity that may
// watch the taps of the exporters in Watch (names, or "*" for all; empty means "*").
type CreateViewerRequest struct {
	Name  string   `msgpack:"name"`
	Watch []string `msgpack:"watch,omitempty"`
}

// ConfigReply carries a complete config file (YAML) with credentials.
type ConfigReply struct {
	Config []byte `msgpack:"config"`
}

// ListIdentitiesRequest is sent on jsn.ctl.a.<A>.list.exporter and list.client.
type ListIdentitiesRequest struct {
	Page
}

// ListIdentitiesReply answers list.exporter and list.client, sorted by name.
type ListIdentitiesReply struct {
	Identities []Identity `msgpack:"identities"`
	Next       string     `msgpack:"next,omitempty"`
}

// --- subjects ---

// Subject prefixes of the API.
const (
	PrefixExporter = "jsn.ctl.e." // + exporter + "." + verb
	PrefixClient   = "jsn.ctl.c." // + client + "." + verb
	PrefixAdmin    = "jsn.ctl.a." // + admin + "." + verb
	PrefixViewer   = "jsn.ctl.v." // + viewer + "." + verb (exporters.list, exporters.describe, lease.list)
)

// Verbs (the subject tail after the identity token).
const (
	VerbRegister       = "register"
	VerbHeartbeat      = "heartbeat"
	VerbLeaseEnded     = "lease.ended"
	VerbLeaseDone      = "lease.done"
	VerbLeaseRequest   = "lease.request"
	VerbLeaseGet       = "lease.get"
	VerbLeaseExtend    = "lease.extend"
	VerbLeaseRelease   = "lease.release"
	VerbLeaseList      = "lease.list"
	VerbExportersList  = "exporters.list"
	VerbExportersDesc  = "exporters.describe"
	VerbCreateExporter = "create.exporter"
	VerbCreateClient   = "create.client"
	VerbListExporter   = "list.exporter"
	VerbListClient     = "list.client"
	VerbDeleteExporter = "delete.exporter"
	VerbDeleteClient   = "delete.client"
	VerbCreateViewer   = "create.viewer"
	VerbListViewer     = "list.viewer"
	VerbDeleteViewer   = "delete.viewer"
)

// ExporterSubject is the controller API subject verb of exporter name.
func ExporterSubject(name, verb string) string { return PrefixExporter + name + "." + verb }

// ClientSubject is the controller API subject verb of client name.
func ClientSubject(name, verb string) string { return PrefixClient + name + "." + verb }

// ViewerSubject is the controller API subject verb of viewer name.
func ViewerSubject(name, verb string) string { return PrefixViewer + name + "." + verb }

// AdminSubject is the controller API subject verb of admin name.
func AdminSubject(name, verb string) string { return PrefixAdmin + name + "." + verb }

// HeaderLeaseRev on a lease push (and Rev in register and heartbeat replies) is the revision of
// the controller's lease bucket the pushed lease is current at. Replicas push and answer
// concurrently, so an exporter may hear of its lease out of order: it applies only what is at
// least as new as what it has.
const HeaderLeaseRev = "Jsn-Lease-Rev"

// HeaderSync carries a client's read-your-writes token: every reply of the client API has one
// (opaque), and a request that sends back the newest it got is answered by a replica that has
// seen at least those writes — whichever replica of the queue group gets it.
const HeaderSync = "Jsn-Sync"

// LeasePushSubject is where the controller publishes exporter name's current Lease (an empty body
// for none) whenever it changes.
func LeasePushSubject(exporter string) string { return "jsn.x." + exporter + ".lease" }

// HookSubject is where exporter publishes the HookOutput of lease, for its holder only: the
// lease's credential may subscribe to its own lease's events (jsn.x.<E>.ev.<lease>.>) and no
// other's.
func HookSubject(exporter, lease string) string { return EventPrefix(exporter, lease) + ".hook" }

// ReplaySubject is where exporter replays lease's beforeLease output for token (see
// client.(*Exporter).WaitReady).
func ReplaySubject(exporter, lease, token string) string {
	return EventPrefix(exporter, lease) + ".replay." + token
}

// EventPrefix is the prefix of the event subjects of lease on exporter.
func EventPrefix(exporter, lease string) string { return "jsn.x." + exporter + ".ev." + lease }
