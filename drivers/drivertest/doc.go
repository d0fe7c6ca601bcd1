// Package drivertest helps test drivers without a bus: an in-memory byte stream pair with
// half-close (Pipe), and helpers that look a method up in a driver's method table and call it
// directly (CallMethod, CollectStream, OpenStream).
//
// It is for tests only: the exporter and drivers must not import it. It must not start goroutines
// that outlive the stream or call they belong to.
package drivertest
