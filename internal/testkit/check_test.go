package testkit

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
)

func TestPoll(t *testing.T) {
	n := 0
	err := Poll(10*time.Second, func() error {
		if n++; n < 3 {
			return fmt.Errorf("try %d", n)
		}
		return nil
	})
	if err != nil || n != 3 {
		t.Fatalf("got %v after %d calls, want nil after 3", err, n)
	}
	err = Poll(30*time.Millisecond, func() error { return errors.New("never") })
	if err == nil || err.Error() != "never" {
		t.Fatalf("got %v, want the last error", err)
	}
}

// fake records what CheckFor reports instead of failing the test.
type fake struct {
	testing.TB
	msg string
}

func (f *fake) Helper()                        {}
func (f *fake) Fatalf(format string, a ...any) { f.msg = fmt.Sprintf(format, a...) }

func TestCheckForSaysWhy(t *testing.T) {
	f := &fake{TB: t}
	CheckFor(f, 20*time.Millisecond, func() error { return errors.New("got 2 connections, want 1") })
	if !strings.Contains(f.msg, "still failing after 20ms: got 2 connections, want 1") {
		t.Fatalf("got %q, want the last error with the timeout", f.msg)
	}
}
