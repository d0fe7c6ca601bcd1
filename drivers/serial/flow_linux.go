//go:build linux

package serial

import (
	"fmt"

	"golang.org/x/sys/unix"
)

// flowControl holds a second descriptor of a device, opened before go.bug.st/serial takes the
// port for exclusive use (TIOCEXCL), to set flow control, which that package always turns off
// and offers no setting for. Terminal settings belong to the device, not to a descriptor.
type flowControl struct{ fd int }

func openFlow(path, flow string, noHupcl bool) (*flowControl, error) {
	if (flow == "" || flow == "none") && !noHupcl {
		return nil, nil
	}
	fd, err := unix.Open(path, unix.O_RDWR|unix.O_NOCTTY|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	return &flowControl{fd: fd}, nil
}

// apply sets flow ("rtscts" or "xonxoff") on the device, clears HUPCL when noHupcl (closing
// the device then leaves DTR/RTS up: pyserial's disable_hupcl) and closes the descriptor.
func (f *flowControl) apply(flow string, noHupcl bool) error {
	if f == nil {
		return nil
	}
	defer unix.Close(f.fd)
	t, err := unix.IoctlGetTermios(f.fd, unix.TCGETS)
	if err != nil {
		return fmt.Errorf("flow control: %w", err)
	}
	switch flow {
	case "rtscts":
		t.Cflag |= unix.CRTSCTS
	case "xonxoff":
		t.Iflag |= unix.IXON | unix.IXOFF
		t.Cc[unix.VSTART], t.Cc[unix.VSTOP] = 0x11, 0x13
	}
	if noHupcl {
		t.Cflag &^= unix.HUPCL
	}
	if err := unix.IoctlSetTermios(f.fd, unix.TCSETS, t); err != nil {
		return fmt.Errorf("flow control: %w", err)
	}
	return nil
}

// close releases the descriptor without applying anything.
func (f *flowControl) close() {
	if f != nil {
		unix.Close(f.fd)
	}
}
