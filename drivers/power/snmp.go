package power

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gosnmp/gosnmp"

	"jsn.dev/jsn/bus/wire"
	"jsn.dev/jsn/drivers/driver"
)

func init() {
	driver.MustRegister(driver.Info{
		Type:      "power.SNMP",
		Interface: Interface,
		Doc:       "outlet of an SNMP power distribution unit (Raritan, APC, generic; SNMP v1, v2c, v3)",
		New:       NewSNMP,
		Aliases:   []string{"jumpstarter_driver_snmp.driver.SNMPServer"},
	})
}

// SNMPPreset is what one PDU family expects: the base OID of its outlet control table (the
// outlet number is appended) and the integers meaning on and off.
type SNMPPreset struct {
	OID      string
	OnValue  int
	OffValue int
}

// SNMPPresets are the PDU families power.SNMP knows. "raritan" is Jumpstarter's default
// (PDU2-MIB outletSwitchingState of PDU 1); "apc" is PowerNet-MIB sPDUOutletCtl.
var SNMPPresets = map[string]SNMPPreset{
	"raritan": {OID: "1.3.6.1.4.1.13742.6.4.1.2.1.2.1", OnValue: 1, OffValue: 0},
	"apc":     {OID: "1.3.6.1.4.1.318.1.1.4.4.2.1.3", OnValue: 1, OffValue: 2},
}

// SNMP is one outlet of an SNMP power distribution unit: on and off are an SNMP SET of an
// integer on the outlet's OID (base OID + "." + plug), status a GET of the same (or status_oid).
//
// Config (Jumpstarter's SNMPServer keys, plus version, community, preset and the values):
//
//	host: pdu.lab          # required
//	port: 161
//	plug: 3                # required: the outlet number appended to oid
//	preset: raritan        # raritan (default) | apc | generic (then oid, on_value, off_value)
//	oid: 1.3.6.1.4.1.13742.6.4.1.2.1.2.1  # base OID; default from the preset
//	on_value: 1            # default from the preset
//	off_value: 0
//	status_oid: ""         # base OID read by status (default: oid); plug is appended
//	version: "3"           # 1 | 2c | 3; default 3 with user, else 2c
//	community: private     # v1/v2c
//	user: labuser          # v3
//	auth_protocol: NONE    # NONE | MD5 | SHA | SHA224 | SHA256 | SHA384 | SHA512
//	auth_key: ""
//	priv_protocol: NONE    # NONE | DES | AES | AES192 | AES256 | AES192C | AES256C
//	priv_key: ""
//	timeout: 5s            # per request (a number is seconds, as in Jumpstarter)
//	retries: 1
//	probe_interval: 10s    # how often an unreachable PDU is asked again (describe shows why)
//	cycle_wait: 1s
//	reset: off             # off | on | leave
type SNMP struct {
	Host          string        `yaml:"host" jsn:"required"`
	Port          int           `yaml:"port"`
	Plug          *int          `yaml:"plug" jsn:"required"`
	Preset        string        `yaml:"preset"`
	OID           string        `yaml:"oid"`
	OnValue       *int          `yaml:"on_value"`
	OffValue      *int          `yaml:"off_value"`
	StatusOID     string        `yaml:"status_oid"`
	Version       string        `yaml:"version"`
	Community     string        `yaml:"community"`
	User          string        `yaml:"user"`
	AuthProtocol  string        `yaml:"auth_protocol"`
	AuthKey       string        `yaml:"auth_key"`
	PrivProtocol  string        `yaml:"priv_protocol"`
	PrivKey       string        `yaml:"priv_key"`
	Timeout       time.Duration `yaml:"timeout"`
	Retries       int           `yaml:"retries"`
	ProbeInterval time.Duration `yaml:"probe_interval"`
	CycleWait     time.Duration `yaml:"cycle_wait"`
	ResetMode     string        `yaml:"reset"`

	log *slog.Logger

	plan *snmpPlan // set by Validate

	mu      sync.Mutex // serialises requests (one outstanding request per outlet)
	stateMu sync.Mutex
	down    string // why the PDU is unreachable, "" when it answered last; guarded by stateMu
	seen    bool   // a request got an answer or failed since Open; guarded by stateMu

	stop chan struct{}  // closed by Close; ends the prober
	wg   sync.WaitGroup // the prober
	once sync.Once
}

// snmpPlan is what a valid config means.
type snmpPlan struct {
	version     gosnmp.SnmpVersion
	control     string // full OID of the outlet, leading dot
	status      string
	on, off     int
	auth        gosnmp.SnmpV3AuthProtocol
	priv        gosnmp.SnmpV3PrivProtocol
	securityLvl gosnmp.SnmpV3MsgFlags
}

// NewSNMP is the power.SNMP constructor: defaults only, no side effects.
func NewSNMP(env driver.Env) driver.Driver {
	return &SNMP{Port: 161, Community: "private", Timeout: 5 * time.Second, Retries: 1,
		ProbeInterval: 10 * time.Second, CycleWait: DefaultCycleWait, ResetMode: resetOff, log: env.Log,
		stop: make(chan struct{})}
}

var snmpAuth = map[string]gosnmp.SnmpV3AuthProtocol{
	"NONE": gosnmp.NoAuth, "MD5": gosnmp.MD5, "SHA": gosnmp.SHA, "SHA224": gosnmp.SHA224,
	"SHA256": gosnmp.SHA256, "SHA384": gosnmp.SHA384, "SHA512": gosnmp.SHA512,
}

var snmpPriv = map[string]gosnmp.SnmpV3PrivProtocol{
	"NONE": gosnmp.NoPriv, "DES": gosnmp.DES, "AES": gosnmp.AES, "AES192": gosnmp.AES192,
	"AES256": gosnmp.AES256, "AES192C": gosnmp.AES192C, "AES256C": gosnmp.AES256C,
}

func snmpKeys[V any](m map[string]V) string {
	return strings.Join(slices.Sorted(maps.Keys(m)), ", ")
}

// parseOID checks a dotted numeric OID and returns it with a leading dot.
func parseOID(s string) (string, error) {
	t := strings.TrimPrefix(strings.TrimSpace(s), ".")
	if t == "" {
		return "", errors.New("empty OID")
	}
	parts := strings.Split(t, ".")
	if len(parts) < 2 || len(parts) > 128 {
		return "", fmt.Errorf("OID %q: want 2..128 dotted numbers", s)
	}
	for _, p := range parts {
		if _, err := strconv.ParseUint(p, 10, 32); err != nil {
			return "", fmt.Errorf("OID %q: %q is not a number (write OIDs numerically, 1.3.6.1…)", s, p)
		}
	}
	return "." + t, nil
}

// Validate checks the config and works out the plan.
func (s *SNMP) Validate() error {
	var errs []error
	add := func(field, format string, a ...any) { errs = append(errs, driver.FieldErrorf(field, format, a...)) }
	p := &snmpPlan{}
	if strings.TrimSpace(s.Host) == "" {
		add("host", "must not be empty")
	}
	if s.Port < 1 || s.Port > 65535 {
		add("port", "%d is out of range (1..65535)", s.Port)
	}
	if s.Plug != nil && (*s.Plug < 0 || *s.Plug > 1<<31-1) {
		add("plug", "%d is out of range (0..2147483647)", *s.Plug)
	}
	preset := strings.ToLower(s.Preset)
	var pre SNMPPreset
	switch preset {
	case "", "raritan", "apc":
		if preset == "" {
			preset = "raritan"
		}
		pre = SNMPPresets[preset]
	case "generic":
		if s.OID == "" {
			add("oid", "required with preset generic")
		}
		if s.OnValue == nil {
			add("on_value", "required with preset generic")
		}
		if s.OffValue == nil {
			add("off_value", "required with preset generic")
		}
	default:
		add("preset", "want raritan, apc or generic, got %q", s.Preset)
	}
	base := pre.OID
	if s.OID != "" {
		base = s.OID
	}
	p.on, p.off = pre.OnValue, pre.OffValue
	if s.OnValue != nil {
		p.on = *s.OnValue
	}
	if s.OffValue != nil {
		p.off = *s.OffValue
	}
	if s.OnValue != nil && s.OffValue != nil && p.on == p.off {
		add("off_value", "must differ from on_value (both %d)", p.on)
	}
	if base != "" && s.Plug != nil {
		o, err := parseOID(base)
		if err != nil {
			add("oid", "%v", err)
		} else {
			p.control = fmt.Sprintf("%s.%d", o, *s.Plug)
		}
		p.status = p.control
		if s.StatusOID != "" {
			o, err := parseOID(s.StatusOID)
			if err != nil {
				add("status_oid", "%v", err)
			} else {
				p.status = fmt.Sprintf("%s.%d", o, *s.Plug)
			}
		}
	}
	version := s.Version
	if version == "" {
		version = "2c"
		if s.User != "" {
			version = "3"
		}
	}
	switch strings.ToLower(version) {
	case "1", "v1":
		p.version = gosnmp.Version1
	case "2c", "v2c", "2":
		p.version = gosnmp.Version2c
	case "3", "v3":
		p.version = gosnmp.Version3
	default:
		add("version", `want "1", "2c" or "3", got %q`, s.Version)
	}
	ap, ok := snmpAuth[strings.ToUpper(orNone(s.AuthProtocol))]
	if !ok {
		add("auth_protocol", "want one of %s, got %q", snmpKeys(snmpAuth), s.AuthProtocol)
	}
	pp, ok2 := snmpPriv[strings.ToUpper(orNone(s.PrivProtocol))]
	if !ok2 {
		add("priv_protocol", "want one of %s, got %q", snmpKeys(snmpPriv), s.PrivProtocol)
	}
	p.auth, p.priv = ap, pp
	if p.version == gosnmp.Version3 && ok && ok2 {
		if s.User == "" {
			add("user", "required with SNMP version 3")
		}
		p.securityLvl = gosnmp.NoAuthNoPriv
		if ap != gosnmp.NoAuth {
			p.securityLvl = gosnmp.AuthNoPriv
			if len(s.AuthKey) < 8 {
				add("auth_key", "required with auth_protocol %s: at least 8 characters", s.AuthProtocol)
			}
		} else if s.AuthKey != "" {
			add("auth_key", "set, but auth_protocol is NONE")
		}
		if pp != gosnmp.NoPriv {
			p.securityLvl = gosnmp.AuthPriv
			if ap == gosnmp.NoAuth {
				add("priv_protocol", "needs an auth_protocol (SNMP has no privacy without authentication)")
			}
			if len(s.PrivKey) < 8 {
				add("priv_key", "required with priv_protocol %s: at least 8 characters", s.PrivProtocol)
			}
		} else if s.PrivKey != "" {
			add("priv_key", "set, but priv_protocol is NONE")
		}
	}
	if p.version != gosnmp.Version3 && s.Community == "" {
		add("community", "must not be empty with SNMP version %s", version)
	}
	if s.Timeout <= 0 {
		add("timeout", "must be more than 0, got %s", s.Timeout)
	}
	if s.Retries < 0 || s.Retries > 10 {
		add("retries", "%d is out of range (0..10)", s.Retries)
	}
	if s.ProbeInterval <= 0 {
		add("probe_interval", "must be more than 0, got %s", s.ProbeInterval)
	}
	if s.CycleWait < 0 {
		add("cycle_wait", "must not be negative, got %s", s.CycleWait)
	}
	if err := validReset("reset", s.ResetMode); err != nil {
		errs = append(errs, err)
	}
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	s.plan = p
	return nil
}

func orNone(s string) string {
	if s == "" {
		return "NONE"
	}
	return s
}

// Open starts the prober: the PDU is asked once now, in the background, and again every
// probe_interval while it does not answer, so describe shows why it is unavailable.
func (s *SNMP) Open(ctx context.Context) error {
	if s.plan == nil {
		if err := s.Validate(); err != nil {
			return err
		}
	}
	s.wg.Add(1)
	go s.probe()
	return nil
}

func (s *SNMP) probe() {
	defer s.wg.Done()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		select {
		case <-s.stop:
			cancel()
		case <-ctx.Done():
		}
	}()
	for {
		if s.Unavailable() != "" || !s.answered() {
			_, _ = s.get(ctx)
		}
		t := time.NewTimer(s.ProbeInterval)
		select {
		case <-s.stop:
			t.Stop()
			return
		case <-t.C:
		}
	}
}

// answered reports whether a request got an answer since Open (a fresh driver has none yet).
func (s *SNMP) answered() bool {
	s.stateMu.Lock()
	defer s.stateMu.Unlock()
	return s.down == "" && s.seen
}

// Unavailable is the reason the PDU cannot be reached, "" when its last request was answered.
func (s *SNMP) Unavailable() string {
	s.stateMu.Lock()
	defer s.stateMu.Unlock()
	return s.down
}

func (s *SNMP) setDown(reason string) {
	s.stateMu.Lock()
	defer s.stateMu.Unlock()
	s.seen = true
	if reason != s.down {
		if reason != "" {
			s.log.Warn("PDU unreachable", "reason", reason)
		} else if s.down != "" {
			s.log.Info("PDU reachable again")
		}
	}
	s.down = reason
}

// Reset brings the outlet to the reset state.
func (s *SNMP) Reset(ctx context.Context) error { return applyReset(ctx, s, s.ResetMode) }

// Close stops the prober.
func (s *SNMP) Close() error {
	s.once.Do(func() { close(s.stop) })
	s.wg.Wait()
	return nil
}

// On switches the outlet on.
func (s *SNMP) On(ctx context.Context) error { return s.set(ctx, "on", s.plan.on) }

// Off switches the outlet off.
func (s *SNMP) Off(ctx context.Context) error { return s.set(ctx, "off", s.plan.off) }

// Status reads the outlet's state.
func (s *SNMP) Status(ctx context.Context) (State, error) {
	v, err := s.get(ctx)
	if err != nil {
		return "", fmt.Errorf("status: %w", err)
	}
	switch v {
	case s.plan.on:
		return On, nil
	case s.plan.off:
		return Off, nil
	}
	return "", wire.Errorf(wire.FailedPrecondition, "status: %s is %d: neither on (%d) nor off (%d); set on_value/off_value or status_oid",
		s.plan.status, v, s.plan.on, s.plan.off)
}

// Read fails: PDUs' per-outlet meters differ too much for one OID.
func (s *SNMP) Read(ctx context.Context) (Reading, error) {
	return Reading{}, wire.Errorf(wire.Unimplemented, "read: power.SNMP cannot measure")
}

// Methods serves jsn.power.v1.
func (s *SNMP) Methods() []driver.Method { return Methods(s, Options{CycleWait: s.CycleWait}) }

func (s *SNMP) client(ctx context.Context) *gosnmp.GoSNMP {
	g := &gosnmp.GoSNMP{
		Target: s.Host, Port: uint16(s.Port), Version: s.plan.version, Community: s.Community,
		Timeout: s.Timeout, Retries: s.Retries, Context: ctx, MaxOids: gosnmp.MaxOids,
	}
	if s.plan.version == gosnmp.Version3 {
		g.SecurityModel = gosnmp.UserSecurityModel
		g.MsgFlags = s.plan.securityLvl
		g.SecurityParameters = &gosnmp.UsmSecurityParameters{
			UserName: s.User, AuthenticationProtocol: s.plan.auth, AuthenticationPassphrase: s.AuthKey,
			PrivacyProtocol: s.plan.priv, PrivacyPassphrase: s.PrivKey,
		}
	}
	return g
}

func (s *SNMP) target() string { return net.JoinHostPort(s.Host, strconv.Itoa(s.Port)) }

// do runs one request against the PDU and maps what went wrong to a wire code.
func (s *SNMP) do(ctx context.Context, action string, req func(g *gosnmp.GoSNMP) (*gosnmp.SnmpPacket, error)) (*gosnmp.SnmpPacket, error) {
	if s.plan == nil {
		return nil, wire.Errorf(wire.Unavailable, "%s: driver not configured", action)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	g := s.client(ctx)
	if err := g.ConnectIPv4(); err != nil {
		if err2 := g.Connect(); err2 != nil {
			reason := fmt.Sprintf("SNMP agent %s: %v", s.target(), err2)
			s.setDown(reason)
			return nil, wire.Errorf(wire.Unavailable, "%s: %s", action, reason)
		}
	}
	defer g.Conn.Close()
	pkt, err := req(g)
	if err != nil {
		if ctx.Err() != nil {
			return nil, fmt.Errorf("%s: %w", action, ctx.Err())
		}
		reason := fmt.Sprintf("SNMP agent %s: %s", s.target(), snmpErrText(err, s.Timeout, s.Retries))
		s.setDown(reason)
		return nil, wire.Errorf(wire.Unavailable, "%s: %s", action, reason)
	}
	s.setDown("")
	if pkt.Error != gosnmp.NoError {
		return nil, wire.Errorf(wire.FailedPrecondition, "%s: SNMP agent %s refused: %s (version %s%s)", action, s.target(),
			pkt.Error, s.plan.version, s.credentialsHint(pkt.Error))
	}
	return pkt, nil
}

func (s *SNMP) credentialsHint(e gosnmp.SNMPError) string {
	switch e {
	case gosnmp.NoAccess, gosnmp.AuthorizationError, gosnmp.NotWritable, gosnmp.ReadOnly, gosnmp.NoSuchName:
		if s.plan.version == gosnmp.Version3 {
			return ": does user " + strconv.Quote(s.User) + " have write access to the outlet OID?"
		}
		return ": is the community writable, and is the OID right?"
	}
	return ""
}

func snmpErrText(err error, timeout time.Duration, retries int) string {
	msg := err.Error()
	if strings.Contains(msg, "timeout") || strings.Contains(msg, "i/o timeout") {
		return fmt.Sprintf("no answer (%d tries of %s): wrong host, port, community or v3 credentials?", retries+1, timeout)
	}
	return msg
}

func (s *SNMP) set(ctx context.Context, action string, v int) error {
	_, err := s.do(ctx, action, func(g *gosnmp.GoSNMP) (*gosnmp.SnmpPacket, error) {
		return g.Set([]gosnmp.SnmpPDU{{Name: s.plan.control, Type: gosnmp.Integer, Value: v}})
	})
	if err != nil {
		return err
	}
	s.log.Debug("outlet set", "action", action, "oid", s.plan.control, "value", v)
	return nil
}

// get reads the status OID as an integer.
func (s *SNMP) get(ctx context.Context) (int, error) {
	pkt, err := s.do(ctx, "get", func(g *gosnmp.GoSNMP) (*gosnmp.SnmpPacket, error) {
		return g.Get([]string{s.plan.status})
	})
	if err != nil {
		return 0, err
	}
	if len(pkt.Variables) != 1 {
		return 0, wire.Errorf(wire.FailedPrecondition, "get %s: want one value, got %d", s.plan.status, len(pkt.Variables))
	}
	return snmpInt(pkt.Variables[0])
}

// snmpInt is the integer value of a variable, or an error naming what came instead.
func snmpInt(v gosnmp.SnmpPDU) (int, error) {
	switch v.Type {
	case gosnmp.NoSuchObject, gosnmp.NoSuchInstance, gosnmp.EndOfMibView, gosnmp.Null:
		return 0, wire.Errorf(wire.FailedPrecondition, "get %s: the agent has no such object (%s): check oid and plug", v.Name, v.Type)
	case gosnmp.Integer, gosnmp.Counter32, gosnmp.Gauge32, gosnmp.TimeTicks, gosnmp.Counter64, gosnmp.Uinteger32:
		n := gosnmp.ToBigInt(v.Value)
		if !n.IsInt64() || n.Int64() > 1<<31-1 || n.Int64() < -1<<31 {
			return 0, wire.Errorf(wire.FailedPrecondition, "get %s: %s out of range", v.Name, n)
		}
		return int(n.Int64()), nil
	}
	return 0, wire.Errorf(wire.FailedPrecondition, "get %s: want an integer, got %s", v.Name, v.Type)
}

var (
	_ Device              = (*SNMP)(nil)
	_ driver.Validator    = (*SNMP)(nil)
	_ driver.Methoder     = (*SNMP)(nil)
	_ driver.Availability = (*SNMP)(nil)
)
