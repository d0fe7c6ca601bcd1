package power

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"jsn.dev/jsn/bus/wire"
	"jsn.dev/jsn/drivers/driver"
)

func init() {
	driver.MustRegister(driver.Info{
		Type:      "power.Tasmota",
		Interface: Interface,
		Doc:       "Tasmota relay switched over MQTT",
		New:       NewTasmota,
		Aliases:   []string{"jumpstarter_driver_tasmota.driver.TasmotaPower"},
	})
}

// Tasmota switches a Tasmota relay over MQTT: it publishes ON or OFF on the command topic and
// waits for the relay to report that state on the stat topic. Status publishes an empty command
// (Tasmota's state query) and waits for the report.
//
// Config (Jumpstarter's jumpstarter_driver_tasmota.driver.TasmotaPower keys, plus jsn's):
//
//	host: broker.lab          # MQTT broker; required (the socket path for transport unix)
//	port: 1883
//	tls: true                 # Jumpstarter's default; set false for a plain broker
//	tls_ca: ca.pem            # CAs to trust instead of the system's (PEM; relative to the config's dir)
//	tls_cert / tls_key        # client certificate and its key (PEM), for mutual TLS
//	tls_server_name: mqtt.lab # the name to check in the broker's certificate (default host)
//	tls_insecure: false       # do not check the broker's certificate
//	transport: tcp            # tcp | websockets | unix
//	client_id: ""             # default jsn-<random>
//	username / password
//	cmnd_topic: cmnd/tasmota_ABC123/POWER   # required
//	stat_topic: stat/tasmota_ABC123/POWER   # required
//	timeout: 5s               # wait for the relay's report (Jumpstarter: none, waits forever)
//	cycle_wait: 1s
//	reset: off                # off | on | leave
//
// Open never fails because the broker is down: the driver connects in the background and
// reconnects on its own; while it is not connected, it reports itself unavailable (describe shows
// why) and calls fail UNAVAILABLE.
type Tasmota struct {
	Host      string        `yaml:"host" jsn:"required"`
	Port      int           `yaml:"port"`
	TLS       bool          `yaml:"tls"`
	Transport string        `yaml:"transport"`
	ClientID  string        `yaml:"client_id"`
	Username  string        `yaml:"username"`
	Password  string        `yaml:"password"`
	CmndTopic string        `yaml:"cmnd_topic" jsn:"required"`
	StatTopic string        `yaml:"stat_topic" jsn:"required"`
	Timeout   time.Duration `yaml:"timeout"`
	CycleWait time.Duration `yaml:"cycle_wait"`
	ResetMode string        `yaml:"reset"`

	TLSCA         string `yaml:"tls_ca"`
	TLSCert       string `yaml:"tls_cert"`
	TLSKey        string `yaml:"tls_key"`
	TLSServerName string `yaml:"tls_server_name"`
	TLSInsecure   bool   `yaml:"tls_insecure"`

	log     *slog.Logger
	dir     string      // of the config file, for the tls_* paths
	tlsConf *tls.Config // built by Validate from the tls_* keys when TLS is on

	certAsked atomic.Bool // the broker asked for a client certificate in the last connection attempt

	client mqtt.Client        // set by Open
	broker string             // broker URL, for messages
	stop   context.CancelFunc // ends loop; set by Open
	done   chan struct{}      // closed when loop has returned; set by Open

	mu         sync.Mutex
	connected  bool          // connected and subscribed to StatTopic; guarded by mu
	lastErr    string        // why the last connection attempt failed or was lost; guarded by mu
	seq        uint64        // stat messages received; guarded by mu
	last       string        // last state reported ("ON", "OFF" or the raw payload); guarded by mu
	changed    chan struct{} // closed and replaced on every stat message or connection change; guarded by mu
	switchLock sync.Mutex    // one action at a time
}

// NewTasmota is the power.Tasmota constructor: defaults only, no side effects.
func NewTasmota(env driver.Env) driver.Driver {
	return &Tasmota{
		Port:      1883,
		TLS:       true,
		Transport: "tcp",
		Timeout:   5 * time.Second,
		CycleWait: DefaultCycleWait,
		ResetMode: resetOff,
		log:       env.Log,
		dir:       env.Dir,
		changed:   make(chan struct{}),
	}
}

// Validate checks the config.
func (t *Tasmota) Validate() error {
	var errs []error
	if t.Host == "" {
		errs = append(errs, driver.FieldErrorf("host", "must not be empty"))
	}
	if t.Port < 1 || t.Port > 65535 {
		errs = append(errs, driver.FieldErrorf("port", "want 1..65535, got %d", t.Port))
	}
	switch t.Transport {
	case "tcp", "websockets", "unix":
	default:
		errs = append(errs, driver.FieldErrorf("transport", `want "tcp", "websockets" or "unix", got %q`, t.Transport))
	}
	for _, tp := range []struct{ key, topic string }{{"cmnd_topic", t.CmndTopic}, {"stat_topic", t.StatTopic}} {
		if tp.topic == "" || strings.ContainsAny(tp.topic, "+#\x00") {
			errs = append(errs, driver.FieldErrorf(tp.key, "want a topic without wildcards, got %q", tp.topic))
		}
	}
	if t.Timeout <= 0 {
		errs = append(errs, driver.FieldErrorf("timeout", "must be positive, got %s", t.Timeout))
	}
	if t.CycleWait < 0 {
		errs = append(errs, driver.FieldErrorf("cycle_wait", "must not be negative, got %s", t.CycleWait))
	}
	if err := validReset("reset", t.ResetMode); err != nil {
		errs = append(errs, err)
	}
	if err := t.validateTLS(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// brokerURL is the paho broker URL of the config.
func (t *Tasmota) brokerURL() string {
	switch t.Transport {
	case "unix":
		return "unix://" + t.Host
	case "websockets":
		scheme := "ws"
		if t.TLS {
			scheme = "wss"
		}
		return scheme + "://" + net.JoinHostPort(t.Host, strconv.Itoa(t.Port)) + "/mqtt"
	}
	scheme := "tcp"
	if t.TLS {
		scheme = "ssl"
	}
	return scheme + "://" + net.JoinHostPort(t.Host, strconv.Itoa(t.Port))
}

// Open starts connecting to the broker in the background; it does not fail when the broker is
// down.
func (t *Tasmota) Open(ctx context.Context) error {
	t.broker = t.brokerURL()
	if t.TLS && t.tlsConf == nil {
		if err := t.validateTLS(); err != nil {
			return fmt.Errorf("open: %w", err)
		}
	}
	if t.TLSInsecure {
		t.log.Warn("tls_insecure: the broker's certificate is not verified, so its identity is not checked", "broker", t.broker)
	}
	id := t.ClientID
	if id == "" {
		var b [6]byte
		_, _ = rand.Read(b[:])
		id = "jsn-" + hex.EncodeToString(b[:])
	}
	lost := make(chan struct{}, 1)
	o := mqtt.NewClientOptions().
		AddBroker(t.broker).
		SetClientID(id).
		SetCleanSession(true).
		SetOrderMatters(false).
		// The driver's own loop reconnects, so that Close can stop it and wait for it.
		SetAutoReconnect(false).
		SetConnectRetry(false).
		SetConnectTimeout(t.Timeout).
		SetWriteTimeout(t.Timeout).
		SetKeepAlive(30 * time.Second).
		SetConnectionLostHandler(func(_ mqtt.Client, err error) {
			t.setConnected(false, "connection lost: "+err.Error())
			t.log.Warn("mqtt connection lost", "broker", t.broker, "err", err)
			select {
			case lost <- struct{}{}:
			default:
			}
		})
	if t.Username != "" || t.Password != "" {
		o.SetUsername(t.Username).SetPassword(t.Password)
	}
	if t.tlsConf != nil {
		o.SetTLSConfig(t.clientTLSConfig())
	}
	t.client = mqtt.NewClient(o)
	loopCtx, cancel := context.WithCancel(context.Background())
	t.stop = cancel
	t.done = make(chan struct{})
	go t.loop(loopCtx, lost)
	// Give a reachable broker a moment, so the first call right after Open finds it connected.
	_ = t.waitConnected(ctx, min(t.Timeout, 2*time.Second))
	return nil
}

// loop connects, subscribes to the stat topic, and reconnects with a backoff whenever the
// connection is lost, until ctx ends.
func (t *Tasmota) loop(ctx context.Context, lost <-chan struct{}) {
	defer close(t.done)
	backoff := 100 * time.Millisecond
	for {
		if err := t.connect(ctx); err != nil {
			t.setConnected(false, err.Error())
			select {
			case <-ctx.Done():
				return
			case <-time.After(backoff):
			}
			backoff = min(2*backoff, 10*time.Second)
			continue
		}
		backoff = 100 * time.Millisecond
		t.setConnected(true, "")
		t.log.Debug("mqtt connected", "broker", t.broker, "topic", t.StatTopic)
		select {
		case <-ctx.Done():
			return
		case <-lost:
		}
	}
}

// connect connects and subscribes once. Paho's tokens complete within the connect and write
// timeouts, so waiting for them after ctx ends is bounded.
func (t *Tasmota) connect(ctx context.Context) error {
	t.certAsked.Store(false)
	tok := t.client.Connect()
	<-tok.Done()
	if err := tok.Error(); err != nil {
		if t.tlsConf != nil {
			if hint := t.tlsHint(err, t.certAsked.Load()); hint != "" {
				return fmt.Errorf("%w (%s)", err, hint)
			}
		}
		return err
	}
	sub := t.client.Subscribe(t.StatTopic, 1, t.onMessage)
	<-sub.Done()
	if err := sub.Error(); err != nil {
		t.client.Disconnect(0)
		return fmt.Errorf("subscribe %s: %w", t.StatTopic, err)
	}
	return nil
}

func (t *Tasmota) setConnected(ok bool, reason string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.connected = ok
	if reason != "" {
		t.lastErr = reason
	}
	close(t.changed)
	t.changed = make(chan struct{})
}

func (t *Tasmota) onMessage(_ mqtt.Client, m mqtt.Message) {
	state := parseTasmotaPayload(m.Payload())
	t.mu.Lock()
	defer t.mu.Unlock()
	t.seq++
	t.last = state
	close(t.changed)
	t.changed = make(chan struct{})
}

// parseTasmotaPayload turns a stat payload into "ON" or "OFF" when it says so: plain ON/OFF
// (stat/<topic>/POWER), 1/0, or JSON {"POWER":"ON"} (stat/<topic>/RESULT). Anything else is
// returned as it came, trimmed and cut to 100 bytes.
func parseTasmotaPayload(p []byte) string {
	s := strings.TrimSpace(string(p))
	switch strings.ToUpper(s) {
	case "ON", "1":
		return "ON"
	case "OFF", "0":
		return "OFF"
	}
	if strings.HasPrefix(s, "{") {
		var m map[string]any
		if json.Unmarshal([]byte(s), &m) == nil {
			for _, k := range []string{"POWER", "POWER1"} {
				if v, ok := m[k].(string); ok {
					return parseTasmotaPayload([]byte(v))
				}
			}
		}
	}
	if len(s) > 100 {
		s = s[:100]
	}
	return s
}

// Unavailable says why the driver cannot be used now, or "".
func (t *Tasmota) Unavailable() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.client == nil {
		return "not open"
	}
	if t.connected {
		return ""
	}
	why := "connecting"
	if t.lastErr != "" {
		why = t.lastErr
	}
	return fmt.Sprintf("MQTT broker %s not connected: %s", t.broker, why)
}

// waitConnected waits up to d for the connection and subscription.
func (t *Tasmota) waitConnected(ctx context.Context, d time.Duration) error {
	timer := time.NewTimer(d)
	defer timer.Stop()
	for {
		t.mu.Lock()
		ok, ch := t.connected, t.changed
		t.mu.Unlock()
		if ok {
			return nil
		}
		select {
		case <-ch:
		case <-timer.C:
			return errors.New("not connected")
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// Reset switches off, unless reset says otherwise.
func (t *Tasmota) Reset(ctx context.Context) error { return applyReset(ctx, t, t.ResetMode) }

// Close disconnects from the broker.
func (t *Tasmota) Close() error {
	if t.client == nil {
		return nil
	}
	t.stop()
	<-t.done
	t.client.Disconnect(250)
	return nil
}

// Methods returns the jsn.power.v1 method table.
func (t *Tasmota) Methods() []driver.Method { return Methods(t, Options{CycleWait: t.CycleWait}) }

// On publishes ON and waits for the relay to report ON.
func (t *Tasmota) On(ctx context.Context) error {
	_, err := t.command(ctx, "on", "ON", "ON")
	return err
}

// Off publishes OFF and waits for the relay to report OFF.
func (t *Tasmota) Off(ctx context.Context) error {
	_, err := t.command(ctx, "off", "OFF", "OFF")
	return err
}

// Status publishes Tasmota's empty state query and waits for the report.
func (t *Tasmota) Status(ctx context.Context) (State, error) {
	s, err := t.command(ctx, "status", "", "")
	if err != nil {
		return "", err
	}
	switch s {
	case "ON":
		return On, nil
	case "OFF":
		return Off, nil
	}
	return "", wire.Errorf(wire.FailedPrecondition, "status: %s reports %q, want ON or OFF", t.StatTopic, s)
}

// Read fails UNIMPLEMENTED, as in Jumpstarter.
func (t *Tasmota) Read(ctx context.Context) (Reading, error) {
	return Reading{}, wire.Errorf(wire.Unimplemented, "read: the Tasmota MQTT driver does not measure; use power.HTTP with preset tasmota for its energy sensor")
}

// command publishes payload on the command topic and waits for a report on the stat topic
// (equal to want unless want is ""), newer than the publication.
func (t *Tasmota) command(ctx context.Context, action, payload, want string) (string, error) {
	t.switchLock.Lock()
	defer t.switchLock.Unlock()
	if why := t.Unavailable(); why != "" {
		return "", wire.Errorf(wire.Unavailable, "%s: %s", action, why)
	}
	ctx, cancel := context.WithTimeout(ctx, t.Timeout)
	defer cancel()
	t.mu.Lock()
	after := t.seq
	t.mu.Unlock()
	tok := t.client.Publish(t.CmndTopic, 1, false, payload)
	select {
	case <-tok.Done():
	case <-ctx.Done():
		return "", t.ctxErr(ctx, action, fmt.Sprintf("publish on %s", t.CmndTopic))
	}
	if err := tok.Error(); err != nil {
		return "", wire.Errorf(wire.Unavailable, "%s: publish %q on %s: %v", action, payload, t.CmndTopic, err)
	}
	for {
		t.mu.Lock()
		seq, last, ch := t.seq, t.last, t.changed
		t.mu.Unlock()
		if seq > after && (want == "" || last == want) {
			if want != "" {
				t.log.Info("power switched", "to", strings.ToLower(want))
			}
			return last, nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			what := "a report"
			if want != "" {
				what = strconv.Quote(want)
			}
			got := ""
			if seq > after {
				got = fmt.Sprintf(" (last report %q)", last)
			}
			return "", t.ctxErr(ctx, action, fmt.Sprintf("no %s on %s after publishing %q on %s%s", what, t.StatTopic, payload, t.CmndTopic, got))
		}
	}
}

func (t *Tasmota) ctxErr(ctx context.Context, action, what string) error {
	if ctx.Err() == context.DeadlineExceeded {
		return wire.Errorf(wire.DeadlineExceeded, "%s: %s within %s", action, what, t.Timeout)
	}
	return fmt.Errorf("%s: %s: %w", action, what, ctx.Err())
}

var (
	_ Device              = (*Tasmota)(nil)
	_ driver.Driver       = (*Tasmota)(nil)
	_ driver.Validator    = (*Tasmota)(nil)
	_ driver.Methoder     = (*Tasmota)(nil)
	_ driver.Availability = (*Tasmota)(nil)
)
