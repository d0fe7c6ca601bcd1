// Package cli is the jsn command line: the cobra command tree, one file per command, and the one
// function that maps errors to exit codes.
//
// Commands reach exporters only through package client (connect.go binds the connection flags
// and gives driver verbs their remote.Exporter) and run local mode only through
// exporter.StartLocal; this package must not import bus or NATS, and only the files of the
// commands that run an exporter or a controller import those packages (internal/layering
// checks). Driver packages add their own verb groups (`jsn power …`) through cmdutil.AddGroup;
// the binary (cmd/jsn/main.go) links them in with drivers/all, so this package imports no
// driver and driver tests can run the whole CLI in-process (cli/clitest).
//
// Exit codes:
//
//	0    success
//	1    device or other error (INTERNAL, UNAVAILABLE, FAILED_PRECONDITION, DEADLINE_EXCEEDED,
//	     UNIMPLEMENTED)
//	2    usage error: bad flags or arguments, no session, a bad config file
//	3    not found: no such driver, method or exporter
//	4    invalid argument: wrong argument count or type
//	5    permission denied
//	N    for methods that run a command (shell output), the remote command's own exit code;
//	     for `jsn shell`, the child's exit code (128+signal if it was killed)
//
// Errors are printed as `jsn: <message>` on stderr.
package cli
