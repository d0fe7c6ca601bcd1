package exporter

import (
	"context"
	"errors"
	"log/slog"
)

// LocalOptions configure a local-mode session.
type LocalOptions struct {
	Log *slog.Logger // exporter and server log; nil discards
	// Dir is a private (0700) directory for the session's Unix socket; "" makes a fresh one
	// under os.TempDir() that Close removes.
	Dir string
}

// Local is a running local-mode lab session: an embedded NATS server reachable through a Unix
// socket in a private directory, an exporter serving cfg on it, and a lease held by the session.
type Local struct {
	URL      string // JSN_HOST value, "unix:///…/bus.sock"
	Exporter string // JSN_EXPORTER value
	Lease    string // JSN_LEASE value
	Dir      string // the session directory
}

// StartLocal builds the driver tree of cfg, opens it, starts the embedded server and the exporter
// on it, and starts a lease (resetting every driver).
func StartLocal(ctx context.Context, cfg *Config, opts LocalOptions) (*Local, error) {
	return nil, errors.New("exporter: local mode not implemented yet")
}

// Close ends the lease (closing its streams, resetting drivers), stops the exporter, closes the
// drivers, shuts the server down and removes the directory if StartLocal made it.
func (l *Local) Close() error { return nil }
