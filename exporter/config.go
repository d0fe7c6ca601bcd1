package exporter

import (
	"go.yaml.in/yaml/v3"
)

// APIVersion values accepted in an exporter config.
const (
	APIVersion            = "jsn.dev/v1alpha1"
	JumpstarterAPIVersion = "jumpstarter.dev/v1alpha1"
	Kind                  = "ExporterConfig"
)

// Metadata names an exporter.
type Metadata struct {
	// Name is used in NATS subjects: [a-z0-9][a-z0-9-_]*. When absent it defaults to the config
	// file's base name without extension, sanitized.
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
	Hooks      *yaml.Node // lease hooks; kept for a later decoder
	File       string     // path the config was loaded from (for error positions)
	Dir        string     // directory of File, for relative paths in driver configs
}
