package exporter

import (
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"

	"go.yaml.in/yaml/v3"

	"jsn.dev/jsn/drivers/driver"
	"jsn.dev/jsn/internal/yamlconf"
)

// APIVersion values accepted in an exporter config, and its kind.
const (
	APIVersion            = "jsn.dev/v1alpha1"
	JumpstarterAPIVersion = "jumpstarter.dev/v1alpha1"
	Kind                  = "ExporterConfig"
)

// Metadata names an exporter.
type Metadata struct {
	// Name is used in NATS subjects: [a-z0-9][a-z0-9-_]*. When the file has none it defaults to
	// the file's base name without extension, lower-cased, with every other character replaced
	// by "-" ("Lab Bench.yaml" → "lab-bench"), or "exporter" if nothing is left.
	Name      string
	Namespace string
	Labels    map[string]string
}

// Config is a loaded exporter config file (kind ExporterConfig).
type Config struct {
	APIVersion string     // APIVersion or JumpstarterAPIVersion
	Kind       string     // Kind
	Metadata   Metadata   // who the exporter is
	Endpoint   string     // controller address (distributed mode); optional
	Token      string     // Jumpstarter's token; kept, unused for now
	Export     *yaml.Node // the export: mapping, built into a driver tree by Build
	Hooks      *yaml.Node // the hooks: mapping, as in the file
	// Credentials is the content of the exporter identity's NATS .creds file (distributed mode).
	Credentials string
	// CA is the PEM of the CA the endpoint's TLS certificate must chain to (distributed mode);
	// "" means the system's roots.
	CA string
	// LeaseHooks are the decoded hooks: scripts run before and after each lease (remote mode).
	LeaseHooks Hooks
	// DirectStreams is where byte streams may bypass the broker (see bus.ListenDirect).
	DirectStreams DirectStreams
	// Drivers is the driver allowlist (`drivers:`); nil allows every type and program.
	Drivers *DriverPolicy
	// Motd is the message of the day (Jumpstarter's motd:), printed when a shell starts.
	Motd string
	// ExitOnLeaseEnd stops a remote exporter once its first lease has ended (Jumpstarter's
	// exitOnLeaseEnd:), for exporters that a supervisor replaces after each lease.
	ExitOnLeaseEnd bool
	File           string // path the config was loaded from (for error positions)
	Dir            string // directory of File, for relative paths in driver configs
}

// DirectStreams configures direct stream connections: "listen" is "unix:/path", "tcp:host:port"
// or "off"; "advertise" is the address clients dial when it differs from the one listened on.
// Empty Listen means the mode's default: a Unix socket in the session directory in local mode,
// off in distributed mode.
type DirectStreams struct {
	Listen    string `yaml:"listen"`
	Advertise string `yaml:"advertise"`
}

// Off reports whether direct streams are switched off explicitly.
func (d DirectStreams) Off() bool { return d.Listen == "off" }

// rawConfig is the file's shape, decoded strictly.
type rawConfig struct {
	APIVersion string      `yaml:"apiVersion" jsn:"required"`
	Kind       string      `yaml:"kind" jsn:"required"`
	Metadata   rawMetadata `yaml:"metadata"`
	Endpoint   string      `yaml:"endpoint"`
	Token      string      `yaml:"token"`
	Export     *yaml.Node  `yaml:"export"`
	Hooks      *yaml.Node  `yaml:"hooks"`
	// Credentials is the exporter identity's .creds content (jsn files only).
	Credentials    string         `yaml:"credentials"`
	CA             string         `yaml:"ca"` // PEM (jsn files only)
	DirectStreams  *DirectStreams `yaml:"directStreams"`
	Drivers        *DriverPolicy  `yaml:"drivers"` // allowlists (allow.go)
	Motd           string         `yaml:"motd"`
	ExitOnLeaseEnd bool           `yaml:"exitOnLeaseEnd"`

	// Jumpstarter keys jsn accepts in jumpstarter.dev files and ignores.
	TLS         *jumpstarterTLS `yaml:"tls"`
	GRPCOptions *yaml.Node      `yaml:"grpcOptions"`
	GRPCConfig  *yaml.Node      `yaml:"grpcConfig"`
	Description string          `yaml:"description"`
	// failureDetection tunes Jumpstarter's restart loop of a child process; jsn has none.
	FailureDetection *struct {
		MaxRapidFailures   int `yaml:"maxRapidFailures"`
		RapidFailureWindow int `yaml:"rapidFailureWindow"`
	} `yaml:"failureDetection"`
}

type rawMetadata struct {
	Name      string            `yaml:"name"`
	Namespace string            `yaml:"namespace"`
	Labels    map[string]string `yaml:"labels"`
}

type jumpstarterTLS struct {
	CA       string `yaml:"ca"`
	Insecure bool   `yaml:"insecure"`
}

// jumpstarterOnly are the top-level keys accepted only in jumpstarter.dev files.
var jumpstarterOnly = []string{"tls", "grpcOptions", "grpcConfig", "description", "failureDetection"}

var nameRE = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[a-z0-9][a-z0-9_-]*$`) })

// LoadConfig reads and parses the exporter config file at path. Config errors are
// yamlconf.Errors.
func LoadConfig(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("load config: %w", err)
	}
	return ParseConfig(path, data)
}

// ParseConfig parses the exporter config data read from file (used in error positions and to
// set File, Dir and the default name). All problems are reported together as
// yamlconf.Errors: those of the top-level keys and hooks and those of the export tree (which
// is built once to check it, without side effects, and thrown away; see Build and Load).
func ParseConfig(file string, data []byte) (*Config, error) {
	cfg, errs := parse(file, data)
	if cfg != nil {
		errs = append(errs, cfg.treeErrors()...)
	}
	if len(errs) > 0 {
		errs.Sort()
		return nil, errs
	}
	return cfg, nil
}

// treeErrors builds the export tree to find its problems and discards it (Build opens nothing).
func (c *Config) treeErrors() yamlconf.Errors {
	t, err := c.Build(nil)
	if t != nil {
		_ = t.Close() // never opened: nothing to release, but keep the life cycle honest
	}
	var errs yamlconf.Errors
	if errors.As(err, &errs) {
		return errs
	}
	if err != nil {
		return yamlconf.Errors{{File: c.File, Msg: err.Error()}}
	}
	return nil
}

// Build builds the driver tree of the config's export mapping (no side effects).
func (c *Config) Build(log *slog.Logger) (*driver.Tree, error) {
	return c.BuildWith(driver.BuildOptions{Log: log})
}

// BuildWith is Build with more options (taps); opts.Dir defaults to the config's directory.
func (c *Config) BuildWith(opts driver.BuildOptions) (*driver.Tree, error) {
	if opts.Dir == "" {
		opts.Dir = c.Dir
	}
	return driver.Build(c.File, c.Export, opts)
}

// Load loads the config file at path and builds its driver tree, reporting the problems of both
// steps together (as yamlconf.Errors) when the file could be parsed far enough.
func Load(path string, log *slog.Logger) (*Config, *driver.Tree, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, fmt.Errorf("load config: %w", err)
	}
	cfg, errs := parse(path, data)
	if cfg == nil {
		errs.Sort()
		return nil, nil, errs
	}
	tree, err := cfg.Build(log)
	var berrs yamlconf.Errors
	if errors.As(err, &berrs) {
		errs = append(errs, berrs...)
	} else if err != nil {
		return nil, nil, err
	}
	if len(errs) > 0 {
		errs.Sort()
		return nil, nil, errs
	}
	return cfg, tree, nil
}

// parse returns the config and every problem found; cfg is nil when the file could not be read
// as one YAML mapping.
func parse(file string, data []byte) (*Config, yamlconf.Errors) {
	var errs yamlconf.Errors
	root, empty, perrs := yamlconf.Document(file, data, "an exporter config")
	errs = append(errs, perrs...)
	if empty {
		errs.Add(file, nil, "", "empty config")
		return nil, errs
	}
	if root == nil {
		return nil, errs
	}
	if root.Kind != yaml.MappingNode {
		errs.Add(file, root, "", "want a mapping (apiVersion, kind, metadata, export…)")
		return nil, errs
	}

	var raw rawConfig
	var derrs yamlconf.Errors
	if err := yamlconf.Decode(file, root, "", &raw); errors.As(err, &derrs) {
		errs = append(errs, derrs...)
	}
	switch raw.APIVersion {
	case APIVersion, JumpstarterAPIVersion, "":
	default:
		errs.Add(file, yamlconf.ValueNode(root, "apiVersion"), "apiVersion", "unsupported apiVersion %q; want %q or %q", raw.APIVersion, APIVersion, JumpstarterAPIVersion)
	}
	if raw.APIVersion != JumpstarterAPIVersion {
		for _, k := range jumpstarterOnly {
			if n := key(root, k); n != nil {
				errs.Add(file, n, "", "field %q is only accepted in %s files", k, JumpstarterAPIVersion)
			}
		}
	}
	if raw.Credentials != "" && raw.APIVersion == JumpstarterAPIVersion {
		errs.Add(file, key(root, "credentials"), "", "field \"credentials\" is only accepted in %s files", APIVersion)
	}
	if raw.CA != "" && raw.APIVersion == JumpstarterAPIVersion {
		errs.Add(file, key(root, "ca"), "", "field \"ca\" is only accepted in %s files (Jumpstarter's is tls.ca)", APIVersion)
	} else if raw.CA != "" && !x509.NewCertPool().AppendCertsFromPEM([]byte(raw.CA)) {
		errs.Add(file, yamlconf.ValueNode(root, "ca"), "ca", "want a PEM certificate (-----BEGIN CERTIFICATE-----)")
	}
	var direct DirectStreams
	if raw.DirectStreams != nil {
		direct = *raw.DirectStreams
		n := yamlconf.ValueNode(root, "directStreams")
		if direct.Listen != "" && !direct.Off() && !validStreamAddress(direct.Listen) {
			errs.Add(file, yamlconf.ValueNode(n, "listen"), "directStreams.listen", "invalid address %q: want unix:/path/to.sock, tcp:host:port or off", direct.Listen)
		}
		if direct.Advertise != "" && !validStreamAddress(direct.Advertise) {
			errs.Add(file, yamlconf.ValueNode(n, "advertise"), "directStreams.advertise", "invalid address %q: want unix:/path/to.sock or tcp:host:port", direct.Advertise)
		}
		if direct.Advertise != "" && (direct.Listen == "" || direct.Off()) {
			errs.Add(file, yamlconf.ValueNode(n, "advertise"), "directStreams.advertise", "advertise needs listen")
		}
	}
	var hooks Hooks
	if raw.Hooks != nil {
		hooks, errs = decodeHooks(file, raw.Hooks, errs)
	}
	if raw.Kind != "" && raw.Kind != Kind {
		errs.Add(file, yamlconf.ValueNode(root, "kind"), "kind", "kind is %q; want %q", raw.Kind, Kind)
	}
	name := raw.Metadata.Name
	if name == "" {
		name = DefaultName(file)
	} else if !nameRE().MatchString(name) {
		errs.Add(file, yamlconf.ValueNode(yamlconf.ValueNode(root, "metadata"), "name"), "metadata.name",
			"invalid exporter name %q: use lower-case letters, digits, - and _, starting with a letter or digit", name)
	}
	for k, v := range raw.Metadata.Labels {
		if k == "" || strings.ContainsAny(k, "\n\x00") || strings.ContainsAny(v, "\n\x00") {
			errs.Add(file, yamlconf.ValueNode(yamlconf.ValueNode(root, "metadata"), "labels"), "metadata.labels", "invalid label %q", k)
		}
	}
	dir := filepath.Dir(file)
	if abs, err := filepath.Abs(dir); err == nil {
		dir = abs
	}
	errs = checkDriverPolicy(file, root, raw.Drivers, raw.Export, dir, errs)
	cfg := &Config{
		APIVersion: raw.APIVersion,
		Kind:       raw.Kind,
		Metadata:   Metadata{Name: name, Namespace: raw.Metadata.Namespace, Labels: raw.Metadata.Labels},
		Endpoint:   raw.Endpoint,
		Token:      raw.Token,
		Export:     raw.Export,
		Hooks:      raw.Hooks,
		File:       file,

		Motd:           raw.Motd,
		ExitOnLeaseEnd: raw.ExitOnLeaseEnd,
		Credentials:    raw.Credentials,
		CA:             raw.CA,
		LeaseHooks:     hooks,
		DirectStreams:  direct,
		Drivers:        raw.Drivers,
		Dir:            dir,
	}
	return cfg, errs
}

// validStreamAddress reports whether a is "unix:/absolute/path" or "tcp:host:port".
func validStreamAddress(a string) bool {
	network, addr, _ := strings.Cut(a, ":")
	switch network {
	case "unix":
		return filepath.IsAbs(addr)
	case "tcp":
		host, port, err := net.SplitHostPort(addr)
		n, perr := strconv.Atoi(port)
		return err == nil && perr == nil && n >= 0 && n < 65536 && !strings.ContainsAny(host, " /")
	}
	return false
}

// DefaultName derives an exporter name from a config file name: the base name without
// extension, lower-cased, every character outside [a-z0-9_-] replaced by "-", leading "-" and
// "_" removed; "exporter" if nothing is left.
func DefaultName(file string) string {
	base := filepath.Base(file)
	base = strings.TrimSuffix(base, filepath.Ext(base))
	var b strings.Builder
	for _, r := range strings.ToLower(base) {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '_' || r == '-' {
			b.WriteRune(r)
		} else {
			b.WriteByte('-')
		}
	}
	name := strings.TrimLeft(b.String(), "-_")
	if name == "" || !nameRE().MatchString(name) {
		return "exporter"
	}
	return name
}

// key returns the key node of k in mapping m, or nil.
func key(m *yaml.Node, k string) *yaml.Node {
	if m == nil || m.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == k {
			return m.Content[i]
		}
	}
	return nil
}
