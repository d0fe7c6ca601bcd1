package cmdutil

import (
	"context"
	"fmt"
	"io"
	"os"

	"github.com/spf13/cobra"

	"jsn.dev/jsn/client"
)

// Factory carries what every command needs: I/O streams, the environment and the connection
// flags. Tests build one with their own streams and Getenv.
type Factory struct {
	In     io.Reader
	Out    io.Writer
	ErrOut io.Writer

	// Getenv looks up an environment variable; os.Getenv by default.
	Getenv func(key string) string

	// Connection flags, bound by AddConnectionFlags; empty means "use the environment".
	Host         string
	ExporterName string
	Lease        string

	// ClientConfig is the client config file for controller commands (--config of `jsn lease`,
	// `jsn get`); "" means $JSN_CLIENT_CONFIG or the current one.
	ClientConfig string
}

// New returns a Factory on the process's standard streams and environment.
func New() *Factory {
	return &Factory{In: os.Stdin, Out: os.Stdout, ErrOut: os.Stderr, Getenv: os.Getenv}
}

// AddConnectionFlags binds --host, --exporter and --lease as persistent flags of cmd.
func (f *Factory) AddConnectionFlags(cmd *cobra.Command) {
	fl := cmd.PersistentFlags()
	fl.StringVar(&f.Host, "host", "", "bus address (default $"+client.EnvHost+")")
	fl.StringVar(&f.ExporterName, "exporter", "", "exporter name (default $"+client.EnvExporter+")")
	fl.StringVar(&f.Lease, "lease", "", "lease id (default $"+client.EnvLease+")")
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

func (f *Factory) getenv(key string) string {
	if f.Getenv == nil {
		return os.Getenv(key)
	}
	return f.Getenv(key)
}

// Options returns the client options from the flags, falling back to the environment. Outside a
// session the error wraps client.ErrNoSession.
func (f *Factory) Options() (client.Options, error) {
	o := client.Options{
		Host:     firstNonEmpty(f.Host, f.getenv(client.EnvHost)),
		Exporter: firstNonEmpty(f.ExporterName, f.getenv(client.EnvExporter)),
		Lease:    firstNonEmpty(f.Lease, f.getenv(client.EnvLease)),
		Name:     "cli",
		Creds:    f.getenv(client.EnvCreds),

		NoDirectStreams: f.getenv(client.EnvDirectStreams) == "off",
	}
	if err := o.Validate(); err != nil {
		return o, err
	}
	return o, nil
}

// Exporter connects to the exporter named by the flags or the environment. The caller closes it;
// it is also closed when ctx ends.
func (f *Factory) Exporter(ctx context.Context) (*client.Exporter, error) {
	var ex *client.Exporter
	if f.Lease != "" && f.Host == "" && f.getenv(client.EnvHost) == "" {
		// --lease ID outside a session: get the lease credential from the controller.
		var err error
		if ex, err = f.leaseExporter(ctx, f.Lease); err != nil {
			return nil, err
		}
	} else {
		o, err := f.Options()
		if err != nil {
			return nil, err
		}
		if ex, err = client.Dial(ctx, o); err != nil {
			return nil, fmt.Errorf("connect to %s: %w", o.Host, err)
		}
	}
	// Ending ctx (Ctrl-C in an interruptible command) closes the connection, which resets its
	// streams: a blocked stream read returns instead of waiting for the next item.
	context.AfterFunc(ctx, func() { _ = ex.Close() })
	return ex, nil
}

func firstNonEmpty(s ...string) string {
	for _, v := range s {
		if v != "" {
			return v
		}
	}
	return ""
}

// Controller connects to the lab controller with the client config (--config, else
// $JSN_CLIENT_CONFIG, else the current one). The caller closes it.
func (f *Factory) Controller(ctx context.Context) (*client.Controller, error) {
	cfg, err := client.LoadConfig(f.ClientConfig)
	if err != nil {
		return nil, &UsageError{Err: err}
	}
	c, err := client.DialController(ctx, cfg)
	if err != nil {
		return nil, err
	}
	return c, nil
}

// leaseExporter reaches the exporter of active lease id with the lease credential the
// controller hands its holder, once the exporter serves the lease.
func (f *Factory) leaseExporter(ctx context.Context, id string) (*client.Exporter, error) {
	ctl, err := f.Controller(ctx)
	if err != nil {
		return nil, err
	}
	defer ctl.Close()
	rep, err := ctl.GetLease(ctx, id)
	if err != nil {
		return nil, fmt.Errorf("lease %s: %w", id, err)
	}
	o, err := ctl.LeaseOptions(rep)
	if err != nil {
		return nil, fmt.Errorf("lease %s is %s: %w", id, rep.Lease.Status, err)
	}
	ex, err := client.Dial(ctx, o)
	if err != nil {
		return nil, fmt.Errorf("connect to %s: %w", o.Host, err)
	}
	if err := ex.WaitReady(ctx, nil); err != nil {
		_ = ex.Close()
		return nil, err
	}
	return ex, nil
}
