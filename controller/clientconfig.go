package controller

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"go.yaml.in/yaml/v3"

	"jsn.dev/jsn/bus"
)

// APIVersion is the apiVersion of jsn's config files.
const APIVersion = "jsn.dev/v1alpha1"

// ClientConfig is a client config file (`jsn admin create client` output).
type ClientConfig struct {
	APIVersion string `yaml:"apiVersion"`
	Kind       string `yaml:"kind"`
	Metadata   struct {
		Name string `yaml:"name"`
	} `yaml:"metadata"`
	Endpoint    string   `yaml:"endpoint"`
	Credentials string   `yaml:"credentials"`
	Role        string   `yaml:"role"`
	Allow       []string `yaml:"allow,omitempty"`
}

// ClientConfigYAML renders a client config.
func ClientConfigYAML(name, endpoint string, creds []byte, admin bool, allow []string) ([]byte, error) {
	c := ClientConfig{APIVersion: APIVersion, Kind: "ClientConfig", Endpoint: endpoint,
		Credentials: string(creds), Role: "client", Allow: allow}
	c.Metadata.Name = name
	if admin {
		c.Role = "admin"
	}
	return marshalYAML(c)
}

func marshalYAML(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(v); err != nil {
		return nil, fmt.Errorf("encode yaml: %w", err)
	}
	return buf.Bytes(), nil
}

// ParseClientConfig decodes a client config strictly.
func ParseClientConfig(data []byte) (*ClientConfig, error) {
	var c ClientConfig
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&c); err != nil {
		return nil, fmt.Errorf("client config: %w", err)
	}
	if c.Kind != "ClientConfig" {
		return nil, fmt.Errorf("client config: kind %q, want ClientConfig", c.Kind)
	}
	if err := bus.CheckName("client config: metadata.name", c.Metadata.Name); err != nil {
		return nil, err
	}
	if c.Endpoint == "" || c.Credentials == "" {
		return nil, errors.New("client config: endpoint and credentials are required")
	}
	return &c, nil
}

// configHome is $XDG_CONFIG_HOME/jsn (default ~/.config/jsn).
func configHome() (string, error) {
	if d := os.Getenv("XDG_CONFIG_HOME"); d != "" {
		return filepath.Join(d, "jsn"), nil
	}
	h, err := os.UserHomeDir()
	if err != nil {
		return "", fmt.Errorf("config home: %w", err)
	}
	return filepath.Join(h, ".config", "jsn"), nil
}

// userConfig is $XDG_CONFIG_HOME/jsn/config.yaml.
type userConfig struct {
	CurrentClient string `yaml:"currentClient"`
}

// ImportClientConfig stores a client config as $XDG_CONFIG_HOME/jsn/clients/<name>.yaml (0600)
// and, with makeCurrent, names it current in $XDG_CONFIG_HOME/jsn/config.yaml. It returns the
// path written.
func ImportClientConfig(data []byte, makeCurrent bool) (string, error) {
	c, err := ParseClientConfig(data)
	if err != nil {
		return "", err
	}
	home, err := configHome()
	if err != nil {
		return "", err
	}
	dir := filepath.Join(home, "clients")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", fmt.Errorf("import client config: %w", err)
	}
	path := filepath.Join(dir, c.Metadata.Name+".yaml")
	if err := os.WriteFile(path, data, 0o600); err != nil {
		return "", fmt.Errorf("import client config: %w", err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		return "", fmt.Errorf("import client config: %w", err)
	}
	if makeCurrent {
		var uc userConfig
		cfgPath := filepath.Join(home, "config.yaml")
		if b, err := os.ReadFile(cfgPath); err == nil {
			var m map[string]any
			if yaml.Unmarshal(b, &m) == nil && m != nil {
				m["currentClient"] = c.Metadata.Name
				out, err := marshalYAML(m)
				if err != nil {
					return "", err
				}
				return path, os.WriteFile(cfgPath, out, 0o600)
			}
		}
		uc.CurrentClient = c.Metadata.Name
		out, err := marshalYAML(uc)
		if err != nil {
			return "", err
		}
		if err := os.WriteFile(cfgPath, out, 0o600); err != nil {
			return "", fmt.Errorf("import client config: %w", err)
		}
	}
	return path, nil
}

// LoadClientConfig loads file, or if "" the file $JSN_CLIENT_CONFIG names, or the current client
// config of $XDG_CONFIG_HOME/jsn/config.yaml. $JSN_ENDPOINT overrides the endpoint.
func LoadClientConfig(file string) (*ClientConfig, error) {
	if file == "" {
		file = os.Getenv("JSN_CLIENT_CONFIG")
	}
	if file == "" {
		home, err := configHome()
		if err != nil {
			return nil, err
		}
		b, err := os.ReadFile(filepath.Join(home, "config.yaml"))
		if err != nil {
			return nil, fmt.Errorf("load client config: no current client config (import one with jsn config client import FILE): %w", err)
		}
		var uc userConfig
		if err := yaml.Unmarshal(b, &uc); err != nil || uc.CurrentClient == "" {
			return nil, fmt.Errorf("load client config: %s names no currentClient", filepath.Join(home, "config.yaml"))
		}
		file = filepath.Join(home, "clients", uc.CurrentClient+".yaml")
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("load client config: %w", err)
	}
	c, err := ParseClientConfig(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	if e := os.Getenv("JSN_ENDPOINT"); e != "" {
		c.Endpoint = e
	}
	return c, nil
}

// exporterConfig is the exporter config file `jsn admin create exporter` writes.
type exporterConfig struct {
	APIVersion string `yaml:"apiVersion"`
	Kind       string `yaml:"kind"`
	Metadata   struct {
		Name   string            `yaml:"name"`
		Labels map[string]string `yaml:"labels,omitempty"`
	} `yaml:"metadata"`
	Endpoint    string `yaml:"endpoint"`
	Credentials string `yaml:"credentials"`
}

// ExporterConfigYAML renders a complete exporter config with a starter export section.
func ExporterConfigYAML(name, endpoint string, labels map[string]string, creds []byte) ([]byte, error) {
	c := exporterConfig{APIVersion: APIVersion, Kind: "ExporterConfig", Endpoint: endpoint, Credentials: string(creds)}
	c.Metadata.Name = name
	c.Metadata.Labels = labels
	b, err := marshalYAML(c)
	if err != nil {
		return nil, err
	}
	b = append(b, []byte(`# The drivers this exporter serves: replace the mock with your devices (see docs/drivers.md).
export:
  power:
    type: power.Mock
`)...)
	return b, nil
}
