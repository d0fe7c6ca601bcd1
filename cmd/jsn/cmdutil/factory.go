package cmdutil

import (
	"context"
	"io"
	"os"

	"jsn.dev/jsn/client/remote"
)

// Factory carries what every command needs: I/O streams, the environment, the connection flags
// and the way to reach the exporter they name. Tests build one with their own streams and Getenv.
type Factory struct {
	In     io.Reader
	Out    io.Writer
	ErrOut io.Writer

	// Getenv looks up an environment variable; os.Getenv when nil (see Env).
	Getenv func(key string) string

	// Connection flags (--host, --exporter, --lease, bound by the jsn CLI); empty means "use the
	// environment".
	Host         string
	ExporterName string
	Lease        string

	// ClientConfig is the client config file for controller commands (--config of `jsn lease`,
	// `jsn get`); "" means $JSN_CLIENT_CONFIG or the current one.
	ClientConfig string

	// Exporter connects to the exporter named by the connection flags or the environment (or, for
	// --lease ID outside a session, the one that lease is for). The caller closes it; it is also
	// closed when ctx ends, so a blocked stream read returns on Ctrl-C. The jsn CLI sets it (package
	// cli owns the client); driver verbs only call it.
	Exporter func(ctx context.Context) (remote.Exporter, error)
}

// New returns a Factory on the process's standard streams and environment.
func New() *Factory {
	return &Factory{In: os.Stdin, Out: os.Stdout, ErrOut: os.Stderr, Getenv: os.Getenv}
}

// IsTerminal reports whether s is a character device (a terminal).
func IsTerminal(s any) bool {
	file, ok := s.(*os.File)
	if !ok {
		return false
	}
	st, err := file.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

// IsTerminal reports whether the Factory's stdout is a terminal.
func (f *Factory) IsTerminal() bool { return IsTerminal(f.Out) }

// Env looks up an environment variable with Getenv, or os.Getenv when Getenv is nil.
func (f *Factory) Env(key string) string {
	if f.Getenv == nil {
		return os.Getenv(key)
	}
	return f.Getenv(key)
}
