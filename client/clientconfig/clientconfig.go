package clientconfig

import (
	"bytes"
	"crypto/x509"
	"errors"
	"fmt"
	"path"
	"strings"

	"go.yaml.in/yaml/v3"

	"jsn.dev/jsn/bus/wire"
	"jsn.dev/jsn/internal/yamlconf"
)

// The client config file (distributed mode): who the user is on a controller.
const (
	APIVersion = "jsn.dev/v1alpha1"
	Kind       = "ClientConfig"

	RoleClient = "client"
	RoleAdmin  = "admin"
	// RoleViewer is a read-only identity: it lists and describes exporters, lists leases and
	// watches taps, through the viewer API (jsn.ctl.v.<name>.…).
	RoleViewer = "viewer"
)

// Config is a client config file: the controller's endpoint and the user's own credentials.
type Config struct {
	APIVersion string   `yaml:"apiVersion" jsn:"required"`
	Kind       string   `yaml:"kind" jsn:"required"`
	Metadata   Metadata `yaml:"metadata" jsn:"required"`
	Endpoint   string   `yaml:"endpoint" jsn:"required"`
	// CA is the PEM of the certificate authority the endpoint's TLS certificate must chain to;
	// "" means the system's roots.
	CA string `yaml:"ca,omitempty"`
	// Credentials is the content of a NATS .creds file (user JWT and nkey seed).
	Credentials string   `yaml:"credentials" jsn:"required"`
	Role        string   `yaml:"role"`            // RoleClient (default), RoleAdmin or RoleViewer
	Allow       []string `yaml:"allow,omitempty"` // informational: the controller enforces it
	// Watch is informational too: the exporters (or "*") whose taps the identity may watch
	// without a lease, which its credentials' NATS permissions enforce.
	Watch []string `yaml:"watch,omitempty"`
	// Drivers limits what this client agrees to operate (see DriverAllow).
	Drivers DriverAllow `yaml:"drivers,omitempty"`

	File string `yaml:"-"` // where it was loaded from; "" if parsed from memory
}

// DriverAllow is the `drivers:` key of a client config.
type DriverAllow struct {
	// Allow lists the driver types ("power.Mock", "process") and interfaces ("jsn.power.v1")
	// this client agrees to operate; globs ("power.*", "jsn.*") too. A call to a driver that
	// matches none fails before anything is sent. Empty allows every driver.
	Allow []string `yaml:"allow,omitempty"`
}

// Metadata names the client identity.
type Metadata struct {
	Name string `yaml:"name" jsn:"required"`
}

// Name returns the client identity's name.
func (c *Config) Name() string { return c.Metadata.Name }

// Parse strictly decodes a client config read from file (used in error positions). Every
// problem is reported, as yamlconf.Errors with file:line:col.
func Parse(file string, data []byte) (*Config, error) {
	var errs yamlconf.Errors
	root, empty, perrs := yamlconf.Document(file, data, "a client config")
	errs = append(errs, perrs...)
	switch {
	case empty:
		errs.Add(file, nil, "", "empty client config")
		return nil, errs
	case root == nil:
		return nil, errs
	case root.Kind != yaml.MappingNode:
		errs.Add(file, root, "", "want a mapping (apiVersion, kind, metadata, endpoint, credentials)")
		return nil, errs
	}
	var c Config
	var derrs yamlconf.Errors
	if err := yamlconf.Decode(file, root, "", &c); errors.As(err, &derrs) {
		errs = append(errs, derrs...)
	} else if err != nil {
		errs.Add(file, root, "", "%v", err)
	}
	if c.APIVersion != "" && c.APIVersion != APIVersion {
		errs.Add(file, yamlconf.ValueNode(root, "apiVersion"), "apiVersion", "unsupported apiVersion %q; want %q", c.APIVersion, APIVersion)
	}
	if c.Kind != "" && c.Kind != Kind {
		errs.Add(file, yamlconf.ValueNode(root, "kind"), "kind", "kind is %q; want %q", c.Kind, Kind)
	}
	if c.Metadata.Name != "" && !wire.ValidName(c.Metadata.Name) {
		errs.Add(file, yamlconf.ValueNode(yamlconf.ValueNode(root, "metadata"), "name"), "metadata.name",
			"invalid client name %q: use letters, digits, - and _", c.Metadata.Name)
	}
	switch c.Role {
	case "":
		c.Role = RoleClient
	case RoleClient, RoleAdmin, RoleViewer:
	default:
		errs.Add(file, yamlconf.ValueNode(root, "role"), "role", "role is %q; want %q, %q or %q", c.Role, RoleClient, RoleAdmin, RoleViewer)
	}
	if c.Endpoint != "" && !ValidEndpoint(c.Endpoint) {
		errs.Add(file, yamlconf.ValueNode(root, "endpoint"), "endpoint", "endpoint %q: want nats://host:port (comma-separated for several)", c.Endpoint)
	}
	if c.CA != "" && !validCA(c.CA) {
		errs.Add(file, yamlconf.ValueNode(root, "ca"), "ca", "want a PEM certificate (-----BEGIN CERTIFICATE-----)")
	}
	if c.Credentials != "" && !strings.Contains(c.Credentials, "BEGIN NATS USER JWT") {
		errs.Add(file, yamlconf.ValueNode(root, "credentials"), "credentials", "want the content of a NATS .creds file (a user JWT and an nkey seed)")
	}
	for _, e := range c.Drivers.Allow {
		if _, err := path.Match(e, ""); err != nil || e == "" {
			errs.Add(file, yamlconf.ValueNode(yamlconf.ValueNode(root, "drivers"), "allow"), "drivers.allow",
				"invalid entry %q: want a driver type, an interface or a glob", e)
		}
	}
	if len(errs) > 0 {
		errs.Sort()
		return nil, errs
	}
	c.File = file
	return &c, nil
}

// validCA reports whether s holds at least one PEM certificate.
func validCA(s string) bool {
	return x509.NewCertPool().AppendCertsFromPEM([]byte(s))
}

// ValidEndpoint reports whether s is a NATS URL list: nats://host:port (tls, ws, wss, unix too),
// comma-separated.
func ValidEndpoint(s string) bool {
	for _, u := range strings.Split(s, ",") {
		u = strings.TrimSpace(u)
		scheme, rest, ok := strings.Cut(u, "://")
		if !ok || rest == "" || strings.ContainsAny(rest, " \t\n") {
			return false
		}
		switch scheme {
		case "nats", "tls", "ws", "wss", "unix":
		default:
			return false
		}
	}
	return true
}

// New returns the client config of identity name: the controller's endpoint, the identity's
// credentials (a NATS .creds file), admin or client role, (informational) its allow list, and
// ca, the PEM of the CA the controller's TLS certificate chains to (nil for none).
func New(name, endpoint string, creds []byte, admin bool, allow []string, ca []byte) *Config {
	c := &Config{APIVersion: APIVersion, Kind: Kind, Endpoint: endpoint, Credentials: string(creds),
		Role: RoleClient, Allow: allow, CA: string(ca)}
	c.Metadata.Name = name
	if admin {
		c.Role = RoleAdmin
	}
	return c
}

// Marshal renders c as the YAML file Parse reads.
func (c *Config) Marshal() ([]byte, error) {
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(c); err != nil {
		return nil, fmt.Errorf("encode client config: %w", err)
	}
	return buf.Bytes(), nil
}
