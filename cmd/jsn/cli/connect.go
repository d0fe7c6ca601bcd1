package cli

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"

	"jsn.dev/jsn/client"
	"jsn.dev/jsn/client/remote"
	"jsn.dev/jsn/cmd/jsn/cmdutil"
)

// addConnectionFlags binds --host, --exporter and --lease as persistent flags of cmd.
func addConnectionFlags(f *cmdutil.Factory, cmd *cobra.Command) {
	fl := cmd.PersistentFlags()
	fl.StringVar(&f.Host, "host", "", "bus address (default $"+client.EnvHost+")")
	fl.StringVar(&f.ExporterName, "exporter", "", "exporter name (default $"+client.EnvExporter+")")
	fl.StringVar(&f.Lease, "lease", "", "lease id (default $"+client.EnvLease+")")
}

// options returns the client options from f's flags, falling back to the environment. Outside a
// session the error is a usage error wrapping client.ErrNoSession.
func options(f *cmdutil.Factory) (client.Options, error) {
	o := client.Options{
		Host:     firstNonEmpty(f.Host, f.Env(client.EnvHost)),
		Exporter: firstNonEmpty(f.ExporterName, f.Env(client.EnvExporter)),
		Lease:    firstNonEmpty(f.Lease, f.Env(client.EnvLease)),
		Name:     "cli",
		Creds:    f.Env(client.EnvCreds),
		CAFile:   f.Env(client.EnvCA),

		NoDirectStreams: f.Env(client.EnvDirectStreams) == "off",
	}
	if f.Env(client.EnvExporters) != "" && f.Env(client.EnvExporter) == "" && f.Lease == "" {
		// A session with several exporters: --exporter names the one (group.go of client).
		lease, creds, _, err := client.SessionPart(f.Env, f.ExporterName)
		if err != nil {
			return o, &cmdutil.UsageError{Err: err}
		}
		o.Lease, o.Creds = lease, creds
	}
	if err := o.Validate(); err != nil {
		return o, &cmdutil.UsageError{Err: err}
	}
	return o, nil
}

// connectExporter connects to the exporter named by f's flags or the environment: this is
// f.Exporter, what every command that calls drivers uses. The caller closes it; it is also
// closed when ctx ends.
func connectExporter(ctx context.Context, f *cmdutil.Factory) (*client.Exporter, error) {
	var ex *client.Exporter
	if f.Lease != "" && f.Host == "" && f.Env(client.EnvHost) == "" {
		// --lease ID outside a session: get the lease credential from the controller.
		var err error
		if ex, err = leaseExporter(ctx, f, f.Lease); err != nil {
			return nil, err
		}
	} else {
		o, err := options(f)
		if err != nil {
			return nil, err
		}
		r := client.Retry{For: -1}
		if strings.HasPrefix(o.Host, "nats://") {
			r = retryNotice(f) // a lab's NATS server restarting: wait for it
		}
		if ex, err = client.DialWith(ctx, o, r); err != nil {
			return nil, fmt.Errorf("connect to %s: %w", o.Host, err)
		}
	}
	if err := restrictDrivers(f, ex); err != nil {
		_ = ex.Close()
		return nil, err
	}
	// Ending ctx (Ctrl-C in an interruptible command) closes the connection, which resets its
	// streams: a blocked stream read returns instead of waiting for the next item.
	context.AfterFunc(ctx, func() { _ = ex.Close() })
	return ex, nil
}

// restrictDrivers applies the client config's drivers.allow, when there is a client config:
// calls to drivers of other types fail before anything is sent.
func restrictDrivers(f *cmdutil.Factory, ex *client.Exporter) error {
	file := firstNonEmpty(f.ClientConfig, f.Env(client.EnvClientConfig))
	cfg, err := client.LoadConfig(file)
	if errors.Is(err, client.ErrNoClientConfig) {
		return nil
	}
	if err != nil {
		return &cmdutil.UsageError{Err: err}
	}
	if len(cfg.Drivers.Allow) > 0 {
		ex.RestrictDrivers(cfg.Drivers.Allow, "drivers.allow of client config "+cfg.File)
	}
	return nil
}

// remoteExporter is a client.Exporter seen as a remote.Exporter, for the driver verbs.
type remoteExporter struct{ *client.Exporter }

func (e remoteExporter) Driver(path string) remote.Driver { return e.Exporter.Driver(path) }

func firstNonEmpty(s ...string) string {
	for _, v := range s {
		if v != "" {
			return v
		}
	}
	return ""
}

// connectController connects to the lab controller with the client config (--config, else
// $JSN_CLIENT_CONFIG, else the current one). The caller closes it.
func connectController(ctx context.Context, f *cmdutil.Factory) (*client.Controller, error) {
	cfg, err := client.LoadConfig(f.ClientConfig)
	if err != nil {
		return nil, &cmdutil.UsageError{Err: err}
	}
	return client.DialControllerWith(ctx, cfg, retryNotice(f))
}

// retryNotice is how commands ride over a controller or NATS server that is away for a moment
// (a restart): operations are tried again for up to client.DefaultRetryFor, and stderr says so
// (at most every 10 s).
func retryNotice(f *cmdutil.Factory) client.Retry {
	var mu sync.Mutex
	var last time.Time
	return client.Retry{OnRetry: func(what string, err error, next time.Duration) {
		mu.Lock()
		defer mu.Unlock()
		if time.Since(last) < 10*time.Second {
			return
		}
		last = time.Now()
		fmt.Fprintf(f.ErrOut, "jsn: %s: %v; trying again for up to %v\n", what, err, client.DefaultRetryFor)
	}}
}

// leaseExporter reaches the exporter of active lease id with the lease credential the
// controller hands its holder, once the exporter serves the lease.
func leaseExporter(ctx context.Context, f *cmdutil.Factory, id string) (*client.Exporter, error) {
	ctl, err := connectController(ctx, f)
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
	ex, err := client.DialWith(ctx, o, retryNotice(f))
	if err != nil {
		return nil, fmt.Errorf("connect to %s: %w", o.Host, err)
	}
	if err := ex.WaitReady(ctx, nil); err != nil {
		_ = ex.Close()
		return nil, err
	}
	return ex, nil
}
