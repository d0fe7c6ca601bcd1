package power

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"jsn.dev/jsn/bus/wire"
	"jsn.dev/jsn/drivers/driver"
)

func init() {
	driver.MustRegister(driver.Info{
		Type:      "power.EnerGenie",
		Interface: Interface,
		Doc:       "one socket of an EnerGenie LAN power strip (EG-PMS2-LAN)",
		New:       NewEnerGenie,
		Aliases:   []string{"jumpstarter_driver_energenie.driver.EnerGenie"},
	})
}

// EnerGenie switches one socket of an EnerGenie programmable power strip with a LAN interface
// (EG-PMS2-LAN) through its web interface: log in by posting pw=PASSWORD to /login.html, then
// post cteN=1 (on) or cteN=0 (off) to /.
//
// Config (Jumpstarter's EnerGenie keys, plus jsn's):
//
//	host: 192.168.0.50   # required: address of the strip (host or host:port)
//	password: "1"        # the web interface's password (the device's default is 1)
//	slot: 1              # socket 1..4
//	reset: off           # off | on | leave, between leases
//	timeout: 10s
//	cycle_wait: 1s
//
// The device has no status query in this protocol: status is the last state switched to.
type EnerGenie struct {
	Host      string        `yaml:"host" jsn:"required"`
	Password  string        `yaml:"password"`
	Slot      int           `yaml:"slot"`
	ResetMode string        `yaml:"reset"`
	Timeout   time.Duration `yaml:"timeout"`
	CycleWait time.Duration `yaml:"cycle_wait"`

	client  *http.Client
	mu      sync.Mutex // one exchange with the device at a time; guards assumed
	assumed State
}

// NewEnerGenie is the power.EnerGenie constructor: defaults only, no side effects.
func NewEnerGenie(env driver.Env) driver.Driver {
	return &EnerGenie{Password: "1", Slot: 1, ResetMode: resetOff, Timeout: 10 * time.Second,
		CycleWait: DefaultCycleWait, assumed: Off}
}

// Validate checks the config.
func (e *EnerGenie) Validate() error {
	var errs []error
	if e.Slot < 1 || e.Slot > 4 {
		errs = append(errs, driver.FieldErrorf("slot", "must be 1..4, got %d", e.Slot))
	}
	if h := e.Host; h == "" || strings.ContainsAny(h, "/?# \t\n") {
		errs = append(errs, driver.FieldErrorf("host", "want a host name or address (host or host:port), got %q", h))
	} else if _, port, err := net.SplitHostPort(h); err == nil {
		if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
			errs = append(errs, driver.FieldErrorf("host", "port must be 1..65535, got %q", port))
		}
	}
	if err := validReset("reset", e.ResetMode); err != nil {
		errs = append(errs, err)
	}
	if e.Timeout <= 0 {
		errs = append(errs, driver.FieldErrorf("timeout", "must be positive, got %s", e.Timeout))
	}
	if e.CycleWait < 0 {
		errs = append(errs, driver.FieldErrorf("cycle_wait", "must not be negative, got %s", e.CycleWait))
	}
	return errors.Join(errs...)
}

// Open makes the HTTP client; nothing is sent yet.
func (e *EnerGenie) Open(ctx context.Context) error {
	jar, _ := cookiejar.New(nil)
	e.client = &http.Client{Timeout: e.Timeout, Jar: jar}
	return nil
}

// Reset switches the socket to the reset state (off by default).
func (e *EnerGenie) Reset(ctx context.Context) error { return applyReset(ctx, e, e.ResetMode) }

// Close drops idle connections.
func (e *EnerGenie) Close() error {
	if e.client != nil {
		e.client.CloseIdleConnections()
	}
	return nil
}

// Methods returns the jsn.power.v1 method table.
func (e *EnerGenie) Methods() []driver.Method { return Methods(e, Options{CycleWait: e.CycleWait}) }

func (e *EnerGenie) On(ctx context.Context) error  { return e.set(ctx, "on", On) }
func (e *EnerGenie) Off(ctx context.Context) error { return e.set(ctx, "off", Off) }

// Status returns the last state switched to: the protocol has no query.
func (e *EnerGenie) Status(ctx context.Context) (State, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.assumed, nil
}

// Read is UNIMPLEMENTED: the strip does not measure.
func (e *EnerGenie) Read(ctx context.Context) (Reading, error) {
	return Reading{}, wire.Errorf(wire.Unimplemented, "read: an EnerGenie strip cannot measure voltage or current")
}

func (e *EnerGenie) set(ctx context.Context, action string, to State) error {
	if e.client == nil {
		return wire.Errorf(wire.Unavailable, "%s: driver not open", action)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	base := "http://" + e.Host
	if err := e.post(ctx, base+"/login.html", url.Values{"pw": {e.Password}}); err != nil {
		return wire.Errorf(wire.Unavailable, "%s: log in to %s: %v", action, e.Host, err)
	}
	v := "0"
	if to == On {
		v = "1"
	}
	if err := e.post(ctx, base+"/", url.Values{fmt.Sprintf("cte%d", e.Slot): {v}}); err != nil {
		return wire.Errorf(wire.Unavailable, "%s: switch socket %d of %s: %v", action, e.Slot, e.Host, err)
	}
	e.assumed = to
	return nil
}

func (e *EnerGenie) post(ctx context.Context, u string, form url.Values) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, strings.NewReader(form.Encode()))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := e.client.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s", resp.Status)
	}
	return nil
}

var (
	_ Device           = (*EnerGenie)(nil)
	_ driver.Validator = (*EnerGenie)(nil)
)
