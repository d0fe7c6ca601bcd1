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
