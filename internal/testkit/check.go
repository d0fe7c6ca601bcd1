package testkit

import (
	"testing"
	"time"
)

// CheckFor calls fn until it returns nil, and fails t with fn's last error if that has not
// happened within timeout. fn says why the condition does not hold yet, so a failure reads
// "still failing after 20s: got 2 connections, want 1", not "timed out". It polls every 10ms at
// first, backing off to every 100ms; timeouts are for waiting, so give them room (a loaded
// machine runs the tests).
func CheckFor(t testing.TB, timeout time.Duration, fn func() error) {
	t.Helper()
	if err := Poll(timeout, fn); err != nil {
		t.Fatalf("still failing after %s: %v", timeout, err)
	}
}

// Poll is CheckFor without a test: it returns nil once fn does, or fn's last error when timeout
// has passed. Helpers that add context to the failure use it.
func Poll(timeout time.Duration, fn func() error) error {
	deadline := time.Now().Add(timeout)
	every := 10 * time.Millisecond
	for {
		err := fn()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return err
		}
		time.Sleep(every)
		every = min(every*2, 100*time.Millisecond)
	}
}
