// Package controller is the lab's brain in distributed mode: it issues identities (NATS operator
// mode, NKeys and JWTs), keeps the exporter registry, leases and the request queue in JetStream KV
// buckets, schedules lease requests (label selectors, priority, then first come first served),
// mints per-lease credentials and revokes them, and serves its API as a micro service on
// jsn.ctl.>.
//
// It talks to NATS only through package bus, as two users it mints at every start, each allowed
// only what it needs: the API user serves jsn.ctl.> and answers only into the requester's own
// inbox (bus.GuardReplies), with no JetStream right; the state user reads and writes the KV
// buckets and receives no request. The embedded server's listener speaks TLS with the data
// directory's CA, which every issued config carries (docs/operations.md, "Security model").
// Its state lives only in the KV buckets and in the data directory written by Init, so any
// replica can be restarted at any time.
package controller
