package storage

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"time"

	"jsn.dev/jsn/bus/wire"
	"jsn.dev/jsn/drivers/driver"
)

func init() {
	driver.MustRegister(driver.Info{
		Type:      "storage.SDWire",
		Interface: MuxInterface,
		Doc:       "SDWire SD-card mux switched with sd-mux-ctrl",
		New:       NewSDWire,
		Aliases:   []string{"jumpstarter_driver_sdwire.driver.SDWire"},
	})
}

// SDWire is the storage.SDWire driver: an SDWire (or another sd-mux-ctrl compatible mux) that
// switches an SD card between the exporter, where it shows up as storage_device, and the DUT.
// Switching runs `sd-mux-ctrl --device-serial=SERIAL --ts|--dut|--status`.
//
// Config (Jumpstarter's SDWire keys, plus sd_mux_ctrl, cache_dir and cache_max):
//
//	serial: sdw-00001             # --device-serial; empty: sd-mux-ctrl's first device
//	storage_device: /dev/sdb      # required: the card's block device on the exporter
//	storage_timeout: 10           # seconds to wait for storage_device after switching to host
//	storage_leeway: 6             # accepted for compatibility; jsn waits for the device node instead
//	storage_fsync_timeout: 900    # accepted for compatibility; jsn fsyncs without a timeout
//	sd_mux_ctrl: sd-mux-ctrl      # the tool, a name in PATH or a path
//	cache_dir: ...                # image cache (default DefaultCacheDir())
//	cache_max: 10GiB              # most bytes the cache keeps, least recently used evicted; 0 = unlimited
//	url_allow: [...]              # where write_url may download from (see storage.File)
//
// The SDWire cannot disconnect the card from both sides: off switches it to the host, as
// Jumpstarter's does, and so does Reset.
type SDWire struct {
	Serial              string   `yaml:"serial"`
	StorageDevice       string   `yaml:"storage_device" jsn:"required"`
	StorageTimeout      int      `yaml:"storage_timeout"`
	StorageLeeway       int      `yaml:"storage_leeway"`
	StorageFsyncTimeout int      `yaml:"storage_fsync_timeout"`
	SDMuxCtrl           string   `yaml:"sd_mux_ctrl"`
	CacheDir            string   `yaml:"cache_dir"`
	CacheMax            string   `yaml:"cache_max"`
	URLAllow            []string `yaml:"url_allow"`

	dir string
	st  store
}

// NewSDWire is the storage.SDWire constructor: defaults only, no side effects.
func NewSDWire(env driver.Env) driver.Driver {
	w := &SDWire{StorageTimeout: 10, StorageLeeway: 6, StorageFsyncTimeout: 900,
		SDMuxCtrl: "sd-mux-ctrl", dir: env.Dir, st: store{log: env.Log}}
	w.st.gate = w.gate
	return w
}

// Validate checks the config.
func (w *SDWire) Validate() error {
	// configure's error for an empty path would name the wrong key: give it a placeholder.
	errs := []error{configure(&w.st, w.dir, cmp.Or(w.StorageDevice, "-"), w.CacheDir, w.CacheMax, "", w.URLAllow)}
	if w.StorageDevice == "" {
		errs = append(errs, driver.FieldErrorf("storage_device", "must not be empty"))
	}
	if w.StorageTimeout < 0 {
		errs = append(errs, driver.FieldErrorf("storage_timeout", "must not be negative, got %d", w.StorageTimeout))
	}
	if w.SDMuxCtrl == "" {
		errs = append(errs, driver.FieldErrorf("sd_mux_ctrl", "must not be empty"))
	}
	if strings.ContainsAny(w.Serial, "\x00\n") {
		errs = append(errs, driver.FieldErrorf("serial", "must be one line"))
	}
	return errors.Join(errs...)
}

// Unavailable reports a missing sd-mux-ctrl.
func (w *SDWire) Unavailable() string {
	if _, err := exec.LookPath(w.tool()); err != nil {
		return fmt.Sprintf("%s not found: %v", w.SDMuxCtrl, err)
	}
	return ""
}

func (w *SDWire) tool() string {
	if strings.ContainsRune(w.SDMuxCtrl, os.PathSeparator) {
		return absIn(w.dir, w.SDMuxCtrl)
	}
	return w.SDMuxCtrl
}

// Open trims the image cache to cache_max; the tool and the card are looked for on use.
func (w *SDWire) Open(ctx context.Context) error {
	w.st.trimCache()
	return nil
}

// Reset stops a running transfer and switches the card to the host (the SDWire's off).
func (w *SDWire) Reset(ctx context.Context) error {
	err := w.st.cancel(ctx)
	if w.Unavailable() != "" {
		return err
	}
	return errors.Join(err, w.st.exclusive("reset", func() error { return w.host(ctx) }))
}

// Close stops a running transfer.
func (w *SDWire) Close() error { return w.st.cancel(context.Background()) }

// Methods returns the jsn.storagemux.v1 method table.
func (w *SDWire) Methods() []driver.Method {
	return append(MuxMethods(w, Options{}), Methods(&w.st, Options{})...)
}

// run runs sd-mux-ctrl with the device selection and one action flag and returns its output.
func (w *SDWire) run(ctx context.Context, action string) (string, error) {
	var args []string
	if w.Serial != "" {
		args = append(args, "--device-serial="+w.Serial)
	}
	args = append(args, action)
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, w.tool(), args...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		msg := strings.TrimSpace(out.String())
		if len(msg) > 512 {
			msg = msg[:512] + "…"
		}
		code := wire.Unavailable
		if ctx.Err() != nil {
			code = wire.DeadlineExceeded
		}
		return "", wire.Errorf(code, "%s %s: %v: %s", w.SDMuxCtrl, strings.Join(args, " "), err, msg)
	}
	return out.String(), nil
}

// Host switches the card to the exporter and waits up to storage_timeout for its block device.
func (w *SDWire) Host(ctx context.Context) error {
	return w.st.exclusive("host", func() error { return w.host(ctx) })
}

// DUT switches the card to the device under test.
func (w *SDWire) DUT(ctx context.Context) error {
	return w.st.exclusive("dut", func() error { return w.dut(ctx) })
}

// Off switches the card to the host: the SDWire has no position where neither side sees it.
func (w *SDWire) Off(ctx context.Context) error {
	return w.st.exclusive("off", func() error { return w.host(ctx) })
}

func (w *SDWire) host(ctx context.Context) error {
	if _, err := w.run(ctx, "--ts"); err != nil {
		return err
	}
	w.st.log.Info("storage switched", "to", string(Host))
	deadline := time.Now().Add(time.Duration(w.StorageTimeout) * time.Second)
	for {
		if _, err := os.Stat(w.st.path); err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return wire.Errorf(wire.Unavailable, "host: %s did not appear within %ds", w.st.path, w.StorageTimeout)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("host: wait for %s: %w", w.st.path, ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func (w *SDWire) dut(ctx context.Context) error {
	if _, err := w.run(ctx, "--dut"); err != nil {
		return err
	}
	w.st.log.Info("storage switched", "to", string(DUT))
	return nil
}

// Status asks sd-mux-ctrl where the card is ("SD connected to: TS" or "...: DUT").
func (w *SDWire) Status(ctx context.Context) (Side, error) {
	out, err := w.run(ctx, "--status")
	if err != nil {
		return "", err
	}
	return parseStatus(out)
}

// parseStatus reads sd-mux-ctrl --status output: the word DUT, or TS (test server) / HOST.
func parseStatus(out string) (Side, error) {
	words := strings.FieldsFunc(strings.ToUpper(out), func(r rune) bool { return r < 'A' || r > 'Z' })
	for _, w := range words {
		switch w {
		case "DUT":
			return DUT, nil
		case "TS", "HOST":
			return Host, nil
		}
	}
	return "", wire.Errorf(wire.Internal, "status: cannot parse sd-mux-ctrl output %q", strings.TrimSpace(out))
}

// gate refuses storage access unless the card is on the host side and its device is there.
func (w *SDWire) gate(ctx context.Context) error {
	if err := muxGate(w)(ctx); err != nil {
		return err
	}
	if _, err := os.Stat(w.st.path); err != nil {
		return wire.Errorf(wire.Unavailable, "storage device %s: %v", w.st.path, err)
	}
	return nil
}

var (
	_ Mux                 = (*SDWire)(nil)
	_ driver.Driver       = (*SDWire)(nil)
	_ driver.Validator    = (*SDWire)(nil)
	_ driver.Methoder     = (*SDWire)(nil)
	_ driver.Availability = (*SDWire)(nil)
)
