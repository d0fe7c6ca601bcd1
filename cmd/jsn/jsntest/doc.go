// Package jsntest holds helpers for tests that run the jsn binary: it builds the binary once per
// test process (with -race when the tests run with -race), runs it outside or inside
// `jsn shell -c CONFIG -- …` sessions with a clean environment and a timeout, and collects its
// output and exit code.
//
// Only tests import it; non-test code must not.
package jsntest
