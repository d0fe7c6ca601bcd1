// Package fault is jsn's fault-injection suite: it has no code of its own, only tests that run
// the lab as an operator deploys it — a three-node NATS cluster from deploy/nats/cluster (R3
// KV buckets), two controller replicas, exporters and a leaf site, each a separate process — and
// break it the way machines break: kill -9 of a NATS server, of the JetStream meta leader, of
// the scheduling controller replica or of an exporter, SIGSTOP of a server (a partition that
// heals), a leaf link cut and healed. Meanwhile clients request, use and release leases through
// package client, and the tests count what an operator would count: leases lost (gone before
// their holder released them), double grants, failed operations and recovery times.
//
// The processes are the test binary itself, re-executed in a role (JSN_FAULT_ROLE), so they
// can be killed with SIGKILL and stopped with SIGSTOP like a real deployment; jsn commands are
// the test binary too (JSN_FAULT_ROLE=jsn runs the CLI, also inside a `jsn shell`). The quick
// version runs in `go test ./deploy/fault`; JSN_FAULT=long (set by .ci/run) runs ~300 lease cycles per
// scenario; JSN_FAULT_ONLY=text runs the cluster scenarios whose name contains text;
// JSN_FAULT_LOGS=dir keeps every process's log (and store) there. docs/performance.md has the
// figures, "Faults".
package fault
