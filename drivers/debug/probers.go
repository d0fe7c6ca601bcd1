package debug

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"jsn.dev/jsn/bus/wire"
	"jsn.dev/jsn/drivers/driver"
)

// ProbeInterface is the interface of debug-probe drivers: flash, erase, reset and read a
// microcontroller through a probe attached to the exporter.
const ProbeInterface = "jsn.probe.v1"

// MaxFirmware bounds a firmware image uploaded with download.
const MaxFirmware = 256 << 20

func init() {
	driver.MustRegister(driver.Info{
		Type:      "debug.ProbeRS",
		Interface: ProbeInterface,
		Doc:       "a debug probe driven by probe-rs on the exporter: download firmware, erase, reset, read memory",
		New:       NewProbeRS,
		Aliases:   []string{"jumpstarter_driver_probe_rs.driver.ProbeRs"},
	})
}

// ProbeRS is the debug.ProbeRS driver: it runs the probe-rs tool on the exporter against the
// probe and chip of its config. Firmware is uploaded by the lease holder through a byte stream,
// written to a private file and given to `probe-rs download`.
//
// Config (Jumpstarter's ProbeRs keys, plus jsn's):
//
//	probe: "2e8a:000c:5798DE5E500ACB60"   # VID:PID or VID:PID:SERIAL; default the only probe
//	probe_rs_path: probe-rs                # the tool
//	chip: RP2350                           # target chip
//	protocol: swd                          # swd | jtag
//	connect_under_reset: false
//	speed: 0                               # kHz; 0 = probe-rs's default
//	timeout: 5m                            # jsn: how long one probe-rs run may take
type ProbeRS struct {
	Probe             string        `yaml:"probe"`
	ProbeRSPath       string        `yaml:"probe_rs_path"`
	Chip              string        `yaml:"chip"`
	Protocol          string        `yaml:"protocol"`
	ConnectUnderReset bool          `yaml:"connect_under_reset"`
	Speed             int           `yaml:"speed"`
	Timeout           time.Duration `yaml:"timeout"`

	dir string
	mu  sync.Mutex // one probe-rs run at a time: the probe is one device
}

// NewProbeRS is the debug.ProbeRS constructor: defaults only, no side effects.
func NewProbeRS(env driver.Env) driver.Driver {
	return &ProbeRS{ProbeRSPath: "probe-rs", Timeout: 5 * time.Minute, dir: env.Dir}
}

var probeRE = regexp.MustCompile(`^[0-9a-fA-F]{4}:[0-9a-fA-F]{4}(:[^\s:]+)?$`)

// Validate checks the config.
func (p *ProbeRS) Validate() error {
	var errs []error
	if p.Probe != "" && !probeRE.MatchString(p.Probe) {
		errs = append(errs, driver.FieldErrorf("probe", "want VID:PID or VID:PID:SERIAL in hex, got %q", p.Probe))
	}
	switch strings.ToLower(p.Protocol) {
	case "", "swd", "jtag":
	default:
		errs = append(errs, driver.FieldErrorf("protocol", `want "swd" or "jtag", got %q`, p.Protocol))
	}
	if p.Speed < 0 {
		errs = append(errs, driver.FieldErrorf("speed", "must not be negative, got %d", p.Speed))
	}
	if strings.HasPrefix(p.Chip, "-") || strings.ContainsAny(p.Chip, " \t\n\x00") {
		errs = append(errs, driver.FieldErrorf("chip", "not a chip name: %q", p.Chip))
	}
	if p.ProbeRSPath == "" {
		errs = append(errs, driver.FieldErrorf("probe_rs_path", "must not be empty"))
	}
	if p.Timeout <= 0 {
		errs = append(errs, driver.FieldErrorf("timeout", "must be positive, got %s", p.Timeout))
	}
	return errors.Join(errs...)
}

func (p *ProbeRS) Open(ctx context.Context) error  { return nil }
func (p *ProbeRS) Reset(ctx context.Context) error { return nil }
func (p *ProbeRS) Close() error                    { return nil }

func (p *ProbeRS) tool() tool {
	return tool{name: "probe-rs", path: p.ProbeRSPath, dir: p.dir, timeout: p.Timeout}
}

// Unavailable says the tool is missing, or "".
func (p *ProbeRS) Unavailable() string {
	if _, err := exec.LookPath(p.tool().bin()); err != nil {
		return fmt.Sprintf("%s not found: install probe-rs or set probe_rs_path:", p.ProbeRSPath)
	}
	return ""
}

// common are the options every probe-rs subcommand takes from the config.
func (p *ProbeRS) common(chip bool) []string {
	var a []string
	if p.Probe != "" {
		a = append(a, "--probe", p.Probe)
	}
	if chip && p.Chip != "" {
		a = append(a, "--chip", p.Chip)
	}
	if p.Protocol != "" {
		a = append(a, "--protocol", strings.ToLower(p.Protocol))
	}
	if p.Speed > 0 {
		a = append(a, "--speed", strconv.Itoa(p.Speed))
	}
	if p.ConnectUnderReset {
		a = append(a, "--connect-under-reset")
	}
	return a
}

// run runs probe-rs SUB args… and returns its output; a failure is UNAVAILABLE with the tail of
// its output.
func (p *ProbeRS) run(ctx context.Context, sub string, args ...string) (string, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.tool().run(ctx, sub, append([]string{sub}, args...))
}

// Methods returns the jsn.probe.v1 method table.
func (p *ProbeRS) Methods() []driver.Method {
	call := func(name, doc, sub string, chip bool) driver.Method {
		return driver.Method{Name: name, Doc: doc, Kind: driver.KindCall, Returns: driver.TypeString,
			Call: func(ctx context.Context, _ driver.Args) (any, error) { return p.run(ctx, sub, p.common(chip)...) }}
	}
	return []driver.Method{
		call("info", "what the probe sees of the target (probe-rs info)", "info", false),
		call("reset", "reset the target (probe-rs reset)", "reset", true),
		call("erase", "erase the target's flash, a slow operation (probe-rs erase)", "erase", true),
		{Name: "read", Doc: "read 32-bit words of target memory (probe-rs read b32 ADDRESS WORDS)", Kind: driver.KindCall,
			Args:    []driver.Arg{{Name: "address", Type: driver.TypeInt}, {Name: "words", Type: driver.TypeInt}},
			Returns: driver.TypeString,
			Call: func(ctx context.Context, a driver.Args) (any, error) {
				addr, words := a.Int(0), a.Int(1)
				if addr < 0 || words < 1 || words > 1<<16 {
					return nil, wire.Errorf(wire.InvalidArgument, "read: want address >= 0 and 1..65536 words, got %d, %d", addr, words)
				}
				args := append(p.common(true), "b32", fmt.Sprintf("0x%x", addr), strconv.FormatInt(words, 10))
				return p.run(ctx, "read", args...)
			}},
		{Name: "download", Kind: driver.KindByteStream,
			Doc:  fmt.Sprintf("flash the firmware sent on the stream (ELF, or binary with format; at most %d bytes); the stream answers with probe-rs's output", MaxFirmware),
			Args: []driver.Arg{{Name: "format", Type: driver.TypeString, Optional: true, Doc: "probe-rs --binary-format: elf (default), bin, hex, uf2"}},
			Bytes: func(ctx context.Context, a driver.Args, s driver.Stream) error {
				return p.download(ctx, a.String(0), s)
			}},
	}
}

// download stores the firmware sent on s in a private file, runs probe-rs download on it and
// writes its output back.
func (p *ProbeRS) download(ctx context.Context, format string, s driver.Stream) error {
	switch format {
	case "", "elf", "bin", "hex", "uf2", "idf":
	default:
		return wire.Errorf(wire.InvalidArgument, "download: format must be elf, bin, hex, uf2 or idf, got %q", format)
	}
	file, remove, err := receiveFirmware(s, "firmware")
	if err != nil {
		return err
	}
	defer remove()
	args := p.common(true)
	if format != "" && format != "elf" {
		args = append(args, "--binary-format", format)
	}
	out, err := p.run(ctx, "download", append(args, file)...)
	if err != nil {
		return err
	}
	_, _ = io.WriteString(s, out)
	return nil
}

var (
	_ driver.Validator    = (*ProbeRS)(nil)
	_ driver.Availability = (*ProbeRS)(nil)
)
