//go:build !linux

package gpio

import (
	"time"

	"jsn.dev/jsn/bus/wire"
)

// lineFD is unavailable off Linux: the GPIO character device is a Linux interface.
type lineFD struct{}

func requestLine(r resolved, flags uint64, value bool, debounce time.Duration) (*lineFD, error) {
	return nil, wire.Errorf(wire.Unavailable, "gpio: the GPIO character device needs Linux")
}

func (l *lineFD) get() (bool, error) {
	return false, wire.Errorf(wire.Unavailable, "gpio: needs Linux")
}
func (l *lineFD) set(bool) error                  { return wire.Errorf(wire.Unavailable, "gpio: needs Linux") }
func (l *lineFD) readEvents(fn func(Event)) error { return nil }
func (l *lineFD) close() error                    { return nil }
