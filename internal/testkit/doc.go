// Package testkit holds small helpers every test of jsn may use; CheckFor is the polling helper
// (nats-server's checkFor): it waits for a condition that says why it does not hold yet.
//
// It is a leaf (no jsn package), so the tests of any package, exporter and bus included, can use
// it. Only tests import it.
package testkit
