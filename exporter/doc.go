// Package exporter loads an exporter config (ExporterConfig YAML, jsn's own or Jumpstarter's),
// builds its driver tree, and serves the tree's drivers on the bus for the current lease: describe
// requests, driver calls and byte streams, resetting drivers (and making them forget the session,
// driver.Forgetter) between leases. In distributed mode it answers only into the inbox of the
// lease a request presents, and tells the controller when it has finished a lease. It also runs
// local-mode sessions (an embedded server plus the exporter in one process).
//
// It talks to NATS only through package bus and to drivers only through package driver; it must
// not write to stdout or the global logger (the caller injects a *slog.Logger).
package exporter
