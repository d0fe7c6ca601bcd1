// Package cmdutil is the toolkit shared by the jsn command line and by the CLI verbs that driver
// packages contribute (drivers/power/cmd.go and friends).
//
// It owns the Factory (I/O streams, environment, the values of the connection flags, and
// Factory.Exporter, the way to reach the exporter they name), driver selection by interface
// (SelectDriver, WithDriver), the registry of verb groups that interface packages add from init
// (AddGroup), value printing for -o yaml|json, and the error kinds that decide jsn's exit code
// (UsageError, ExitError, and errors that match the wire sentinels).
//
// It sees exporters only as client/remote interfaces: package cli binds the connection flags and
// sets Factory.Exporter with package client, so this package (and every driver verb built on it)
// links no NATS; internal/layering checks. It must not write to os.Stdout/os.Stderr directly (use
// the Factory's streams), and must not call os.Exit.
package cmdutil
