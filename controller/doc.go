// Package controller is the lab's brain in distributed mode: it issues identities (NATS operator
// mode, NKeys and JWTs), keeps the exporter registry, leases and the request queue in JetStream KV
// buckets, schedules lease requests (label selectors, priority, then first come first served),
// mints per-lease credentials and revokes them, and serves its API as a micro service on
// jsn.ctl.>.
//
// It talks to NATS only through package bus; its state lives only in the KV buckets and in the
// data directory written by Init, so any replica can be restarted at any time.
package controller
