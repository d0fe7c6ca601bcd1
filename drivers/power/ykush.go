package power

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"time"

	"jsn.dev/jsn/drivers/driver"
)

func init() {
	driver.MustRegister(driver.Info{
		Type:      "power.Ykush",
		Interface: Interface,
		Doc:       "Yepkit YKUSH USB hub port power through ykushcmd",
		New:       NewYkush,
		Aliases:   []string{"jumpstarter_driver_yepkit.driver.Ykush"},
	})
}

// Ykush switches the downstream ports of a Yepkit YKUSH USB hub by running Yepkit's ykushcmd:
// `ykushcmd [BOARD] [-s SERIAL] -u PORT` (on), `-d PORT` (off) and `-g PORT` (status, which
// prints "Downstream port N is ON|OFF").
//
// Config (Jumpstarter's jumpstarter_driver_yepkit.driver.Ykush keys, plus jsn's):
//
//	serial: YK25838    # board serial; optional when one board is attached
//	port: "1"          # 1, 2, 3, or a / all for every port (default all)
//	default: off       # Jumpstarter's reset state: off | on | keep
//	reset: off         # jsn's name for the same: off | on | leave (give one of the two)
//	ykushcmd: ykushcmd # path of the program
//	board: ""          # ykushcmd board argument: ykush, ykush3 or ykushxs; "" for the legacy syntax
//	timeout: 10s
//	cycle_wait: 1s
//
// Port "all" has no status query in ykushcmd: its status is the last state switched to.
type Ykush struct {
	Serial    string        `yaml:"serial"`
	Port      string        `yaml:"port"`
	Default   string        `yaml:"default"`
	ResetMode string        `yaml:"reset"`
	Ykushcmd  string        `yaml:"ykushcmd"`
	Board     string        `yaml:"board"`
	Timeout   time.Duration `yaml:"timeout"`
	CycleWait time.Duration `yaml:"cycle_wait"`

	run *runner
}

// NewYkush is the power.Ykush constructor: defaults only, no side effects.
func NewYkush(env driver.Env) driver.Driver {
	r := newRunner(env)
	r.kind = "YKUSH"
	return &Ykush{
		Port:      "all",
		Ykushcmd:  "ykushcmd",
		Timeout:   10 * time.Second,
		CycleWait: DefaultCycleWait,
		run:       r,
	}
}

// ykushOn is what `ykushcmd -g` prints for a port that is on.
var ykushOn = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`\bON\b`) })

// portArg returns ykushcmd's port argument: "1".."3" or "a".
func (y *Ykush) portArg() string {
	p := strings.ToLower(strings.TrimSpace(y.Port))
	if p == "all" {
		return "a"
	}
	return p
}

// resetMode returns the effective reset mode.
func (y *Ykush) resetMode() string {
	switch {
	case y.ResetMode != "":
		return y.ResetMode
	case y.Default == "keep":
		return resetLeave
	case y.Default != "":
		return y.Default
	}
	return resetOff
}

// Validate checks the config.
func (y *Ykush) Validate() error {
	var errs []error
	switch y.portArg() {
	case "1", "2", "3", "a":
	default:
		errs = append(errs, driver.FieldErrorf("port", `want 1, 2, 3 or "all", got %q`, y.Port))
	}
	if strings.HasPrefix(y.Serial, "-") || strings.ContainsAny(y.Serial, " \t\n\x00") {
		errs = append(errs, driver.FieldErrorf("serial", "not a board serial: %q", y.Serial))
	}
	switch y.Default {
	case "", "on", "off", "keep":
	default:
		errs = append(errs, driver.FieldErrorf("default", `want "on", "off" or "keep", got %q`, y.Default))
	}
	if y.ResetMode != "" {
		if err := validReset("reset", y.ResetMode); err != nil {
			errs = append(errs, err)
		}
		if y.Default != "" {
			errs = append(errs, driver.FieldErrorf("reset", "give either reset or default, not both"))
		}
	}
	if y.Ykushcmd == "" {
		errs = append(errs, driver.FieldErrorf("ykushcmd", "must not be empty"))
	}
	switch y.Board {
	case "", "ykush", "ykush3", "ykushxs":
	default:
		errs = append(errs, driver.FieldErrorf("board", `want "ykush", "ykush3" or "ykushxs", got %q`, y.Board))
	}
	errs = append(errs, y.run.validate(y.Timeout, y.CycleWait, nil)...)
	return errors.Join(errs...)
}

func (y *Ykush) argv(flag string) []string {
	argv := []string{y.Ykushcmd}
	if y.Board != "" {
		argv = append(argv, y.Board)
	}
	if y.Serial != "" {
		argv = append(argv, "-s", y.Serial)
	}
	return append(argv, flag, y.portArg())
}

// Open prepares the ykushcmd command lines; nothing runs yet.
func (y *Ykush) Open(ctx context.Context) error {
	r := y.run
	r.timeout, r.cycleWait = y.Timeout, y.CycleWait
	r.on, r.off = y.argv("-u"), y.argv("-d")
	if y.portArg() != "a" {
		r.status, r.statusOn = y.argv("-g"), ykushOn()
	}
	return nil
}

// Reset switches the port off, unless default/reset say otherwise.
func (y *Ykush) Reset(ctx context.Context) error { return applyReset(ctx, y.run, y.resetMode()) }

// Close does nothing.
func (y *Ykush) Close() error { return nil }

// Unavailable says ykushcmd cannot be found (a path is resolved against the config's
// directory, a bare name on PATH), or "".
func (y *Ykush) Unavailable() string {
	cmd := y.Ykushcmd
	if strings.ContainsRune(cmd, '/') && !filepath.IsAbs(cmd) {
		cmd = filepath.Join(y.run.dir, cmd)
	}
	if _, err := exec.LookPath(cmd); err != nil {
		return fmt.Sprintf("%s not found: install Yepkit's ykushcmd or set ykushcmd: to its path", y.Ykushcmd)
	}
	return ""
}

// Methods returns the jsn.power.v1 method table.
func (y *Ykush) Methods() []driver.Method { return Methods(y.run, Options{CycleWait: y.CycleWait}) }

// On switches the port on.
func (y *Ykush) On(ctx context.Context) error { return y.run.On(ctx) }

// Off switches the port off.
func (y *Ykush) Off(ctx context.Context) error { return y.run.Off(ctx) }

// Status asks the board, or returns the assumed state for port "all".
func (y *Ykush) Status(ctx context.Context) (State, error) { return y.run.Status(ctx) }

// Read fails UNIMPLEMENTED: a YKUSH does not measure.
func (y *Ykush) Read(ctx context.Context) (Reading, error) { return y.run.Read(ctx) }

var (
	_ Device           = (*Ykush)(nil)
	_ driver.Driver    = (*Ykush)(nil)
	_ driver.Validator = (*Ykush)(nil)
	_ driver.Methoder  = (*Ykush)(nil)

	_ driver.Availability = (*Ykush)(nil)
)
