// Package jsntest holds helpers for tests that run the jsn binary as a separate process (a
// `jsn shell` child, a terminal, signals): it builds the binary (with -race when the tests run
// with -race) once for all the test processes of a run (see Binary), runs it outside or inside
// `jsn shell -c CONFIG -- …` sessions with a clean environment and a timeout, and collects its
// output and exit code. Tests that only need a command's output and exit code run it in-process
// with package clitest instead.
//
// Only tests import it; non-test code must not.
package jsntest
