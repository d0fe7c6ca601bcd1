// Package shell owns the jsn.shell.v1 interface: methods defined in the exporter config as shell
// commands (Jumpstarter's Shell driver). Each configured method runs its command in its own
// process group and streams the command's stdout and stderr as they arrive, then its exit code.
// The package holds the driver (Shell) and the typed client (Client).
//
// No process it starts outlives its call: timeouts, cancelled calls and Reset kill the whole
// process group, and whatever is left in the group when the shell exits is killed too. Nothing
// here reaches the bus or NATS (internal/layering checks), writes to stdout, or logs through the
// global logger.
package shell
