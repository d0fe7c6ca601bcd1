package cmdutil

import (
	"errors"
	"fmt"

	"jsn.dev/jsn/bus/wire"
)

// UsageError is a mistake in how jsn was invoked: bad flags or arguments, no session, a bad
// config file. jsn exits 2.
type UsageError struct {
	Err      error
	ShowHelp bool // point the user to --help (a mistake in the command line itself)
}

func (e *UsageError) Error() string { return e.Err.Error() }
func (e *UsageError) Unwrap() error { return e.Err }

// Usagef returns a UsageError with a formatted message (%w keeps the cause).
func Usagef(format string, args ...any) error {
	return &UsageError{Err: fmt.Errorf(format, args...)}
}

// ExitError asks jsn to exit with Code, printing Message (if any) as an error first. It carries
// the exit code of a remote command or of a child process.
type ExitError struct {
	Code    int
	Message string
}

func (e *ExitError) Error() string {
	if e.Message != "" {
		return e.Message
	}
	return fmt.Sprintf("exit status %d", e.Code)
}

// codedError is a locally made error that matches one of the wire sentinels with errors.Is,
// without rendering the sentinel's bare code in its message.
type codedError struct {
	sentinel error
	err      error
}

func (e *codedError) Error() string        { return e.err.Error() }
func (e *codedError) Unwrap() error        { return e.err }
func (e *codedError) Is(target error) bool { return target == e.sentinel }

// Errorf returns an error that matches sentinel (wire.ErrNotFound, wire.ErrInvalidArgument…)
// with errors.Is and reads as the formatted message.
func Errorf(sentinel error, format string, args ...any) error {
	return &codedError{sentinel: sentinel, err: fmt.Errorf(format, args...)}
}

// NotFoundf returns an error matching wire.ErrNotFound.
func NotFoundf(format string, args ...any) error {
	return Errorf(wire.ErrNotFound, format, args...)
}

// InvalidArgf returns an error matching wire.ErrInvalidArgument.
func InvalidArgf(format string, args ...any) error {
	return Errorf(wire.ErrInvalidArgument, format, args...)
}

// IsUsage reports whether err is a usage error (a UsageError; the CLI reports a missing session as
// one).
func IsUsage(err error) bool {
	var u *UsageError
	return errors.As(err, &u)
}
