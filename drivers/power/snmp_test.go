package power

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"jsn.dev/jsn/bus/wire"
	"jsn.dev/jsn/drivers/driver"
	"jsn.dev/jsn/drivers/drivertest"
	"jsn.dev/jsn/internal/testkit"
)

// snmpAgent is a real net-snmp snmpd on a loopback port. Its outlet tables (the Raritan and APC
// base OIDs, plugs 1..4) are served by a `pass` script that keeps one file per OID, so SETs
// change what later GETs read, as on a PDU.
type snmpAgent struct {
	port  int
	state string // directory of the pass script's files
}

const (
	snmpV3User = "jsnlab"
	snmpV3Auth = "authpass-0123"
	snmpV3Priv = "privpass-4567"
)

// snmpPass answers snmpd's pass protocol: -g OID (get), -n OID (getnext: nothing), -s OID TYPE VALUE.
const snmpPass = `#!/bin/sh
dir="$(dirname "$0")/state"
f="$dir/x$2"
case "$1" in
-g) if [ -f "$f" ]; then echo "$2"; echo integer; cat "$f"; fi ;;
-s) if [ ! -f "$f" ]; then echo not-writable; exit 0; fi
    if [ "$3" != integer ]; then echo wrong-type; exit 0; fi
    echo "$4" > "$f" ;;
esac
`

func startSNMPAgent(t *testing.T) *snmpAgent {
	t.Helper()
	snmpd, err := exec.LookPath("snmpd")
	if err != nil {
		if _, err2 := os.Stat("/usr/sbin/snmpd"); err2 != nil {
			t.Skip("snmpd not installed (Debian package snmpd)")
		}
		snmpd = "/usr/sbin/snmpd"
	}
	dir := t.TempDir()
	state := filepath.Join(dir, "state")
	if err := os.Mkdir(state, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, base := range []string{SNMPPresets["raritan"].OID, SNMPPresets["apc"].OID} {
		off := SNMPPresets["raritan"].OffValue
		if strings.HasPrefix(base, "1.3.6.1.4.1.318.") {
			off = SNMPPresets["apc"].OffValue
		}
		for plug := 1; plug <= 4; plug++ {
			name := filepath.Join(state, fmt.Sprintf("x.%s.%d", base, plug))
			if err := os.WriteFile(name, []byte(fmt.Sprintf("%d\n", off)), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	script := filepath.Join(dir, "pass.sh")
	if err := os.WriteFile(script, []byte(snmpPass), 0o755); err != nil {
		t.Fatal(err)
	}
	port := freeUDPPort(t)
	conf := fmt.Sprintf(`agentaddress udp:127.0.0.1:%d
rwcommunity private 127.0.0.1
rocommunity public 127.0.0.1
createUser %s SHA "%s" AES "%s"
rwuser %s priv
createUser jsnro SHA "%s" AES "%s"
rouser jsnro priv
pass .%s %s
pass .%s %s
`, port, snmpV3User, snmpV3Auth, snmpV3Priv, snmpV3User, snmpV3Auth, snmpV3Priv,
		SNMPPresets["raritan"].OID, script, SNMPPresets["apc"].OID, script)
	confFile := filepath.Join(dir, "snmpd.conf")
	if err := os.WriteFile(confFile, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	persist := filepath.Join(dir, "persist")
	if err := os.Mkdir(persist, 0o700); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(snmpd, "-f", "-C", "-c", confFile, "-Lf", filepath.Join(dir, "snmpd.log"),
		"-p", filepath.Join(dir, "snmpd.pid"))
	cmd.Env = append(os.Environ(), "SNMP_PERSISTENT_DIR="+persist, "MIBS=")
	if err := cmd.Start(); err != nil {
		t.Fatalf("start snmpd: %v", err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		if t.Failed() {
			b, _ := os.ReadFile(filepath.Join(dir, "snmpd.log"))
			t.Logf("snmpd.log:\n%s", b)
		}
	})
	a := &snmpAgent{port: port, state: state}
	// Ready when a v2c GET of outlet 1 answers.
	d := a.driver(t, "version: 2c, community: public, plug: 1")
	testkit.CheckFor(t, 20*time.Second, func() error {
		_, err := d.Status(context.Background())
		return err
	})
	return a
}

// freeUDPPort returns a UDP port of 127.0.0.1 that was free a moment ago.
func freeUDPPort(t *testing.T) int {
	t.Helper()
	c, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	return c.LocalAddr().(*net.UDPAddr).Port
}

// value is what the agent holds for a full OID.
func (a *snmpAgent) value(t *testing.T, base string, plug int) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(a.state, fmt.Sprintf("x.%s.%d", base, plug)))
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

// driver builds and opens a power.SNMP on the agent with the given extra config keys.
func (a *snmpAgent) driver(t *testing.T, extra string) *SNMP {
	t.Helper()
	src := fmt.Sprintf("type: power.SNMP\nconfig: {host: 127.0.0.1, port: %d, timeout: 2s, %s}", a.port, extra)
	return buildOne(t, src, "").(*SNMP)
}

func TestSNMPAgent(t *testing.T) {
	a := startSNMPAgent(t)
	raritan, apc := SNMPPresets["raritan"].OID, SNMPPresets["apc"].OID
	tests := []struct {
		name   string
		config string
		base   string
		plug   int
		on     string
		off    string
	}{
		{"v2c raritan", "version: 2c, community: private, plug: 2", raritan, 2, "1", "0"},
		{"v1 apc", "version: '1', community: private, preset: apc, plug: 3", apc, 3, "1", "2"},
		{"v3 authPriv, Jumpstarter keys", fmt.Sprintf("user: %s, plug: 4, auth_protocol: SHA, auth_key: %s, priv_protocol: AES, priv_key: %s",
			snmpV3User, snmpV3Auth, snmpV3Priv), raritan, 4, "1", "0"},
		{"v3 generic", fmt.Sprintf("version: '3', user: %s, preset: generic, oid: '.%s', on_value: 1, off_value: 2, plug: 1, auth_protocol: SHA, auth_key: %s, priv_protocol: AES, priv_key: %s",
			snmpV3User, apc, snmpV3Auth, snmpV3Priv), apc, 1, "1", "2"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := a.driver(t, tt.config)
			ctx := context.Background()
			call(t, d, "on")
			if got := a.value(t, tt.base, tt.plug); got != tt.on {
				t.Fatalf("after on: agent holds %s, want %s", got, tt.on)
			}
			if s, err := d.Status(ctx); err != nil || s != On {
				t.Fatalf("status after on: got %q, %v, want on", s, err)
			}
			call(t, d, "off")
			if got := a.value(t, tt.base, tt.plug); got != tt.off {
				t.Fatalf("after off: agent holds %s, want %s", got, tt.off)
			}
			if s, err := d.Status(ctx); err != nil || s != Off {
				t.Fatalf("status after off: got %q, %v, want off", s, err)
			}
			call(t, d, "cycle", 10*time.Millisecond)
			if got := a.value(t, tt.base, tt.plug); got != tt.on {
				t.Fatalf("after cycle: agent holds %s, want %s", got, tt.on)
			}
			if err := d.Reset(ctx); err != nil {
				t.Fatal(err)
			}
			if got := a.value(t, tt.base, tt.plug); got != tt.off {
				t.Fatalf("after reset: agent holds %s, want %s (reset: off)", got, tt.off)
			}
			if r := d.Unavailable(); r != "" {
				t.Fatalf("unavailable: %q, want available", r)
			}
		})
	}
}

func TestSNMPAgentRefuses(t *testing.T) {
	a := startSNMPAgent(t)
	ctx := context.Background()
	cases := []struct {
		name, config string
		code         wire.Code
		want         string
	}{
		{"read-only community", "community: public, plug: 1", wire.FailedPrecondition, "refused"},
		{"read-only v3 user", fmt.Sprintf("user: jsnro, plug: 1, auth_protocol: SHA, auth_key: %s, priv_protocol: AES, priv_key: %s", snmpV3Auth, snmpV3Priv),
			wire.FailedPrecondition, `does user "jsnro" have write access`},
		{"no such outlet", "plug: 9", wire.FailedPrecondition, ""},
		{"wrong v3 key", fmt.Sprintf("user: %s, plug: 1, auth_protocol: SHA, auth_key: wrong-key-1, priv_protocol: AES, priv_key: %s, retries: 0", snmpV3User, snmpV3Priv),
			wire.Unavailable, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			d := a.driver(t, tc.config)
			err := d.On(ctx)
			if got := wire.CodeOf(err); got != tc.code || !strings.Contains(fmt.Sprint(err), tc.want) {
				t.Fatalf("on: got %v (%s), want %s containing %q", err, got, tc.code, tc.want)
			}
		})
	}
}

func TestSNMPUnreachable(t *testing.T) {
	port := freeUDPPort(t) // nothing listens there
	d := buildOne(t, fmt.Sprintf("type: power.SNMP\nconfig: {host: 127.0.0.1, port: %d, plug: 1, timeout: 100ms, retries: 0, probe_interval: 50ms}", port), "").(*SNMP)
	testkit.CheckFor(t, 10*time.Second, func() error {
		if r := d.Unavailable(); !strings.Contains(r, fmt.Sprintf("SNMP agent 127.0.0.1:%d", port)) {
			return fmt.Errorf("unavailable reason %q, want one naming the agent", r)
		}
		return nil
	})
	err := d.On(context.Background())
	if wire.CodeOf(err) != wire.Unavailable {
		t.Fatalf("on: got %v, want UNAVAILABLE", err)
	}
}

func TestSNMPConfig(t *testing.T) {
	for _, tt := range []struct{ src, wantErr string }{
		{"type: jumpstarter_driver_snmp.driver.SNMPServer\nconfig: {host: pdu.mgmt.com, user: labuser, plug: 32, port: 161, oid: '1.3.6.1.4.1.13742.6.4.1.2.1.2.1', auth_protocol: NONE, auth_key: null, priv_protocol: NONE, priv_key: null, timeout: 5.0}", ""},
		{"type: power.SNMP\nconfig: {host: h, plug: 1, preset: apc, community: private}", ""},
		{"type: power.SNMP\nconfig: {plug: 1}", `missing required field "host"`},
		{"type: power.SNMP\nconfig: {host: h}", `missing required field "plug"`},
		{"type: power.SNMP\nconfig: {host: h, plug: 1, oid: 'enterprises.1'}", `oid: OID "enterprises.1": "enterprises" is not a number`},
		{"type: power.SNMP\nconfig: {host: h, plug: 1, preset: cisco}", "preset: want raritan, apc or generic"},
		{"type: power.SNMP\nconfig: {host: h, plug: 1, preset: generic}", "oid: required with preset generic"},
		{"type: power.SNMP\nconfig: {host: h, plug: 1, version: '4'}", `version: want "1", "2c" or "3"`},
		{"type: power.SNMP\nconfig: {host: h, plug: 1, version: '3'}", "user: required with SNMP version 3"},
		{"type: power.SNMP\nconfig: {host: h, plug: 1, user: u, auth_protocol: SHA}", "auth_key: required with auth_protocol SHA"},
		{"type: power.SNMP\nconfig: {host: h, plug: 1, user: u, auth_protocol: SHA1}", "auth_protocol: want one of"},
		{"type: power.SNMP\nconfig: {host: h, plug: 1, user: u, priv_protocol: AES, priv_key: 12345678}", "priv_protocol: needs an auth_protocol"},
		{"type: power.SNMP\nconfig: {host: h, plug: 1, port: 0}", "port: 0 is out of range"},
		{"type: power.SNMP\nconfig: {host: h, plug: 1, timeout: 0}", "timeout: must be more than 0"},
		{"type: power.SNMP\nconfig: {host: h, plug: 1, on_value: 1, off_value: 1}", "off_value: must differ from on_value"},
		{"type: power.SNMP\nconfig: {host: h, plug: 1, reset: maybe}", "reset:"},
	} {
		if tt.wantErr == "" {
			var doc yaml.Node
			if err := yaml.Unmarshal([]byte("p:\n  "+strings.ReplaceAll(tt.src, "\n", "\n  ")), &doc); err != nil {
				t.Fatal(err)
			}
			if _, err := driver.Build("exporter.yaml", doc.Content[0], driver.BuildOptions{}); err != nil {
				t.Fatalf("%s: %v", tt.src, err)
			}
			continue
		}
		buildOne(t, tt.src, tt.wantErr)
	}
}

func TestSNMPMethods(t *testing.T) {
	d := NewSNMP(drivertest.Env("pdu")).(*SNMP)
	var names []string
	for _, m := range d.Methods() {
		names = append(names, m.Name)
	}
	if got, want := strings.Join(names, ","), "on,off,cycle,status,read"; got != want {
		t.Fatalf("methods: got %s, want %s", got, want)
	}
}

func FuzzSNMPConfig(f *testing.F) {
	for _, s := range []string{
		"{host: h, plug: 1}", "{host: h, plug: 1, preset: apc, version: '1'}",
		"{host: h, user: u, plug: 3, auth_protocol: MD5, auth_key: 12345678, priv_protocol: DES, priv_key: 12345678}",
		"{host: h, plug: 1, preset: generic, oid: .1.2.3, on_value: 3, off_value: 4, status_oid: 1.2.4}",
		"{host: h, plug: -1, oid: '1..2'}", "{host: '', plug: 99999999999}",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, cfg string) {
		var doc yaml.Node
		if err := yaml.Unmarshal([]byte("p:\n  type: power.SNMP\n  config: "+cfg), &doc); err != nil || len(doc.Content) == 0 {
			return
		}
		tree, err := driver.Build("exporter.yaml", doc.Content[0], driver.BuildOptions{})
		if err != nil {
			if !strings.Contains(err.Error(), "exporter.yaml:") {
				t.Fatalf("error without a position: %v", err)
			}
			return
		}
		s := tree.Find("p").Driver.(*SNMP)
		if s.plan == nil || !strings.HasPrefix(s.plan.control, ".") {
			t.Fatalf("valid config without a plan: %+v", s.plan)
		}
	})
}
