// Package cmdutil is the toolkit shared by the jsn command line and by the CLI verbs that driver
// packages contribute (drivers/power/cmd.go and friends).
//
// It owns the Factory (I/O streams, environment, the connection flags --host, --exporter and
// --lease and how they fall back to JSN_HOST, JSN_EXPORTER and JSN_LEASE), driver selection by
// interface (SelectDriver), the registry of verb groups that interface packages add from init
// (AddGroup), value printing for -o yaml|json, and the error kinds that decide jsn's exit code
// (UsageError, ExitError, and errors that match the client sentinels).
//
// It reaches exporters only through package client; it must not import bus or NATS, must not
// write to os.Stdout/os.Stderr directly (use the Factory's streams), and must not call os.Exit.
package cmdutil
