package clientconfig

import (
	"slices"
	"testing"
)

const creds = `-----BEGIN NATS USER JWT-----
eyJ0eXAiOiJKV1QiLCJhbGciOiJlZDI1NTE5LW5rZXkifQ.e30.x
------END NATS USER JWT------
`

// TestMarshalParse: what the controller writes (New, Marshal) is what the client reads (Parse).
// Parse's own cases are client's TestParseConfig and FuzzParseConfig.
func TestMarshalParse(t *testing.T) {
	for _, admin := range []bool{false, true} {
		b, err := New("alice", "nats://lab.example:4222", []byte(creds), admin, []string{"power.*"}, nil).Marshal()
		if err != nil {
			t.Fatal(err)
		}
		c, err := Parse("alice.yaml", b)
		if err != nil {
			t.Fatalf("admin %v: %v\n%s", admin, err, b)
		}
		role := RoleClient
		if admin {
			role = RoleAdmin
		}
		if c.Name() != "alice" || c.Endpoint != "nats://lab.example:4222" || c.Credentials != creds ||
			c.Role != role || !slices.Equal(c.Allow, []string{"power.*"}) || c.APIVersion != APIVersion || c.Kind != Kind {
			t.Errorf("admin %v: got %+v", admin, c)
		}
	}
}

// TestDriversAllow: drivers.allow is read, and a malformed entry is an error at its position.
func TestDriversAllow(t *testing.T) {
	head := "apiVersion: " + APIVersion + "\nkind: " + Kind + "\nmetadata: {name: alice}\nendpoint: nats://lab:4222\ncredentials: |\n" +
		"  -----BEGIN NATS USER JWT-----\n  x\n  ------END NATS USER JWT------\n"
	c, err := Parse("c.yaml", []byte(head+"drivers:\n  allow: [jsn.power.v1, serial.*]\n"))
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(c.Drivers.Allow, []string{"jsn.power.v1", "serial.*"}) {
		t.Fatalf("drivers.allow = %v", c.Drivers.Allow)
	}
	_, err = Parse("c.yaml", []byte(head+"drivers:\n  allow: [\"power[\"]\n"))
	if err == nil || err.Error() != `c.yaml:10:10: drivers.allow: invalid entry "power[": want a driver type, an interface or a glob` {
		t.Fatalf("got %v", err)
	}
}
