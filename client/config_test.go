package client

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.uber.org/goleak"

	"jsn.dev/jsn/internal/yamlconf"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const creds = `-----BEGIN NATS USER JWT-----
eyJ0eXAiOiJKV1QiLCJhbGciOiJlZDI1NTE5LW5rZXkifQ.e30.x
------END NATS USER JWT------
`

func configYAML(name, role string) string {
	return "apiVersion: jsn.dev/v1alpha1\nkind: ClientConfig\nmetadata: {name: " + name + "}\n" +
		"endpoint: nats://lab.example:4222\nrole: " + role + "\ncredentials: |\n" + indent(creds) + "allow: [power.*]\n"
}

func indent(s string) string {
	var b strings.Builder
	for _, l := range strings.SplitAfter(s, "\n") {
		if l != "" {
			b.WriteString("  " + l)
		}
	}
	return b.String()
}

func TestParseConfig(t *testing.T) {
	c, err := ParseConfig("alice.yaml", []byte(configYAML("alice", "client")))
	if err != nil {
		t.Fatal(err)
	}
	if c.Name() != "alice" || c.Endpoint != "nats://lab.example:4222" || c.Role != RoleClient || c.Credentials != creds || len(c.Allow) != 1 {
		t.Errorf("got %+v", c)
	}
}

func TestParseConfigErrors(t *testing.T) {
	base := configYAML("alice", "client")
	for _, tc := range []struct{ name, data, want string }{
		{"empty", "", "a.yaml: empty client config"},
		{"not a mapping", "- 1\n", "want a mapping"},
		{"unknown field", base + "colour: red\n", `a.yaml:11:1: unknown field "colour"`},
		{"bad role", strings.Replace(base, "role: client", "role: root", 1), `a.yaml:5:7: role: role is "root"`},
		{"bad kind", strings.Replace(base, "kind: ClientConfig", "kind: ExporterConfig", 1), `a.yaml:2:7: kind: kind is "ExporterConfig"`},
		{"bad name", configYAML("a.b", "client"), `a.yaml:3:18: metadata.name: invalid client name "a.b"`},
		{"bad endpoint", strings.Replace(base, "nats://lab.example:4222", "lab.example", 1), `a.yaml:4:11: endpoint: endpoint "lab.example"`},
		{"missing endpoint", strings.Replace(base, "endpoint: nats://lab.example:4222\n", "", 1), `endpoint`},
		{"not creds", strings.Replace(base, "BEGIN NATS USER JWT", "HELLO", 1), `credentials: want the content of a NATS .creds file`},
		{"two docs", base + "---\na: 1\n", "multiple YAML documents"},
		{"bad yaml", "a: [", "invalid YAML"},
	} {
		_, err := ParseConfig("a.yaml", []byte(tc.data))
		var ce yamlconf.Errors
		if !errors.As(err, &ce) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: got %v, want ConfigErrors containing %q", tc.name, err, tc.want)
		}
	}
}

func TestImportUseListLoad(t *testing.T) {
	home := t.TempDir()
	t.Setenv("XDG_CONFIG_HOME", home)
	t.Setenv(EnvClientConfig, "")
	t.Setenv(EnvEndpoint, "")
	if _, err := LoadConfig(""); !errors.Is(err, ErrNoClientConfig) {
		t.Fatalf("got %v, want ErrNoClientConfig", err)
	}
	if _, _, err := ImportConfig("alice.yaml", []byte(configYAML("alice", "client")), false); err != nil {
		t.Fatal(err)
	}
	_, bobPath, err := ImportConfig("bob.yaml", []byte(configYAML("bob", "admin")), false)
	if err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(bobPath)
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Errorf("got %v %v, want mode 0600", st.Mode(), err)
	}
	if st, err := os.Stat(filepath.Join(home, "jsn", "clients")); err != nil || st.Mode().Perm() != 0o700 {
		t.Errorf("clients dir: got %v %v, want 0700", st.Mode(), err)
	}
	c, err := LoadConfig("")
	if err != nil || c.Name() != "alice" {
		t.Fatalf("got %v %v, want alice (the first import becomes current)", c, err)
	}
	if err := UseConfig("bob"); err != nil {
		t.Fatal(err)
	}
	if c, err := LoadConfig(""); err != nil || c.Name() != "bob" || c.Role != RoleAdmin {
		t.Errorf("got %v %v, want bob", c, err)
	}
	if err := UseConfig("carol"); !errors.Is(err, ErrNotFound) {
		t.Errorf("use carol: got %v, want ErrNotFound", err)
	}
	list, err := ListConfigs()
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range list {
		s := e.Name + "@" + e.Endpoint
		if e.Current {
			s += "*"
		}
		got = append(got, s)
	}
	if want := "alice@nats://lab.example:4222,bob@nats://lab.example:4222*"; strings.Join(got, ",") != want {
		t.Errorf("got %q, want %q", got, want)
	}
	t.Setenv(EnvClientConfig, filepath.Join(home, "jsn", "clients", "alice.yaml"))
	t.Setenv(EnvEndpoint, "nats://other:4222")
	if c, err := LoadConfig(""); err != nil || c.Name() != "alice" || c.Endpoint != "nats://other:4222" {
		t.Errorf("with env: got %+v %v, want alice at nats://other:4222", c, err)
	}
}

func FuzzParseConfig(f *testing.F) {
	f.Add([]byte(configYAML("alice", "client")))
	f.Add([]byte(configYAML("bob", "admin") + "x: &a [*a]\n"))
	f.Add([]byte("a: [\n"))
	f.Add([]byte("metadata: {name: [1]}\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := ParseConfig("f.yaml", data)
		if (c == nil) == (err == nil) {
			t.Fatalf("got %v and %v", c, err)
		}
		if c != nil && (c.Metadata.Name == "" || c.Endpoint == "" || c.Credentials == "") {
			t.Fatalf("accepted an incomplete config: %+v", c)
		}
	})
}
