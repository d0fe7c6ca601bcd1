package debug

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"time"

	"jsn.dev/jsn/bus/wire"
	"jsn.dev/jsn/drivers/driver"
)

func init() {
	driver.MustRegister(driver.Info{
		Type:      "debug.OpenOCD",
		Interface: ProbeInterface,
		Doc:       "a debug probe driven by OpenOCD on the exporter: program firmware, erase, reset, read memory",
		New:       NewOpenOCD,
	})
}

// OpenOCD is the debug.OpenOCD driver: it runs the openocd tool on the exporter, one run per
// call, with the config's interface/target scripts, and speaks jsn.probe.v1 like debug.ProbeRS.
// Firmware uploaded on a byte stream is written to a private file and flashed with
// `program FILE verify reset exit`.
//
// Config:
//
//	openocd: openocd                 # the tool
//	interface: interface/cmsis-dap.cfg   # given as -f (OpenOCD's search path applies)
//	target: target/rp2040.cfg        # given as -f after interface
//	config: [board.cfg]              # more -f files, after target
//	adapter_speed: 4000              # kHz, -c "adapter speed N"; 0 = the scripts' own
//	args: [-s, /opt/scripts]         # more arguments, before the commands
//	flash_address: 0x10000000        # where a raw .bin is programmed
//	timeout: 5m                      # how long one openocd run may take
type OpenOCD struct {
	OpenOCDPath  string        `yaml:"openocd"`
	Interface    string        `yaml:"interface"`
	Target       string        `yaml:"target"`
	Config       []string      `yaml:"config"`
	AdapterSpeed int           `yaml:"adapter_speed"`
	Args         []string      `yaml:"args"`
	FlashAddress string        `yaml:"flash_address"`
	Timeout      time.Duration `yaml:"timeout"`

	dir string
	mu  sync.Mutex // one openocd run at a time: the probe is one device
}

// NewOpenOCD is the debug.OpenOCD constructor: defaults only, no side effects.
func NewOpenOCD(env driver.Env) driver.Driver {
	return &OpenOCD{OpenOCDPath: "openocd", Timeout: 5 * time.Minute, dir: env.Dir}
}

// Validate checks the config.
func (o *OpenOCD) Validate() error {
	var errs []error
	if o.OpenOCDPath == "" {
		errs = append(errs, driver.FieldErrorf("openocd", "must not be empty"))
	}
	if o.Interface == "" && o.Target == "" && len(o.Config) == 0 {
		errs = append(errs, driver.FieldErrorf("config", "give interface and target, or config: [files], for openocd -f"))
	}
	files := append([]string{o.Interface, o.Target}, o.Config...)
	for i, f := range files {
		if (i >= 2 && f == "") || strings.ContainsAny(f, "\n\x00") || strings.HasPrefix(f, "-") {
			field := [...]string{"interface", "target"}
			name := "config"
			if i < 2 {
				name = field[i]
			}
			errs = append(errs, driver.FieldErrorf(name, "not a script file name: %q", f))
		}
	}
	if o.AdapterSpeed < 0 {
		errs = append(errs, driver.FieldErrorf("adapter_speed", "must not be negative, got %d", o.AdapterSpeed))
	}
	if o.FlashAddress != "" {
		if _, err := strconv.ParseUint(o.FlashAddress, 0, 64); err != nil {
			errs = append(errs, driver.FieldErrorf("flash_address", "want a number such as 0x08000000, got %q", o.FlashAddress))
		}
	}
	if o.Timeout <= 0 {
		errs = append(errs, driver.FieldErrorf("timeout", "must be positive, got %s", o.Timeout))
	}
	return errors.Join(errs...)
}

func (o *OpenOCD) Open(ctx context.Context) error  { return nil }
func (o *OpenOCD) Reset(ctx context.Context) error { return nil }
func (o *OpenOCD) Close() error                    { return nil }

func (o *OpenOCD) tool() tool {
	return tool{name: "openocd", path: o.OpenOCDPath, dir: o.dir, timeout: o.Timeout}
}

// Unavailable says the tool is missing, or "".
func (o *OpenOCD) Unavailable() string {
	if _, err := exec.LookPath(o.tool().bin()); err != nil {
		return fmt.Sprintf("%s not found: install openocd or set openocd:", o.OpenOCDPath)
	}
	return ""
}

// argv is openocd's command line: the scripts, the speed, the extra args, then each command as
// -c.
func (o *OpenOCD) argv(cmds ...string) []string {
	var a []string
	for _, f := range append([]string{o.Interface, o.Target}, o.Config...) {
		if f != "" {
			a = append(a, "-f", f)
		}
	}
	if o.AdapterSpeed > 0 {
		a = append(a, "-c", "adapter speed "+strconv.Itoa(o.AdapterSpeed))
	}
	a = append(a, o.Args...)
	for _, c := range cmds {
		a = append(a, "-c", c)
	}
	return a
}

// run runs openocd with the commands and returns its output; a failure is UNAVAILABLE with
// the tail of its output.
func (o *OpenOCD) run(ctx context.Context, what string, cmds ...string) (string, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.tool().run(ctx, what, o.argv(cmds...))
}

// Methods returns the jsn.probe.v1 method table.
func (o *OpenOCD) Methods() []driver.Method {
	call := func(name, doc string, cmds ...string) driver.Method {
		return driver.Method{Name: name, Doc: doc, Kind: driver.KindCall, Returns: driver.TypeString,
			Call: func(ctx context.Context, _ driver.Args) (any, error) { return o.run(ctx, name, cmds...) }}
	}
	return []driver.Method{
		call("info", "what the probe sees of the target (openocd: init; targets; flash banks)", "init", "targets", "flash banks", "shutdown"),
		call("reset", "reset the target and let it run (openocd: reset run)", "init", "reset run", "shutdown"),
		call("erase", "erase the target's first flash bank, a slow operation (openocd: flash erase_sector 0 0 last)",
			"init", "reset halt", "flash erase_sector 0 0 last", "shutdown"),
		{Name: "read", Doc: "read 32-bit words of target memory (openocd: halt; mdw ADDRESS WORDS; resume)", Kind: driver.KindCall,
			Args:    []driver.Arg{{Name: "address", Type: driver.TypeInt}, {Name: "words", Type: driver.TypeInt}},
			Returns: driver.TypeString,
			Call: func(ctx context.Context, a driver.Args) (any, error) {
				addr, words := a.Int(0), a.Int(1)
				if addr < 0 || words < 1 || words > 1<<16 {
					return nil, wire.Errorf(wire.InvalidArgument, "read: want address >= 0 and 1..65536 words, got %d, %d", addr, words)
				}
				return o.run(ctx, "read", "init", "halt", fmt.Sprintf("mdw 0x%x %d", addr, words), "resume", "shutdown")
			}},
		{Name: "download", Kind: driver.KindByteStream,
			Doc:  fmt.Sprintf("program the firmware sent on the stream (elf, hex, or bin at flash_address; at most %d bytes), verify and reset; the stream answers with openocd's output", MaxFirmware),
			Args: []driver.Arg{{Name: "format", Type: driver.TypeString, Optional: true, Doc: "elf (default), hex or bin"}},
			Bytes: func(ctx context.Context, a driver.Args, s driver.Stream) error {
				return o.download(ctx, a.String(0), s)
			}},
	}
}

// download stores the firmware sent on s in a private file named for its format, runs
// openocd's program on it and writes the output back.
func (o *OpenOCD) download(ctx context.Context, format string, s driver.Stream) error {
	if format == "" {
		format = "elf"
	}
	switch format {
	case "elf", "hex":
	case "bin":
		if o.FlashAddress == "" {
			return wire.Errorf(wire.FailedPrecondition, "download: a bin image needs flash_address in the driver's config")
		}
	default:
		return wire.Errorf(wire.InvalidArgument, "download: format must be elf, hex or bin, got %q", format)
	}
	// openocd's program picks the type by the file's extension.
	file, remove, err := receiveFirmware(s, "firmware."+format)
	if err != nil {
		return err
	}
	defer remove()
	program := "program {" + file + "} verify reset exit"
	if format == "bin" {
		program += " " + o.FlashAddress
	}
	out, err := o.run(ctx, "program", program)
	if err != nil {
		return err
	}
	_, _ = io.WriteString(s, out)
	return nil
}

var (
	_ driver.Validator    = (*OpenOCD)(nil)
	_ driver.Availability = (*OpenOCD)(nil)
)
