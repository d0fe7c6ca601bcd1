package gpio

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"jsn.dev/jsn/drivers/driver"
)

// Line flags of the Linux GPIO character device uAPI v2 (linux/gpio.h, GPIO_V2_LINE_FLAG_*).
const (
	flagActiveLow    uint64 = 1 << 1
	flagInput        uint64 = 1 << 2
	flagOutput       uint64 = 1 << 3
	flagEdgeRising   uint64 = 1 << 4
	flagEdgeFalling  uint64 = 1 << 5
	flagOpenDrain    uint64 = 1 << 6
	flagOpenSource   uint64 = 1 << 7
	flagBiasPullUp   uint64 = 1 << 8
	flagBiasPullDown uint64 = 1 << 9
	flagBiasDisabled uint64 = 1 << 10
)

// DefaultDevice is the chip used when the config names none (Jumpstarter's default).
const DefaultDevice = "/dev/gpiochip0"

// Line is the config every line driver shares (Jumpstarter gpiod's keys).
//
//	device: /dev/gpiochip0   # a path, a chip number (0), a chip name (gpiochip0) or a chip label
//	line: 18                 # the line's offset on the chip, or its name
//	active_low: false        # true: the line is active when low (values are logical)
//	bias: as_is              # as_is | pull_up | pull_down | disabled
//	consumer: jsn            # the consumer name the kernel shows (gpioinfo)
type Line struct {
	Device    string `yaml:"device"`
	Line      string `yaml:"line" jsn:"required"`
	ActiveLow bool   `yaml:"active_low"`
	Bias      string `yaml:"bias"`
	Consumer  string `yaml:"consumer"`
}

// chipRef is where a chip is looked for: a path, or a label to match.
type chipRef struct {
	path  string
	label string
}

func (c chipRef) String() string {
	if c.path != "" {
		return c.path
	}
	return "the chip labelled " + strconv.Quote(c.label)
}

// parseDevice resolves the device key: "" → DefaultDevice, "3" → /dev/gpiochip3,
// "gpiochip3" → /dev/gpiochip3, "/dev/…" a path, anything else a chip label.
func parseDevice(s string) (chipRef, error) {
	s = strings.TrimSpace(s)
	switch {
	case s == "":
		return chipRef{path: DefaultDevice}, nil
	case strings.HasPrefix(s, "/"):
		if strings.ContainsRune(s, 0) {
			return chipRef{}, errors.New("path contains a NUL byte")
		}
		return chipRef{path: s}, nil
	}
	if n, err := strconv.ParseUint(s, 10, 16); err == nil {
		return chipRef{path: fmt.Sprintf("/dev/gpiochip%d", n)}, nil
	}
	if rest, ok := strings.CutPrefix(s, "gpiochip"); ok {
		if n, err := strconv.ParseUint(rest, 10, 16); err == nil {
			return chipRef{path: fmt.Sprintf("/dev/gpiochip%d", n)}, nil
		}
	}
	if len(s) > 31 || strings.ContainsAny(s, "\x00\n/") {
		return chipRef{}, fmt.Errorf("want a path, a chip number, gpiochipN or a chip label (at most 31 characters), got %q", s)
	}
	return chipRef{label: s}, nil
}

// lineRef is a line: an offset, or a name to look up on the chip.
type lineRef struct {
	offset int
	name   string
}

func (l lineRef) String() string {
	if l.name != "" {
		return strconv.Quote(l.name)
	}
	return strconv.Itoa(l.offset)
}

func parseLine(s string) (lineRef, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return lineRef{}, errors.New("want a line offset or name, got nothing")
	}
	if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		if n < 0 || n > 65535 {
			return lineRef{}, fmt.Errorf("offset %d out of range (0..65535)", n)
		}
		return lineRef{offset: int(n)}, nil
	}
	if len(s) > 31 || strings.ContainsAny(s, "\x00\n") {
		return lineRef{}, fmt.Errorf("want a line offset or a line name (at most 31 characters), got %q", s)
	}
	return lineRef{name: s}, nil
}

func parseBias(s string) (uint64, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "", "as_is", "as-is", "asis":
		return 0, nil
	case "pull_up", "pull-up", "pullup":
		return flagBiasPullUp, nil
	case "pull_down", "pull-down", "pulldown":
		return flagBiasPullDown, nil
	case "disabled", "disable", "none":
		return flagBiasDisabled, nil
	}
	return 0, fmt.Errorf(`want "as_is", "pull_up", "pull_down" or "disabled", got %q`, s)
}

func parseDrive(s string) (uint64, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "", "push_pull", "push-pull", "pushpull":
		return 0, nil
	case "open_drain", "open-drain", "opendrain":
		return flagOpenDrain, nil
	case "open_source", "open-source", "opensource":
		return flagOpenSource, nil
	}
	return 0, fmt.Errorf(`want "push_pull", "open_drain" or "open_source", got %q`, s)
}

// resolved is a validated Line: where the line is and the flags every request of it carries.
type resolved struct {
	chip     chipRef
	line     lineRef
	flags    uint64 // active-low and bias
	consumer string
}

func (l *Line) resolve() (resolved, error) {
	var r resolved
	var errs []error
	var err error
	if r.chip, err = parseDevice(l.Device); err != nil {
		errs = append(errs, driver.FieldErrorf("device", "%v", err))
	}
	if r.line, err = parseLine(l.Line); err != nil {
		errs = append(errs, driver.FieldErrorf("line", "%v", err))
	}
	b, err := parseBias(l.Bias)
	if err != nil {
		errs = append(errs, driver.FieldErrorf("bias", "%v", err))
	}
	r.flags = b
	if l.ActiveLow {
		r.flags |= flagActiveLow
	}
	r.consumer = l.Consumer
	if r.consumer == "" {
		r.consumer = "jsn"
	}
	if len(r.consumer) > 31 || strings.ContainsRune(r.consumer, 0) {
		errs = append(errs, driver.FieldErrorf("consumer", "want at most 31 characters, got %q", r.consumer))
	}
	return r, errors.Join(errs...)
}

// OutputConfig is the config of an output line (Jumpstarter's DigitalOutput and PowerSwitch
// keys, and jsn's).
//
//	drive: push_pull         # push_pull | open_drain | open_source
//	mode: push_pull          # PowerSwitch's name for drive (give one of the two)
//	initial_value: inactive  # active | inactive (also 1/0, on/off, true/false)
//	pulse_width: 100ms       # default width of pulse
type OutputConfig struct {
	Line         `yaml:",inline"`
	Drive        string        `yaml:"drive"`
	Mode         string        `yaml:"mode"`
	InitialValue string        `yaml:"initial_value"`
	PulseWidth   time.Duration `yaml:"pulse_width"`
}

// resolveOutput validates an output's keys and returns its request flags and initial value.
func (o *OutputConfig) resolveOutput() (resolved, bool, error) {
	r, err := o.resolve()
	errs := []error{err}
	drive := o.Drive
	field := "drive"
	if o.Mode != "" {
		if o.Drive != "" {
			errs = append(errs, driver.FieldErrorf("mode", "give either drive or mode (its PowerSwitch spelling), not both"))
		}
		drive, field = o.Mode, "mode"
	}
	d, err := parseDrive(drive)
	if err != nil {
		errs = append(errs, driver.FieldErrorf(field, "%v", err))
	}
	r.flags |= d | flagOutput
	initial := false
	if o.InitialValue != "" {
		if initial, err = ParseValue(o.InitialValue); err != nil {
			errs = append(errs, driver.FieldErrorf("initial_value", `want "active" or "inactive", got %q`, o.InitialValue))
		}
	}
	if o.PulseWidth < 0 || o.PulseWidth > MaxPulse {
		errs = append(errs, driver.FieldErrorf("pulse_width", "must be in (0, %s], got %s", MaxPulse, o.PulseWidth))
	}
	return r, initial, errors.Join(errs...)
}
