// Package bus owns everything that touches NATS: the embedded server (in-process, a Unix socket in
// a private directory for local mode, TCP with TLS), connections with private inbox prefixes
// (kind-qualified, taken from the credential: InboxPrefix), requests and subscriptions that
// answer only into the requester's inbox (GuardReplies), the key-value store, and
// flow-controlled byte streams over core NATS subjects (or the direct connection beside the bus).
//
// It is the only package of jsn that imports nats.go or nats-server. What the bytes mean — error
// codes, the codec, subject names, headers, stream frames — is the NATS-free package wire, which
// every caller uses directly. It knows nothing of drivers, leases or exporters beyond the subject
// layout: callers above it speak in subjects, headers and bytes.
package bus
