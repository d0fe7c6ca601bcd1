package exportertest

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"jsn.dev/jsn/client"
	"jsn.dev/jsn/exporter"
)

// Lab is a local session serving one exporter config, and a client on it.
type Lab struct {
	Local    *exporter.Local  // the session: URL, exporter name and lease (JSN_HOST, …)
	Client   *client.Client   // connected to the session's bus
	Exporter *client.Exporter // the session's exporter, presenting its lease
	Dir      string           // holds the config file: relative paths in it resolve here
}

// Options tune StartWith.
type Options struct {
	Log *slog.Logger // the exporter's and the bus's log; nil discards it
}

// Start writes config (a whole ExporterConfig; every "$DIR" replaced by the lab's directory) to
// a fresh directory, serves it and connects a client. Everything stops when t ends.
func Start(t testing.TB, config string) *Lab {
	t.Helper()
	return StartWith(t, config, Options{})
}

// StartWith is Start with options.
func StartWith(t testing.TB, config string, o Options) *Lab {
	t.Helper()
	dir := t.TempDir()
	config = strings.ReplaceAll(config, "$DIR", dir)
	file := filepath.Join(dir, "exporter.yaml")
	if err := os.WriteFile(file, []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := exporter.ParseConfig(file, []byte(config))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	l, err := exporter.StartLocal(ctx, cfg, exporter.LocalOptions{Log: o.Log})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.Close() })
	c, err := client.Connect(ctx, l.URL, "tester")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return &Lab{Local: l, Client: c, Exporter: c.Exporter(l.Exporter, l.Lease), Dir: dir}
}

// Driver returns a handle on the driver at path.
func (l *Lab) Driver(path string) *client.Driver { return l.Exporter.Driver(path) }

// Env returns the session's environment for a jsn command: JSN_HOST, JSN_EXPORTER and
// JSN_LEASE.
func (l *Lab) Env() map[string]string {
	return map[string]string{client.EnvHost: l.Local.URL, client.EnvExporter: l.Local.Exporter, client.EnvLease: l.Local.Lease}
}
