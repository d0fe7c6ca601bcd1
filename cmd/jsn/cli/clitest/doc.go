// Package clitest runs jsn commands in-process (cli.Run, the whole command tree with its exit
// codes) for tests, mostly against a lab session (exportertest): `jsn power on` costs a function
// call instead of a process, and no test package builds a jsn binary for it. Tests that need a
// separate process (a `jsn shell` child, signals) use jsntest instead.
//
// The commands see only the environment given them (the session's JSN_HOST, JSN_EXPORTER and
// JSN_LEASE), read the given stdin and write to buffers; relative paths resolve in the test's
// working directory (t.Chdir). Only tests import it.
package clitest
