package controller

import (
	"bytes"
	"fmt"

	"go.yaml.in/yaml/v3"

	"jsn.dev/jsn/client/clientconfig"
)

// APIVersion is the apiVersion of jsn's config files.
const APIVersion = clientconfig.APIVersion

// ClientConfigYAML renders a client config (parsed, imported and loaded by package client). ca
// is the PEM of the CA the controller's TLS certificate chains to (nil for none).
func ClientConfigYAML(name, endpoint string, creds []byte, admin bool, allow []string, ca []byte) ([]byte, error) {
	return clientconfig.New(name, endpoint, creds, admin, allow, ca).Marshal()
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

// exporterConfig is the exporter config file `jsn admin create exporter` writes.
type exporterConfig struct {
	APIVersion string `yaml:"apiVersion"`
	Kind       string `yaml:"kind"`
	Metadata   struct {
		Name   string            `yaml:"name"`
		Labels map[string]string `yaml:"labels,omitempty"`
	} `yaml:"metadata"`
	Endpoint    string `yaml:"endpoint"`
	CA          string `yaml:"ca,omitempty"`
	Credentials string `yaml:"credentials"`
}

// ExporterConfigYAML renders a complete exporter config with a starter export section; ca as
// for ClientConfigYAML.
func ExporterConfigYAML(name, endpoint string, labels map[string]string, creds, ca []byte) ([]byte, error) {
	c := exporterConfig{APIVersion: APIVersion, Kind: "ExporterConfig", Endpoint: endpoint, Credentials: string(creds), CA: string(ca)}
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
