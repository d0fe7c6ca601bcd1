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
	// Keepalive, when set, makes this a keepalive lease: it lives while its holder renews it
	// (lease.keepalive at least every Keepalive/3), ends about Keepalive after the last renewal,
	// and never lasts past Until, its hard end. End is the current (renewed) end.
	Keepalive time.Duration `msgpack:"keepalive,omitempty" json:"keepalive,omitempty" yaml:"keepalive,omitempty"`
	Until     time.Time     `msgpack:"until,omitempty" json:"until,omitempty" yaml:"until,omitempty"`
	// NotBefore is the begin of a scheduled lease: it stays queued until then.
	NotBefore time.Time `msgpack:"not_before,omitempty" json:"not_before,omitempty" yaml:"not_before,omitempty"`
	// FreeAt and LongestNow answer, for a queued request, "when can I get one?": when the
	// earliest matching exporter is expected free (zero: unknown, e.g. all offline), and the
	// longest lease one matching exporter could be granted for right now (0: none).
	FreeAt     time.Time     `msgpack:"free_at,omitempty" json:"free_at,omitempty" yaml:"free_at,omitempty"`
	LongestNow time.Duration `msgpack:"longest_now,omitempty" json:"longest_now,omitempty" yaml:"longest_now,omitempty"`
	// SharedWith lists the clients the holder shared the lease with (lease.share): each has a
	// credential of its own for it, bounded by its own allow list.
	SharedWith []string `msgpack:"shared_with,omitempty" json:"shared_with,omitempty" yaml:"shared_with,omitempty"`
	// Group is the id of the multi-exporter lease (LeaseRequest.Parts) this lease is a part of;
	// on the group itself (lease.get GROUP, a queued group in lease.list) it equals ID.
	Group string `msgpack:"group,omitempty" json:"group,omitempty" yaml:"group,omitempty"`
	// Parts, on a group, describes what it asks for: one selector (or "exporter NAME") per part.
	Parts []string `msgpack:"parts,omitempty" json:"parts,omitempty" yaml:"parts,omitempty"`
	// SharedAllow is the allow list of each client in SharedWith (nil: every driver), which the
	// exporter checks that client's calls against (the holder's are checked against Allow).
	SharedAllow map[string][]string `msgpack:"shared_allow,omitempty" json:"shared_allow,omitempty" yaml:"shared_allow,omitempty"`
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
	// Maintenance is set while the exporter is out of service: no new lease is granted.
	Maintenance *Maintenance `msgpack:"maintenance,omitempty" json:"maintenance,omitempty" yaml:"maintenance,omitempty"`
	// HookFailures counts the afterLease hook failures in a row (reset by a success).
	HookFailures int `msgpack:"hook_failures,omitempty" json:"hook_failures,omitempty" yaml:"hook_failures,omitempty"`
}

// Maintenance is an exporter's out-of-service state.
type Maintenance struct {
	Reason string    `msgpack:"reason" json:"reason" yaml:"reason"`
	By     string    `msgpack:"by" json:"by" yaml:"by"` // the admin, or "controller" when hooks kept failing
	Since  time.Time `msgpack:"since" json:"since" yaml:"since"`
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
	Group   string    `msgpack:"group,omitempty" json:"group,omitempty" yaml:"group,omitempty"` // policies may name it
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
	// HookFailed says the afterLease hook failed (why); after Options.HookFailures failures in a
	// row the controller puts the exporter in maintenance.
	HookFailed string `msgpack:"hook_failed,omitempty"`
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
	Duration time.Duration `msgpack:"duration"` // the lease's length; with Keepalive its hard maximum (0: the longest allowed)
	Priority int           `msgpack:"priority,omitempty"`
	// Keepalive asks for a keepalive lease (see Lease.Keepalive): the holder must renew it.
	Keepalive bool `msgpack:"keepalive,omitempty"`
	// Begin schedules the lease: it is granted at Begin (or as soon after as a matching exporter
	// is free), queued until then.
	Begin time.Time `msgpack:"begin,omitempty"`
	// Parts, instead of Selector/Exporter, asks for a multi-exporter lease (a group): one
	// distinct exporter per part (a part with Count n stands for n parts), all granted together
	// or none; while they cannot all be granted the group is queued as one request and holds
	// nothing. At most MaxParts parts in all.
	Parts []LeasePart `msgpack:"parts,omitempty"`
}

// LeasePart is one part of a multi-exporter lease request: exactly one of Selector and
// Exporter; Count (0 means 1) exporters matching Selector (an Exporter part has Count 1).
type LeasePart struct {
	Selector string `msgpack:"selector,omitempty"`
	Exporter string `msgpack:"exporter,omitempty"`
	Count    int    `msgpack:"count,omitempty"`
}

// MaxParts bounds the parts of a multi-exporter lease.
const MaxParts = 16

// LeaseReply answers lease.request, lease.get and lease.extend. Credential is set when the lease
// is active.
type LeaseReply struct {
	Lease      *Lease      `msgpack:"lease,omitempty"`
	Credential *Credential `msgpack:"credential,omitempty"`
	// Parts, for a multi-exporter lease (Lease.Group set, Lease the group), are its parts once
	// granted: each an ordinary lease of one exporter with a credential reaching only that
	// exporter. Lease.get, lease.release, lease.extend and lease.keepalive of the group's id act
	// on every part.
	Parts []LeaseReply `msgpack:"parts,omitempty"`
}

// LeaseID names a lease (lease.get, lease.release).
type LeaseID struct {
	ID string `msgpack:"id"`
}

// ExtendRequest is sent on jsn.ctl.c.<C>.lease.extend: the lease then ends Duration from now.
// An extension never makes the lease end earlier than it does (FAILED_PRECONDITION) unless Set.
type ExtendRequest struct {
	ID       string        `msgpack:"id"`
	Duration time.Duration `msgpack:"duration"`
	Set      bool          `msgpack:"set,omitempty"` // set the end to Duration from now even if earlier
}

// Audit events of sharing (see AuditEvent; Reason says who did what).
const (
	AuditShare    = "share"    // the holder shared the lease with another client
	AuditUnshare  = "unshare"  // … and withdrew it
	AuditTransfer = "transfer" // the lease was handed over; Client is the new holder
)

// ShareRequest is sent on jsn.ctl.c.<C>.lease.share, lease.unshare (With) and lease.transfer
// (To is then With): the lease's holder (or an admin) shares it with, withdraws it from, or hands
// it over to another client.
type ShareRequest struct {
	ID   string `msgpack:"id"`
	With string `msgpack:"with"`
}

// KeepaliveReply answers lease.keepalive (body LeaseID): the lease as renewed.
type KeepaliveReply struct {
	Lease *Lease `msgpack:"lease"`
}

// ExporterStateRequest is sent on jsn.ctl.a.<A>.exporter.disable and exporter.enable.
type ExporterStateRequest struct {
	Name   string `msgpack:"name"`
	Reason string `msgpack:"reason,omitempty"` // disable: why (required)
	End    bool   `msgpack:"end,omitempty"`    // disable: also end the current lease
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
	Group string   `msgpack:"group,omitempty"` // the client's group, which policies may name
}

// Policy limits the lease requests of the clients it names, or of the clients of the groups it
// names (admins are not bounded). When several apply, each is enforced.
type Policy struct {
	Name    string   `msgpack:"name" json:"name" yaml:"name"`
	Clients []string `msgpack:"clients,omitempty" json:"clients,omitempty" yaml:"clients,omitempty"`
	Groups  []string `msgpack:"groups,omitempty" json:"groups,omitempty" yaml:"groups,omitempty"`
	// MaxPriority is the priority ceiling of their requests (nil: none).
	MaxPriority *int `msgpack:"max_priority,omitempty" json:"max_priority,omitempty" yaml:"max_priority,omitempty"`
	// MaxDuration is the longest lease they may hold (0: no limit), keepalive leases included.
	MaxDuration time.Duration `msgpack:"max_duration,omitempty" json:"max_duration,omitempty" yaml:"max_duration,omitempty"`
	// Selector is the label selector of the exporters they may lease ("": any).
	Selector string `msgpack:"selector,omitempty" json:"selector,omitempty" yaml:"selector,omitempty"`
}

// PolicyName names a policy (policy.get, policy.delete).
type PolicyName struct {
	Name string `msgpack:"name"`
}

// ListPoliciesReply answers policy.list, sorted by name.
type ListPoliciesReply struct {
	Policies []Policy `msgpack:"policies"`
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
	VerbLeaseKeepalive = "lease.keepalive"
	VerbLeaseShare     = "lease.share"
	VerbLeaseUnshare   = "lease.unshare"
	VerbLeaseTransfer  = "lease.transfer"
	VerbExporterOff    = "exporter.disable"
	VerbExporterOn     = "exporter.enable"
	VerbPolicySet      = "policy.set"
	VerbPolicyGet      = "policy.get"
	VerbPolicyList     = "policy.list"
	VerbPolicyDelete   = "policy.delete"
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
