// Package exportertest runs a local lab for tests: an exporter config given as YAML, served by
// exporter.StartLocal (an embedded bus, the exporter, a lease), and a client connected to it.
// Driver packages' end-to-end tests use it to reach their drivers the way users do.
//
// Only tests import it. The exporter package's own tests cannot (it imports exporter).
package exportertest
