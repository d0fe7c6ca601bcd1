package gpio

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"jsn.dev/jsn/bus/wire"
)

// The uAPI v2 ioctls x/sys/unix does not name.
const (
	ioctlChipInfo = 0x8044b401 // GPIO_GET_CHIPINFO_IOCTL
	eventSize     = 48         // sizeof(struct gpio_v2_line_event)
)

func ioctl(fd uintptr, req uintptr, arg unsafe.Pointer) error {
	for {
		_, _, e := unix.Syscall(unix.SYS_IOCTL, fd, req, uintptr(arg))
		if e == unix.EINTR {
			continue
		}
		if e != 0 {
			return e
		}
		return nil
	}
}

func cstring(b []byte) string {
	for i, c := range b {
		if c == 0 {
			return string(b[:i])
		}
	}
	return string(b)
}

// chipInfo reads a chip's name, label and line count.
func chipInfo(f *os.File) (unix.GPIOChipInfo, error) {
	var ci unix.GPIOChipInfo
	err := ioctl(f.Fd(), ioctlChipInfo, unsafe.Pointer(&ci))
	return ci, err
}

// openChip opens the chip c names: its path, or the first /dev/gpiochip* whose label matches.
func openChip(c chipRef) (*os.File, unix.GPIOChipInfo, error) {
	if c.path != "" {
		f, err := os.OpenFile(c.path, os.O_RDWR|unix.O_CLOEXEC, 0)
		if err != nil {
			return nil, unix.GPIOChipInfo{}, wire.Errorf(wire.Unavailable, "gpio chip %s: %v", c.path, unwrapPath(err))
		}
		ci, err := chipInfo(f)
		if err != nil {
			f.Close()
			return nil, ci, wire.Errorf(wire.Unavailable, "gpio chip %s: not a GPIO character device: %v", c.path, err)
		}
		return f, ci, nil
	}
	paths, _ := filepath.Glob("/dev/gpiochip*")
	sort.Strings(paths)
	var labels []string
	for _, p := range paths {
		f, err := os.OpenFile(p, os.O_RDWR|unix.O_CLOEXEC, 0)
		if err != nil {
			continue
		}
		ci, err := chipInfo(f)
		if err == nil && cstring(ci.Label[:]) == c.label {
			return f, ci, nil
		}
		if err == nil {
			labels = append(labels, cstring(ci.Label[:]))
		}
		f.Close()
	}
	return nil, unix.GPIOChipInfo{}, wire.Errorf(wire.Unavailable, "no gpio chip labelled %q (chips: %q)", c.label, labels)
}

func unwrapPath(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// findOffset returns the offset of the line l on the chip.
func findOffset(f *os.File, ci unix.GPIOChipInfo, l lineRef, chip string) (int, error) {
	if l.name == "" {
		if l.offset >= int(ci.Lines) {
			return 0, wire.Errorf(wire.Unavailable, "gpio chip %s has %d lines: no line %d", chip, ci.Lines, l.offset)
		}
		return l.offset, nil
	}
	for off := uint32(0); off < ci.Lines; off++ {
		var li unix.GPIOV2LineInfo
		li.Offset = off
		if err := ioctl(f.Fd(), unix.GPIO_V2_GET_LINEINFO_IOCTL, unsafe.Pointer(&li)); err != nil {
			return 0, wire.Errorf(wire.Unavailable, "gpio chip %s: line info %d: %v", chip, off, err)
		}
		if cstring(li.Name[:]) == l.name {
			return int(off), nil
		}
	}
	return 0, wire.Errorf(wire.Unavailable, "gpio chip %s has no line named %q", chip, l.name)
}

// lineFD is a request of one line: its file in Go's poller, so a blocked event read ends when
// the file is closed.
type lineFD struct {
	f      *os.File
	offset int
	chip   string // the chip's name, for messages
}

// requestLine requests the line of r with flags; for outputs value is the initial value;
// debounce (inputs) is rounded to microseconds.
func requestLine(r resolved, flags uint64, value bool, debounce time.Duration) (*lineFD, error) {
	chip, ci, err := openChip(r.chip)
	if err != nil {
		return nil, err
	}
	defer chip.Close()
	name := cstring(ci.Name[:])
	off, err := findOffset(chip, ci, r.line, name)
	if err != nil {
		return nil, err
	}
	var req unix.GPIOV2LineRequest
	req.Offsets[0] = uint32(off)
	copy(req.Consumer[:len(req.Consumer)-1], r.consumer)
	req.Num_lines = 1
	req.Config.Flags = flags
	n := 0
	if flags&flagOutput != 0 {
		req.Config.Attrs[n].Attr.Id = unix.GPIO_V2_LINE_ATTR_ID_OUTPUT_VALUES
		if value {
			req.Config.Attrs[n].Attr.Flags = 1
		}
		req.Config.Attrs[n].Mask = 1
		n++
	}
	if debounce > 0 {
		req.Config.Attrs[n].Attr.Id = unix.GPIO_V2_LINE_ATTR_ID_DEBOUNCE
		req.Config.Attrs[n].Attr.Flags = uint64(debounce / time.Microsecond) // the union's u32, little-endian
		req.Config.Attrs[n].Mask = 1
		n++
	}
	req.Config.Num_attrs = uint32(n)
	if err := ioctl(chip.Fd(), unix.GPIO_V2_GET_LINE_IOCTL, unsafe.Pointer(&req)); err != nil {
		switch err {
		case unix.EBUSY:
			var li unix.GPIOV2LineInfo
			li.Offset = uint32(off)
			_ = ioctl(chip.Fd(), unix.GPIO_V2_GET_LINEINFO_IOCTL, unsafe.Pointer(&li))
			return nil, wire.Errorf(wire.Unavailable, "gpio %s line %d is in use by %q", name, off, cstring(li.Consumer[:]))
		case unix.EINVAL, unix.ENXIO, unix.EOPNOTSUPP:
			return nil, wire.Errorf(wire.FailedPrecondition, "gpio %s line %d: the chip refused the line's settings (flags %#x): %v", name, off, flags, err)
		}
		return nil, wire.Errorf(wire.Unavailable, "gpio %s line %d: request: %v", name, off, err)
	}
	if err := unix.SetNonblock(int(req.Fd), true); err != nil {
		unix.Close(int(req.Fd))
		return nil, fmt.Errorf("gpio %s line %d: %w", name, off, err)
	}
	return &lineFD{f: os.NewFile(uintptr(req.Fd), fmt.Sprintf("%s:%d", name, off)), offset: off, chip: name}, nil
}

func (l *lineFD) get() (bool, error) {
	v := unix.GPIOV2LineValues{Mask: 1}
	var err error
	cerr := withFd(l.f, func(fd uintptr) { err = ioctl(fd, unix.GPIO_V2_LINE_GET_VALUES_IOCTL, unsafe.Pointer(&v)) })
	if cerr != nil {
		return false, cerr
	}
	if err != nil {
		return false, wire.Errorf(wire.Unavailable, "gpio %s line %d: get: %v", l.chip, l.offset, err)
	}
	return v.Bits&1 != 0, nil
}

func (l *lineFD) set(active bool) error {
	v := unix.GPIOV2LineValues{Mask: 1}
	if active {
		v.Bits = 1
	}
	var err error
	cerr := withFd(l.f, func(fd uintptr) { err = ioctl(fd, unix.GPIO_V2_LINE_SET_VALUES_IOCTL, unsafe.Pointer(&v)) })
	if cerr != nil {
		return cerr
	}
	if err != nil {
		return wire.Errorf(wire.Unavailable, "gpio %s line %d: set: %v", l.chip, l.offset, err)
	}
	return nil
}

// withFd runs fn with the raw descriptor while the file cannot be closed under it.
func withFd(f *os.File, fn func(fd uintptr)) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return wire.Errorf(wire.Unavailable, "gpio line closed")
	}
	if err := rc.Control(fn); err != nil {
		return wire.Errorf(wire.Unavailable, "gpio line closed")
	}
	return nil
}

// readEvents reads edge events until the file is closed, calling fn for each.
func (l *lineFD) readEvents(fn func(Event)) error {
	buf := make([]byte, eventSize*16)
	for {
		n, err := l.f.Read(buf)
		if err != nil {
			if errors.Is(err, os.ErrClosed) || errors.Is(err, io.EOF) {
				return nil
			}
			return err
		}
		for b := buf[:n]; len(b) >= eventSize; b = b[eventSize:] {
			ev := Event{Time: time.Duration(binary.LittleEndian.Uint64(b[0:])), Seqno: binary.LittleEndian.Uint32(b[20:])}
			switch binary.LittleEndian.Uint32(b[8:]) {
			case unix.GPIO_V2_LINE_EVENT_RISING_EDGE:
				ev.Edge, ev.Active = Rising, true
			case unix.GPIO_V2_LINE_EVENT_FALLING_EDGE:
				ev.Edge, ev.Active = Falling, false
			default:
				continue
			}
			fn(ev)
		}
	}
}

func (l *lineFD) close() error { return l.f.Close() }
