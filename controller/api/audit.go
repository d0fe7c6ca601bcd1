package api

import "time"

// The audit log: a JetStream stream (AuditStream) of lease events, which the controller appends,
// and driver call events, which each exporter appends for its own calls. NATS permissions let
// only the controller publish on AuditLeaseSubject and only exporter E on AuditCallSubject(E, …),
// so no client can forge an entry. Entries carry no payloads (no arguments, no results).

// AuditStream is the audit log's stream.
const AuditStream = "jsn-audit"

// AuditPrefix prefixes every audit subject: jsn.audit.<kind>.<exporter>.<client>.
const AuditPrefix = "jsn.audit."

// Audit event kinds.
const (
	AuditKindLease = "lease"
	AuditKindCall  = "call"
)

// Lease audit events (AuditEvent.Event of kind lease).
const (
	AuditRequest = "request" // a lease request was accepted (granted or queued next)
	AuditQueued  = "queued"  // the request waits in the queue; Reason says why
	AuditGrant   = "grant"   // an exporter was granted
	AuditExtend  = "extend"  // the lease's end moved
	AuditRelease = "release" // its holder (or an admin) released it
	AuditExpire  = "expire"  // it ran out
	AuditRevoke  = "revoke"  // it was ended by an admin or by deleting an identity
	AuditEnd     = "end"     // it was ended otherwise (by the exporter; Reason says why)
	AuditCancel  = "cancel"  // a queued request was withdrawn or dropped
	AuditCall    = "call"    // a driver call (kind call)
)

// AuditNone stands for an exporter not known yet (a request queued on a selector) in subjects.
const AuditNone = "_"

// AuditLeaseSubject is where the controller appends lease events of client on exporter.
func AuditLeaseSubject(exporter, client string) string {
	return AuditPrefix + AuditKindLease + "." + auditToken(exporter) + "." + auditToken(client)
}

// AuditCallSubject is where exporter appends the driver call events of client.
func AuditCallSubject(exporter, client string) string {
	return AuditPrefix + AuditKindCall + "." + auditToken(exporter) + "." + auditToken(client)
}

// AuditFilter is the subject filter of the events of exporter and client ("" for any).
func AuditFilter(exporter, client string) string {
	e, c := "*", "*"
	if exporter != "" {
		e = exporter
	}
	if client != "" {
		c = client
	}
	return AuditPrefix + "*." + e + "." + c
}

func auditToken(s string) string {
	if s == "" {
		return AuditNone
	}
	return s
}

// AuditEvent is one entry of the audit log.
type AuditEvent struct {
	Seq      uint64        `msgpack:"seq,omitempty" json:"seq,omitempty" yaml:"seq,omitempty"` // stream sequence (set by queries)
	Time     time.Time     `msgpack:"time" json:"time" yaml:"time"`
	Kind     string        `msgpack:"kind" json:"kind" yaml:"kind"`    // AuditKindLease or AuditKindCall
	Event    string        `msgpack:"event" json:"event" yaml:"event"` // AuditGrant, …, AuditCall
	Client   string        `msgpack:"client" json:"client" yaml:"client"`
	Exporter string        `msgpack:"exporter,omitempty" json:"exporter,omitempty" yaml:"exporter,omitempty"`
	Lease    string        `msgpack:"lease,omitempty" json:"lease,omitempty" yaml:"lease,omitempty"`
	Call     string        `msgpack:"call,omitempty" json:"call,omitempty" yaml:"call,omitempty"` // driver path.method
	Code     string        `msgpack:"code,omitempty" json:"code,omitempty" yaml:"code,omitempty"` // result: OK or the error code
	Duration time.Duration `msgpack:"duration,omitempty" json:"duration,omitempty" yaml:"duration,omitempty"`
	Reason   string        `msgpack:"reason,omitempty" json:"reason,omitempty" yaml:"reason,omitempty"` // why queued or ended
	End      time.Time     `msgpack:"end,omitempty" json:"end,omitempty" yaml:"end,omitempty"`          // the lease's end (grant, extend)
	Group    string        `msgpack:"group,omitempty" json:"group,omitempty" yaml:"group,omitempty"`    // the multi-exporter lease the lease is a part of
}

// AuditQuery queries the audit log (client API verb VerbAudit). Empty fields match anything;
// a client who is not an admin sees only its own events whatever Client says.
type AuditQuery struct {
	Exporter string    `msgpack:"exporter,omitempty"`
	Client   string    `msgpack:"client,omitempty"`
	Lease    string    `msgpack:"lease,omitempty"`
	Kind     string    `msgpack:"kind,omitempty"` // AuditKindLease, AuditKindCall or "" for both
	Since    time.Time `msgpack:"since,omitempty"`
	Until    time.Time `msgpack:"until,omitempty"`
	Limit    int       `msgpack:"limit,omitempty"` // most events (default and maximum AuditMaxLimit)
}

// AuditMaxLimit is the most events one audit reply carries.
const AuditMaxLimit = 2000

// AuditReply answers an AuditQuery: events oldest first; More when the range holds more (ask
// again with Since after the last one).
type AuditReply struct {
	Events []AuditEvent `msgpack:"events"`
	More   bool         `msgpack:"more,omitempty"`
}

// VerbAudit queries the audit log (client API).
const VerbAudit = "audit.query"
